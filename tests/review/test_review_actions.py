"""The case view's four actions through their HTTP forms: what each stores (the review
action, its write-back or triage job, the audit event, the intake's state), a stale
revision (409), a double submit (stored once), bad input and refusals (4xx, nothing
changed), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake import pipeline, state
from intake.clinical import parse_questionnaire_response
from intake.review import actions
from intake.review.i18n import REVIEW
from intake.review.views import refusal_text
from intake.storage.models import AuditEvent, Intake, Job, ReviewAction
from support.databases import sqlite_only
from support.review import DVT, EMERGENCY, SOON, Browser, make_user, signed_in, submit


@pytest.fixture
def doc(any_db_app: Any) -> Browser:
    return signed_in(any_db_app)


def _sessions(app: Any) -> sessionmaker[Session]:
    return state(app).sessions


def stored(app: Any, intake_id: str) -> dict[str, Any]:
    """Everything an action may change, for before/after comparisons."""
    with _sessions(app)() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        return {
            "intake": (intake.status, intake.revision, intake.department_override,
                       intake.reviewed_at, intake.acknowledged_at, intake.review_seq,
                       intake.questionnaire_response),
            "actions": [(a.seq, a.kind, a.flag_code, a.department, a.reason, a.findings)
                        for a in s.execute(select(ReviewAction).where(
                            ReviewAction.intake_id == intake_id)
                            .order_by(ReviewAction.seq)).scalars()],
            "jobs": [(j.kind, j.revision, j.state) for j in s.execute(
                select(Job).where(Job.intake_id == intake_id).order_by(Job.id)).scalars()],
            "audit": [(e.action, e.detail) for e in s.execute(
                select(AuditEvent).where(AuditEvent.entity_id == intake_id,
                                         AuditEvent.action != "review.case_viewed")
                .order_by(AuditEvent.id)).scalars()],
        }


def test_acknowledge_a_flag(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, EMERGENCY)
    resp = doc.act(made, "acknowledge", {"flag": "PE_SUSPECT"})
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith(f"/review/{made}?")
    after = stored(any_db_app, made)
    assert after["actions"] == [(1, "acknowledge_flag", "PE_SUSPECT", None, None, None)]
    assert ("writeback", 1, "pending") in after["jobs"]
    assert ("review.acknowledge_flag", {"seq": 1, "revision": 1, "flag": "PE_SUSPECT"}) \
        in after["audit"]
    status, *_ = after["intake"]
    assert status == "acknowledged"  # its only red flag is seen: the desk stops alerting
    page = doc.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Acknowledged by dr.review" in doc.get(f"/review/{made}?lang=en").get_data(
        as_text=True)
    assert 'id="done-acknowledge"' in page


def test_change_department_with_reason(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, DVT)
    resp = doc.act(made, "department", {"department": "orthopedics",
                                        "reason": "  calf measured equal;  knee effusion "})
    assert resp.status_code == 303
    after = stored(any_db_app, made)
    assert after["actions"] == [(1, "change_department", None, "orthopedics",
                                 "calf measured equal; knee effusion", None)]
    assert after["intake"][2] == "orthopedics"
    assert ("writeback", 1, "pending") in after["jobs"]
    # The reason is staff free text: in the action row, never in the audit trail.
    event = [d for a, d in after["audit"] if a == "review.change_department"]
    assert event == [{"seq": 1, "revision": 1, "department": "orthopedics",
                      "previous": "vascular_surgery"}]


def test_examination_findings_re_triage(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, DVT)
    resp = doc.act(made, "findings", {
        "staff_calf_diff_3cm": "no", "staff_deep_vein_tenderness": "no",
        "staff_collateral_veins": "no", "staff_alt_dx_as_likely": "yes",
        "staff_patella_tenderness": "not_examined",
        "staff_fibular_head_tenderness": "not_examined"})
    assert resp.status_code == 303
    after = stored(any_db_app, made)
    findings = {"staff_calf_diff_3cm": False, "staff_deep_vein_tenderness": False,
                "staff_collateral_veins": False, "staff_alt_dx_as_likely": True}
    assert after["actions"] == [(1, "exam_findings", None, None, None, findings)]
    assert after["intake"][1] == 2  # a new revision of the answers
    assert ("triage", 2, "pending") in after["jobs"]
    answers = parse_questionnaire_response(after["intake"][6])
    assert {k: answers.get(k) for k in findings} == findings
    assert "staff_patella_tenderness" not in answers  # "not examined" is not sent
    event = [d for a, d in after["audit"] if a == "review.exam_findings"]
    assert event == [{"seq": 1, "revision": 2, "items": sorted(findings)}]
    # The page says a result is coming; the worker's triage brings it.
    assert 'id="computing"' in doc.get(f"/review/{made}").get_data(as_text=True)
    with _sessions(any_db_app).begin() as s:
        assert pipeline.run_triage(s, made).status == "triaged"
    page = doc.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert 'id="computing"' not in page and 'name="revision" value="2"' in page


def test_mark_reviewed(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, SOON)  # no red flag: nothing to acknowledge first
    assert doc.act(made, "reviewed").status_code == 303
    after = stored(any_db_app, made)
    assert after["actions"] == [(1, "reviewed", None, None, None, None)]
    assert after["intake"][3] is not None
    assert ("writeback", 1, "pending") in after["jobs"]
    assert any(a == "review.reviewed" for a, _ in after["audit"])
    page = doc.get(f"/review/{made}?lang=en").get_data(as_text=True)
    assert "Reviewed by dr.review" in page and "Mark as reviewed" not in page


def test_stale_revision_is_a_409_and_changes_nothing(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, DVT)
    shown = doc.revision(made)
    assert doc.act(made, "findings", {"staff_calf_diff_3cm": "yes"},
                   revision=shown).status_code == 303
    with _sessions(any_db_app).begin() as s:
        assert pipeline.run_triage(s, made).status == "triaged"
    before = stored(any_db_app, made)
    # A second practitioner's page still shows revision 1.
    for action, data in (("acknowledge", {"flag": "DVT_SUSPECT"}),
                         ("department", {"department": "cardiology", "reason": "x"}),
                         ("findings", {"staff_collateral_veins": "yes"}),
                         ("reviewed", {})):
        resp = doc.act(made, action, data, revision=shown)
        assert resp.status_code == 409, action
        page = resp.get_data(as_text=True)
        assert "画面を開いた後に再判定されました" in page and 'id="action-error"' in page
        assert 'name="revision" value="2"' in page  # the page shown now is the new one
    assert stored(any_db_app, made) == before


def test_double_submit_is_stored_once(any_db_app: Any, doc: Browser) -> None:
    made = submit(any_db_app, EMERGENCY)
    rev = doc.revision(made)
    first = doc.act(made, "acknowledge", {"flag": "PE_SUSPECT"}, revision=rev)
    second = doc.act(made, "acknowledge", {"flag": "PE_SUSPECT"}, revision=rev)
    assert (first.status_code, second.status_code) == (303, 303)
    assert doc.act(made, "reviewed", revision=rev).status_code == 303
    assert doc.act(made, "reviewed", revision=rev).status_code == 303
    after = stored(any_db_app, made)
    assert [a[1] for a in after["actions"]] == ["acknowledge_flag", "reviewed"]
    assert [j for j in after["jobs"] if j[0] == "writeback"] == [
        ("writeback", 1, "pending"), ("writeback", 2, "pending")]
    assert [a for a, _ in after["audit"] if a.startswith("review.")] == [
        "review.acknowledge_flag", "review.reviewed"]
    # The same department twice: the second is refused, nothing is added.
    made2 = submit(any_db_app, DVT)
    data = {"department": "cardiology", "reason": "palpitations"}
    assert doc.act(made2, "department", data).status_code == 303
    before = stored(any_db_app, made2)
    again = doc.act(made2, "department", data)
    assert again.status_code == 422
    assert "すでにその診療科になっています" in again.get_data(as_text=True)
    assert stored(any_db_app, made2) == before


@sqlite_only
@pytest.mark.parametrize(("action", "data", "message"), [
    ("acknowledge", {"flag": "COMPARTMENT"}, "そのフラグはこの問診では出ていません"),
    ("acknowledge", {}, "フォームの内容が正しくありません"),
    ("department", {"department": "dentistry", "reason": "x"}, "診療科を一覧から選んでください"),
    ("department", {"department": "cardiology", "reason": "   "}, "変更の理由を入力してください"),
    ("department", {"department": "cardiology"}, "変更の理由を入力してください"),
    ("department", {"department": "cardiology", "reason": "x" * 501}, "500文字以内"),
    ("department", {"department": "vascular_surgery", "reason": "same"},
     "すでにその診療科になっています"),
    ("findings", {}, "所見を1つ以上"),
    ("findings", {"staff_patella_tenderness": "not_examined"}, "所見を1つ以上"),
    ("findings", {"staff_patella_tenderness": "maybe"}, "「はい」「いいえ」「未診察」"),
    ("findings", {"calf_swelling_one_side": "yes"}, "フォームの内容が正しくありません"),
    ("reviewed", {}, "先にすべてのレッドフラグを確認してください:DVT_SUSPECT"),
    ("reviewed", {"note": "unexpected field"}, "フォームの内容が正しくありません"),
])
def test_bad_input_is_refused_and_changes_nothing(any_db_app: Any, doc: Browser,
                                                   action: str, data: dict[str, Any],
                                                   message: str) -> None:
    made = submit(any_db_app, DVT)
    before = stored(any_db_app, made)
    resp = doc.act(made, action, data)
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert message in page, page[page.find("action-error"):][:300]
    assert stored(any_db_app, made) == before
    if action == "department" and "reason" in data and data["reason"].strip():
        assert data["reason"][:50] in page  # what was typed is kept


def test_bad_revision_field_and_unknown_action(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT)
    before = stored(review_app, made)
    doctor.get(f"/review/{made}")
    for revision in ("", "abc", "0", "-1", "99999999999"):
        resp = doctor.post(f"/review/{made}/reviewed", {"revision": revision})
        assert resp.status_code == 422, revision
    assert doctor.post(f"/review/{made}/delete", {"revision": "1"}).status_code == 404
    assert doctor.post("/review/00000000-0000-4000-8000-000000000000/reviewed",
                       {"revision": "1"}).status_code == 404
    assert stored(review_app, made) == before


def test_missing_csrf_token_is_refused(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, EMERGENCY)
    before = stored(review_app, made)
    resp = doctor.client.post(f"/review/{made}/acknowledge",
                              data={"revision": "1", "flag": "PE_SUSPECT"})
    assert resp.status_code == 400
    resp = doctor.client.post(f"/review/{made}/acknowledge", data={
        "revision": "1", "flag": "PE_SUSPECT", "csrf_token": "0" * 64})
    assert resp.status_code == 400
    assert stored(review_app, made) == before


def test_english_page_words_refusals_in_english(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, DVT)
    resp = doctor.post(f"/review/{made}/reviewed?lang=en",
                       {"revision": str(doctor.revision(made))})
    assert resp.status_code == 422
    assert "Acknowledge every red flag first: DVT_SUSPECT" in resp.get_data(as_text=True)


def test_every_refusal_of_the_domain_has_its_own_words(review_app: Any) -> None:
    """Each ReviewError the actions raise maps to a catalog message, not the fallback."""
    made = submit(review_app, DVT)
    not_triaged = submit(review_app, DVT, triage=False)
    examined = submit(review_app, DVT)
    actor = actions.Actor(make_user(review_app, "dr.words", "practitioner"), "dr.words")
    now = pipeline.utcnow()
    attempts = [
        lambda s: actions.acknowledge_flag(s, made, "COMPARTMENT", actor=actor, revision=1,
                                           now=now),
        lambda s: actions.change_department(s, made, "dentistry", "x", actor=actor,
                                            revision=1, now=now),
        lambda s: actions.change_department(s, made, "cardiology", " ", actor=actor,
                                            revision=1, now=now),
        lambda s: actions.change_department(s, made, "cardiology", "x" * 501, actor=actor,
                                            revision=1, now=now),
        lambda s: actions.change_department(s, made, "vascular_surgery", "x", actor=actor,
                                            revision=1, now=now),
        lambda s: actions.add_exam_findings(s, made, {}, actor=actor, revision=1, now=now),
        lambda s: actions.add_exam_findings(s, made, {"age_years": True}, actor=actor,
                                            revision=1, now=now),
        lambda s: actions.add_exam_findings(s, made, {"staff_collateral_veins": "yes"},
                                            actor=actor, revision=1, now=now),
        lambda s: actions.mark_reviewed(s, made, actor=actor, revision=1, now=now),
        lambda s: actions.mark_reviewed(s, not_triaged, actor=actor, revision=1, now=now),
        lambda s: actions.mark_reviewed(s, made, actor=actor, revision=2, now=now),
        lambda s: actions.add_exam_findings(s, examined, {"staff_collateral_veins": True},
                                            actor=actor, revision=2, now=now),
    ]
    with _sessions(review_app).begin() as s:
        actions.add_exam_findings(s, examined, {"staff_collateral_veins": True}, actor=actor,
                                  revision=1, now=now)
    with _sessions(review_app).begin() as s:
        assert pipeline.run_triage(s, examined).status == "triaged"
    messages = set()
    for attempt in attempts:
        with pytest.raises(actions.ReviewError) as raised, _sessions(review_app)() as s:
            attempt(s)
        messages.add(str(raised.value).split(" ")[0])
        for lang in ("ja", "en"):
            words = refusal_text(raised.value, lang)
            fallback = REVIEW.text("err_action", lang, detail="")
            assert not words.startswith(fallback), (str(raised.value), words)
    assert len(messages) >= 8  # the attempts did meet different refusals
    assert refusal_text(actions.ReviewError("something new"), "en") == \
        "The action could not be taken: something new"
