"""The case view /review/<id>: answers in Japanese and English side by side, each flag
with its urgency, department and the answers that fired it, the not-a-diagnosis notice,
Wells with the missing examination items, every triage revision, the review history,
the delivery attempts; 404 for an unknown id; every view audited."""

from __future__ import annotations

import html
import re
from typing import Any

from intake import pipeline, state
from intake.storage.models import Intake
from support.adapters import Rejecting
from support.review import (
    DVT,
    EMERGENCY,
    ROUTINE,
    Browser,
    audit_events,
    deliver,
    submit,
)

NOTICE_JA = "トリアージの補助であり、診断ではありません"
NOTICE_EN = "they are not a diagnosis"


def section(page: str, section_id: str) -> str:
    """The inside of the element with this id, up to the end of its section."""
    rest = after(page, f'id="{section_id}"')
    return rest[:rest.index("</section>")]


def text_of(fragment: str) -> str:
    """The fragment's text, tags dropped and ASCII spaces collapsed (for phrase checks;
    the full-width space between a family and a given name stays)."""
    return re.sub(r"[ \t\r\n]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


def after(page: str, marker: str) -> str:
    """What follows the tag that contains ``marker``."""
    start = page.index(marker)
    return page[page.index(">", start) + 1:]


def test_answers_in_both_languages_side_by_side(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, {**DVT, "sex": "F", "onset": "GRADUAL", "pain_nrs": 6})
    html = doctor.get(f"/review/{made}?lang=ja").get_data(as_text=True)
    answers = section(html, "answers")
    row = answers[answers.index('id="answer-calf_swelling_one_side"'):]
    row = row[:row.index("</tr>")]
    # Question and answer in Japanese in one cell, in English in the next.
    assert re.search(r'<td lang="ja">片方のふくらはぎだけが明らかに太い<br>'
                     r'<strong>はい</strong></td><td lang="en">'
                     r'One calf is clearly bigger than the other<br>'
                     r'<strong>Yes</strong></td>', row)
    sex = text_of(after(answers, 'id="answer-sex"'))
    assert sex.startswith("性別 女性 Sex Female"), sex[:60]
    travel = text_of(after(answers, 'id="answer-immobility"'))
    assert "最近の長時間の移動" in travel and "Recent long journey".lower() in travel.lower()
    assert "痛み始めてからの期間" not in answers  # unanswered questions are not listed
    # Group headings in both languages too; the page chrome follows ?lang.
    assert "<th scope=\"rowgroup\" lang=\"en\">" in answers
    assert "回答" in html and "問診の詳細" in html
    english = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert "Intake details" in english
    assert "片方のふくらはぎだけが明らかに太い" in section(english, "answers")


def test_flags_with_evidence_urgency_department_and_notice(review_app: Any,
                                                          doctor: Browser) -> None:
    made = submit(review_app, DVT)
    for lang, notice in (("ja", NOTICE_JA), ("en", NOTICE_EN)):
        html = doctor.get(f"/review/{made}?lang={lang}").get_data(as_text=True)
        flags = section(html, "flags")
        assert notice in flags  # on the part of the screen that shows flags
        card = flags[flags.index('id="flag-DVT_SUSPECT"'):]
        card = card[:card.index("</article>")]
        assert 'class="flag-card red"' in flags
        assert "深部静脈血栓症の疑い" in card and "possible deep vein thrombosis" in card
        words = text_of(card)
        if lang == "en":
            assert "Urgency: same day / department: vascular surgery" in words
            assert "also: cardiology" in words
        else:
            assert "緊急度: 当日中 / 診療科: 血管外科" in words
        # The answers that fired it, both languages.
        assert "片方のふくらはぎだけが明らかに太い はい" in words
        assert "One calf is clearly bigger than the other Yes" in words
        assert "Calf or inner thigh hurts when pressed Yes" in words
        assert "DVT likely: ultrasound within 4 hours" in words
        # The screening flag names the unanswered items.
        screening = text_of(flags[flags.index('id="flag-INCOMPLETE_SCREENING"'):])
        assert "膝の裏のふくらみ・しこり 未回答" in screening
        assert "A lump behind the knee not answered" in screening
    # Every page that shows a flag carries the notice: the worklist too.
    assert NOTICE_JA in doctor.get("/review?lang=ja").get_data(as_text=True)


def test_wells_and_missing_examination_items(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT)
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    wells = text_of(section(html, "wells"))
    assert "2 points : DVT likely (2 points or more)" in wells
    assert "Provisional: examination findings are missing." in wells
    for item in ("Calf at least 3 cm larger", "tenderness along the distribution of the deep",
                 "Collateral superficial veins", "alternative diagnosis is at least as likely"):
        assert item.lower() in wells.lower(), item
    assert "patella" in wells.lower() and "fibular head" in wells.lower()

    assert doctor.act(made, "findings", {
        "staff_calf_diff_3cm": "yes", "staff_deep_vein_tenderness": "yes",
        "staff_collateral_veins": "no", "staff_alt_dx_as_likely": "no",
        "staff_patella_tenderness": "not_examined",
        "staff_fibular_head_tenderness": "not_examined"}).status_code == 303
    with state(review_app).sessions.begin() as s:
        assert pipeline.run_triage(s, made).status == "triaged"
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    missing = text_of(after(section(html, "wells"), 'id="missing"'))
    assert missing.startswith("Wells score all entered Ottawa knee rule")
    assert "patella" in missing.lower()
    assert "Provisional" not in text_of(section(html, "wells"))


def test_every_revision_stays_visible_newest_first(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT)
    assert doctor.act(made, "findings", {"staff_alt_dx_as_likely": "yes"}).status_code == 303
    waiting = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert 'id="computing"' in waiting and "A new result is being computed" in waiting
    assert 'data-awaiting="true"' in waiting
    assert 'name="revision"' not in waiting  # no action on a result being replaced
    with state(review_app).sessions.begin() as s:
        assert pipeline.run_triage(s, made).status == "triaged"
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert 'id="computing"' not in html and 'data-awaiting="false"' in html
    revisions = section(html, "revisions")
    assert revisions.index('id="revision-2"') < revisions.index('id="revision-1"')
    second = text_of(revisions[revisions.index('id="revision-2"'):
                               revisions.index('id="revision-1"')])
    first = text_of(revisions[revisions.index('id="revision-1"'):])
    assert "Revision 2 current result" in second
    assert "Re-triage with examination findings by dr.review" in second
    assert "0 points" in second  # -2 for the alternative diagnosis
    assert "From the patient's answers" in first and "2 points" in first
    assert "Revision 1 current" not in first


def test_history_and_delivery_attempts(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT, record_number="MRN-HIST")
    assert deliver(review_app, made, Rejecting()).status == "failed"
    failed = text_of(section(doctor.get(f"/review/{made}?lang=en").get_data(as_text=True),
                             "delivery"))
    assert failed.startswith("Delivery to the record system Failed")
    assert "HTTP 422: Patient identifier unknown" in failed.split("When")[0]
    assert doctor.act(made, "acknowledge", {"flag": "DVT_SUSPECT"}).status_code == 303
    assert doctor.act(made, "department", {"department": "cardiology",
                                           "reason": "palpitations on examination"}
                      ).status_code == 303
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    history = text_of(section(html, "history"))
    assert history.index("Changed the department") < history.index("Acknowledged a flag")
    assert ("Changed the department: vascular surgery → cardiology (reason: palpitations on "
            "examination)") in history
    assert "dr.review Acknowledged a flag: possible deep vein thrombosis" in history
    delivery = text_of(section(html, "delivery"))
    assert "Rejected 422 HTTP 422: Patient identifier unknown" in delivery
    # The practitioner's change is written back: the next delivery is owed, and received.
    assert "Sending" in text_of(section(html, "case-heading"))
    assert deliver(review_app, made).status == "delivered"
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    delivery = text_of(section(html, "delivery"))
    assert delivery.startswith("Delivery to the record system Received by the record system")
    assert delivery.count("Received") >= 2 and "Rejected" in delivery
    summary = text_of(after(html, 'id="delivery-summary"'))
    assert summary.startswith("Received by the record system")


def test_walk_in_shows_name_kana_birth_date(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, ROUTINE, record_number=None, demographics={
        "family_name": "佐藤", "given_name": "一郎", "family_name_kana": "さとう",
        "given_name_kana": "いちろう", "birth_date": "1941-07-15", "sex": "male"})
    html = doctor.get(f"/review/{made}?lang=ja").get_data(as_text=True)
    head = text_of(section(html, "case-heading"))
    assert "佐藤\u3000一郎 さとう\u3000いちろう" in head
    assert "1941-07-15" in head and "男性" in head
    # The title never names the patient (browser history keeps titles).
    assert "佐藤" not in html[html.index("<title>"):html.index("</title>")]


def test_not_triaged_yet(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, EMERGENCY, triage=False)
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert "The triage result is being computed" in html
    assert 'id="flags"' not in html and 'name="revision"' not in html
    assert "Chest" in html or "chest" in html  # the answers are there already


def test_unknown_id_is_a_404_page(review_app: Any, doctor: Browser) -> None:
    for path in ("/review/00000000-0000-4000-8000-000000000000", "/review/static",
                 "/review/" + "a" * 37):
        resp = doctor.get(path + "?lang=en")
        assert resp.status_code == 404, path
        assert "Page not found" in resp.get_data(as_text=True)
    assert audit_events(state(review_app).sessions, "review.case_viewed") == []


def test_each_view_is_audited(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT, record_number="MRN-AUDIT")
    doctor.get(f"/review/{made}")
    doctor.get(f"/review/{made}?lang=en")
    events = audit_events(state(review_app).sessions, "review.case_viewed")
    assert [(e.actor, e.entity_type, e.entity_id, e.detail) for e in events] == \
        [("dr.review", "intake", made, {"revision": 1})] * 2


def test_failed_triage_says_so(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, EMERGENCY, triage=False)
    with state(review_app).sessions.begin() as s:
        intake = s.get(Intake, made)
        assert intake is not None
        # What run_triage stores when the engine cannot read the answers.
        intake.status, intake.status_reason = "triage_failed", "triage failed: AnswerError"
    html = doctor.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert "Triage of this intake failed" in html and 'id="computing"' not in html
    assert "Triage failed" in doctor.get("/review?lang=en").get_data(as_text=True)
