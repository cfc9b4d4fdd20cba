"""The tablet flow through the test client: PIN, CSRF, headers, URLs, drafts, enableWhen,
required screening items and the closing message."""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from intake import state
from intake.clinical import parse_questionnaire_response
from intake.kiosk import services
from intake.kiosk.form import tablet_form
from intake.kiosk.pin import PIN_FILE, hash_pin, verify_pin
from intake.storage.models import Intake, KioskDraft, StaffPinThrottle, TriageRecord, utcnow
from support import case
from support.kiosk import PIN, Tablet, drafts, intakes_of

SCREEN_URL = re.compile(r"^/kiosk(/|/welcome|/q/\d+(\?(review|check)=1)?|/review|/done|/status|"
                        r"/quit|/reset|/lang|/touch|\?lang=(ja|en)|/\?lang=(ja|en))?$")


def _step(name: str) -> int:
    return [s.link_id for s in tablet_form().sections].index(name)


def _count(app: Any, model: Any) -> int:
    with state(app).sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# --- PIN ---------------------------------------------------------------------------------


def test_right_pin_starts_a_draft_wrong_pin_does_not(tablet: Tablet) -> None:
    resp = tablet.start(pin="000000")
    assert resp.status_code == 403
    assert drafts(tablet.app) == []
    assert "MRN-0042" in resp.get_data(as_text=True)  # typed values are kept...
    assert "000000" not in resp.get_data(as_text=True)  # ...but never the PIN
    resp = tablet.start()
    assert resp.status_code == 303 and resp.headers["Location"] == "/kiosk/welcome"
    assert len(drafts(tablet.app)) == 1


def test_wrong_pins_lock_the_client_out(tablet: Tablet) -> None:
    for _ in range(4):
        assert tablet.start(pin="111111").status_code == 403
    assert tablet.start(pin="111111").status_code == 429
    # Locked: even the right PIN is refused, unchecked.
    resp = tablet.start()
    assert resp.status_code == 429
    assert drafts(tablet.app) == []
    with state(tablet.app).sessions.begin() as s:
        row = s.execute(select(StaffPinThrottle)).scalar_one()
        row.locked_until = utcnow() - timedelta(seconds=1)
    assert tablet.start().status_code == 303
    assert _count(tablet.app, StaffPinThrottle) == 0


def test_pin_is_kept_hashed_and_a_hash_may_be_configured(
        make_app: Callable[..., Any], sqlite_url: str) -> None:
    hashed = hash_pin("975310")
    assert "975310" not in hashed and verify_pin(hashed, "975310")
    assert not verify_pin(hashed, "975311")
    app = make_app(sqlite_url, kiosk_pin=hashed)
    assert Tablet(app).start(pin="975310").status_code == 303
    assert "975310" not in repr(app.extensions["intake_kiosk"])


def test_unset_pin_is_generated_once_and_readable_by_the_owner_only(
        make_app: Callable[..., Any], sqlite_url: str) -> None:
    app = make_app(sqlite_url)
    path = state(app).settings.data_dir / PIN_FILE
    pin = path.read_text().strip()
    assert re.fullmatch(r"\d{6}", pin)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Tablet(app).start(pin=pin).status_code == 303
    again = make_app(sqlite_url)
    assert Tablet(again).start(pin=pin).status_code == 303


# --- CSRF and headers ------------------------------------------------------------------------


def test_posts_without_a_valid_token_change_nothing(tablet: Tablet) -> None:
    client = tablet.client
    client.get("/kiosk")
    form = {"pin": PIN, "lang": "ja", "patient": "record", "record_number": "MRN-1"}
    assert client.post("/kiosk", data=form).status_code == 400
    assert client.post("/kiosk", data={**form, "csrf_token": "forged"}).status_code == 400
    tablet.get("/kiosk")
    cross = client.post("/kiosk", data={**form, "csrf_token": tablet.token},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 400
    other = client.post("/kiosk", data={**form, "csrf_token": tablet.token},
                        headers={"Origin": "https://evil.example"})
    assert other.status_code == 400
    assert drafts(tablet.app) == []


def test_a_form_left_in_history_cannot_be_posted_after_a_reset(tablet: Tablet) -> None:
    tablet.start()
    tablet.get("/kiosk/q/0")
    old_token = tablet.token
    tablet.post("/kiosk/reset", {"reason": "cancel"})
    tablet.start()
    resp = tablet.client.post("/kiosk/q/0", data={"action": "next", "csrf_token": old_token,
                                                   "age_years": "50"})
    assert resp.status_code == 400
    assert "age_years" not in drafts(tablet.app)[0].answers


def test_every_page_is_no_store_with_a_strict_policy(tablet: Tablet) -> None:
    assert tablet.get("/kiosk").headers["Cache-Control"] == "no-store"
    tablet.start()
    pages = ["/kiosk/welcome", "/kiosk/review", "/kiosk/quit"]
    pages += [f"/kiosk/q/{i}" for i in tablet_form().enabled_sections({})]
    for url in pages:
        resp = tablet.get(url)
        assert resp.status_code == 200, url
        assert resp.headers["Cache-Control"] == "no-store", url
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Frame-Options"] == "DENY"
        html = resp.get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html, url  # CSP-clean
    tablet.answer_all(case("pub-01")["answers"])
    tablet.send()
    for url in ("/kiosk/done", "/kiosk/status", "/kiosk/nope"):
        resp = tablet.get(url)
        assert resp.headers["Cache-Control"] == "no-store", url
    for cookie in tablet.client._cookies.values():
        assert cookie.http_only and cookie.same_site == "Strict"


# --- answers stay out of URLs; drafts live on the server only ------------------------------


def test_answers_never_appear_in_urls_or_cookies(tablet: Tablet) -> None:
    c = case("pub-03")
    tablet.start(record_number="MRN-URL-1")
    tablet.answer_all(c["answers"])
    tablet.send()
    tablet.get("/kiosk/done")
    for url in tablet.urls:
        assert SCREEN_URL.match(url), url
    for cookie in tablet.client._cookies.values():
        assert "MRN-URL-1" not in cookie.value and "chest" not in cookie.value


def test_draft_is_keyed_by_a_hash_of_the_cookie_and_deleted_on_submit(tablet: Tablet) -> None:
    tablet.start(record_number="MRN-7")
    [draft] = drafts(tablet.app)
    assert re.fullmatch(r"[0-9a-f]{64}", draft.id)
    cookie = next(v.value for k, v in tablet.client._cookies.items() if k[2] == "intake_kiosk")
    assert draft.id not in cookie
    tablet.answer_all(case("pub-01")["answers"])
    assert tablet.send().headers["Location"] == "/kiosk/done"
    assert drafts(tablet.app) == []
    [intake] = intakes_of(tablet.app, "MRN-7")
    assert intake.source == "kiosk"
    answers = parse_questionnaire_response(intake.questionnaire_response).to_simple()
    assert answers == tablet_form().effective_answers(case("pub-01")["answers"])


def test_second_send_finds_the_first_intake(tablet: Tablet) -> None:
    tablet.start(record_number="MRN-8")
    tablet.answer_all(case("pub-01")["answers"])
    tablet.get("/kiosk/review")
    token = tablet.token
    first = tablet.client.post("/kiosk/review", data={"csrf_token": token})
    second = tablet.client.post("/kiosk/review", data={"csrf_token": token})
    assert first.headers["Location"] == second.headers["Location"] == "/kiosk/done"
    assert len(intakes_of(tablet.app, "MRN-8")) == 1


def test_walk_in_demographics_are_stored_in_the_api_shape_and_prefill_age_and_sex(
        tablet: Tablet) -> None:
    resp = tablet.start(walk_in={"family_name": "山田", "given_name": "花子",
                                 "family_name_kana": "ヤマダ", "given_name_kana": "はなこ",
                                 "birth_date": "1960-04-01", "sex": "female"})
    assert resp.status_code == 303
    [draft] = drafts(tablet.app)
    assert draft.patient_record_number is None
    assert draft.patient_demographics == {
        "family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
        "given_name_kana": "はなこ", "birth_date": "1960-04-01", "sex": "female"}
    assert draft.answers["sex"] == "F" and 60 <= draft.answers["age_years"] <= 70
    page = tablet.get("/kiosk/q/0").get_data(as_text=True)
    assert 'value="F" checked' in page


@pytest.mark.parametrize(("form", "field"), [
    ({"patient": "record", "record_number": "no spaces!"}, "f-record_number"),
    ({"patient": "walk_in", "family_name": "山田", "given_name": "花子",
      "family_name_kana": "Yamada", "given_name_kana": "はなこ", "birth_date": "1960-04-01",
      "sex": "female"}, "f-family_name_kana"),
    ({"patient": "walk_in", "family_name": "山田", "given_name": "花子",
      "family_name_kana": "ヤマダ", "given_name_kana": "はなこ", "birth_date": "2999-01-01",
      "sex": "female"}, "f-birth_date"),
])
def test_start_form_errors_name_the_field(tablet: Tablet, form: dict[str, str],
                                          field: str) -> None:
    tablet.get("/kiosk")
    resp = tablet.post("/kiosk", {"pin": PIN, "lang": "en", **form})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html)
    assert drafts(tablet.app) == []


def test_reset_deletes_the_draft_and_forgets_the_tablet(tablet: Tablet) -> None:
    tablet.start()
    tablet.screen(0, {"age_years": 40, "sex": "F"})
    resp = tablet.post("/kiosk/reset", {"reason": "cancel"})
    assert resp.headers["Location"] == "/kiosk/"
    assert drafts(tablet.app) == []
    assert _count(tablet.app, Intake) == 0
    # Every screen of the old session now leads to the start screen.
    for url in ("/kiosk/q/0", "/kiosk/q/1", "/kiosk/review", "/kiosk/welcome", "/kiosk/done"):
        resp = tablet.get(url)
        assert resp.status_code == 303 and resp.headers["Location"] == "/kiosk/", url
    page = tablet.get("/kiosk").get_data(as_text=True)
    assert "MRN-0042" not in page


# --- enableWhen and required screening items -----------------------------------------------


def test_injury_screen_is_skipped_unless_an_injury(tablet: Tablet) -> None:
    tablet.start()
    tablet.screen(0, {"age_years": 30, "sex": "M"})
    resp = tablet.screen(_step("pain"), {"onset": "GRADUAL"})
    assert resp.headers["Location"] == f"/kiosk/q/{_step('knee_function')}"
    assert tablet.get(f"/kiosk/q/{_step('injury')}").headers["Location"] == \
        f"/kiosk/q/{_step('knee_function')}"
    resp = tablet.screen(_step("pain"), {"onset": "INJ_TWIST"})
    assert resp.headers["Location"] == f"/kiosk/q/{_step('injury')}"


def test_answers_to_hidden_questions_are_not_submitted(tablet: Tablet) -> None:
    c = case("pub-04")  # a man: the pregnancy question is hidden
    answers = {**c["answers"], "pregnancy_hormone": True}
    tablet.start(record_number="MRN-HIDE")
    tablet.answer_all(answers)
    tablet.screen(_step("pain"), {**answers, "onset": "INJ_TWIST"})
    tablet.send()
    [intake] = intakes_of(tablet.app, "MRN-HIDE")
    stored = parse_questionnaire_response(intake.questionnaire_response).to_simple()
    assert "pregnancy_hormone" not in stored and stored["pop_at_injury"] is True


def test_a_question_that_appears_is_shown_before_moving_on(tablet: Tablet) -> None:
    """Without script: answering 'runner: yes' shows the running screen again with its
    follow-up question instead of skipping it."""
    tablet.start()
    step = _step("running")
    tablet.get(f"/kiosk/q/{step}")
    resp = tablet.post(f"/kiosk/q/{step}", [("action", "next"), ("shown", "runner"),
                                            ("runner", "true")])
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'name="run_pattern"' in html and 'id="item-run_pattern" hidden' not in html


@pytest.mark.parametrize(("lang", "message"), [("ja", "この質問にお答えください"),
                                               ("en", "Please answer this question")])
def test_screening_items_are_required_with_a_message_in_the_language(
        tablet: Tablet, lang: str, message: str) -> None:
    tablet.start(lang=lang)
    step = _step("swelling_circulation")
    resp = tablet.screen(step, {"popliteal_lump": "NONE", "fever": False})
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    required = [q for q in tablet_form().sections[step].questions if q.required]
    assert html.count(message) == len(required) - 2
    assert 'id="err-chest_symptoms"' in html and 'id="err-fever"' not in html
    assert f'<html lang="{lang}">' in html
    # What was answered is kept.
    assert drafts(tablet.app)[0].answers == {"popliteal_lump": "NONE", "fever": False}
    every = {q.link_id: False for q in required if q.spec.kind == "bool"}
    resp = tablet.screen(step, {"popliteal_lump": "NONE", **every})
    assert resp.status_code == 303


def test_send_with_a_screening_item_missing_goes_back_to_it(tablet: Tablet) -> None:
    answers = dict(case("pub-01")["answers"])
    tablet.start()
    tablet.answer_all(answers)
    with state(tablet.app).sessions.begin() as s:
        draft = s.execute(select(KioskDraft)).scalar_one()
        draft.answers = {k: v for k, v in draft.answers.items() if k != "saddle_bladder"}
    resp = tablet.send()
    assert resp.headers["Location"] == f"/kiosk/q/{_step('nerves_back')}?check=1"
    assert _count(tablet.app, Intake) == 0
    page = tablet.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'id="err-saddle_bladder"' in page


def test_a_value_that_cannot_be_read_keeps_the_earlier_answer(tablet: Tablet) -> None:
    tablet.start()
    tablet.screen(0, {"age_years": 40})
    resp = tablet.screen(0, {"age_years": "forty"})
    assert resp.status_code == 422
    assert "0〜120" in resp.get_data(as_text=True)
    assert drafts(tablet.app)[0].answers["age_years"] == 40
    tampered = tablet.post("/kiosk/q/0", [("action", "next"), ("favourite_colour", "red")])
    assert tampered.status_code == 400


def test_none_of_these_cannot_be_combined(tablet: Tablet) -> None:
    tablet.start(lang="en")
    resp = tablet.screen(_step("risk_factors"), {"immobility": ["LONG_TRAVEL", "NONE"],
                                                 "previous_vte": False})
    assert resp.status_code == 422
    assert "cannot be chosen together" in resp.get_data(as_text=True)


# --- the closing message ---------------------------------------------------------------------


def _triage_now(app: Any) -> None:
    """Run the triage step as the worker would (no broker in these tests)."""
    from intake import pipeline

    with state(app).sessions.begin() as s:
        for intake_id in s.execute(select(Intake.id)).scalars().all():
            pipeline.run_triage(s, intake_id)


@pytest.mark.parametrize(("case_id", "lang", "expected"), [
    ("pub-03", "ja", "今すぐ受付スタッフにお声がけください"),
    ("pub-02", "en", "A staff member will speak with you shortly"),
    ("pub-01", "en", "Thank you for your answers."),
    ("pub-05", "ja", "ご回答ありがとうございました。"),
])
def test_patient_sees_only_the_message_for_the_urgency(tablet: Tablet, case_id: str,
                                                       lang: str, expected: str) -> None:
    tablet.start(lang=lang)
    tablet.answer_all(case(case_id)["answers"])
    tablet.send()
    waiting = tablet.get("/kiosk/done")
    assert waiting.status_code == 200 and 'id="waiting"' in waiting.get_data(as_text=True)
    assert tablet.get("/kiosk/status").get_json() == {"ready": False}
    _triage_now(tablet.app)
    assert tablet.get("/kiosk/status").get_json() == {"ready": True}
    html = tablet.get("/kiosk/done").get_data(as_text=True)
    assert expected in html
    with state(tablet.app).sessions() as s:
        result = s.execute(select(TriageRecord)).scalar_one()
    for secret in [f["code"] for f in result.result["flags"]] + [result.department]:
        assert secret not in html
    assert "emergency" not in html and "same_day" not in html


def test_triage_not_done_in_time_shows_the_same_day_message(
        make_app: Callable[..., Any], sqlite_url: str) -> None:
    app = make_app(sqlite_url, kiosk_pin=PIN, kiosk_result_wait="0")
    tablet = Tablet(app)
    tablet.start(lang="en")
    tablet.answer_all(case("pub-01")["answers"])
    tablet.send()
    html = tablet.get("/kiosk/done").get_data(as_text=True)
    assert "A staff member will speak with you shortly" in html
    # Finishing forgets the session: the message is not shown again.
    tablet.get("/kiosk")
    assert tablet.get("/kiosk/done").status_code == 303


def test_language_can_be_switched_mid_way(tablet: Tablet) -> None:
    tablet.start(lang="ja")
    tablet.get("/kiosk/q/0")
    resp = tablet.post("/kiosk/lang", {"lang": "en", "here": "q:0"})
    assert resp.headers["Location"] == "/kiosk/q/0"
    assert "About you" in tablet.get("/kiosk/q/0").get_data(as_text=True)
    assert tablet.post("/kiosk/lang", {"lang": "fr"}).status_code == 400


def test_expired_draft_is_ended_by_the_next_request(tablet: Tablet) -> None:
    tablet.start(record_number="MRN-EXP")
    tablet.screen(_step("swelling_circulation"), {"chest_symptoms": True}, action="autosave")
    with state(tablet.app).sessions.begin() as s:
        draft = s.execute(select(KioskDraft)).scalar_one()
        draft.last_activity_at = utcnow() - timedelta(hours=1)
    resp = tablet.get("/kiosk/q/0")
    assert resp.headers["Location"] == "/kiosk/"
    assert drafts(tablet.app) == []
    [intake] = intakes_of(tablet.app, "MRN-EXP")
    assert intake.source == "kiosk-timeout"


def test_services_timing_orders_the_clocks() -> None:
    timing = services.Timing(idle=90, warning=30, result_wait=5, done=30)
    assert timing.expiry == 150 and timing.heartbeat == 15
    assert timing.expiry > timing.idle + timing.warning + timing.heartbeat
