"""Three worked cases walked through the tablet in Chromium, in Japanese and in English:
one emergency, one same-day (with the injury screen), one self-care.

For each walk: every screen passes axe-core (no serious or critical violation); the patient
sees only the SPEC section 5 message for the urgency; the stored triage result is the
case's expected one; the stored answers are exactly what the patient could see; no
request URL carries an answer; nothing is left in browser storage; the draft is gone.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from intake import state
from intake.clinical import parse_questionnaire_response
from intake.kiosk.form import tablet_form
from intake.storage.models import Intake, KioskDraft, TriageRecord
from support import case, wait_for
from support.browser import (
    ALLOWED_URL,
    LANDSCAPE,
    MESSAGES,
    PIN,
    PORTRAIT,
    Audit,
    shoot,
    start_patient,
    walk,
)

pytestmark = pytest.mark.slow

WALKS = [("pub-03", "ja"), ("pub-03", "en"), ("pub-04", "ja"), ("pub-04", "en"),
         ("pub-01", "ja"), ("pub-01", "en")]
SCREENSHOTS = {("pub-03", "ja"), ("pub-04", "en"), ("pub-01", "en")}


def _stored(app: Any, record_number: str) -> tuple[Intake, TriageRecord]:
    def found() -> tuple[Intake, TriageRecord] | None:
        with state(app).sessions() as s:
            intake = s.execute(select(Intake).where(
                Intake.patient_record_number == record_number)).scalar_one_or_none()
            if intake is None or not intake.triage_records:
                return None
            return intake, intake.triage_records[-1]

    result: tuple[Intake, TriageRecord] = wait_for(found, timeout=15, message="triage")
    return result


@pytest.mark.parametrize(("case_id", "lang"), WALKS, ids=[f"{c}-{lang}" for c, lang in WALKS])
def test_walk_a_case_through_the_tablet(stack: Any, new_page: Any, audit: Audit,
                                        case_id: str, lang: str) -> None:
    c = case(case_id)
    record_number = f"BW-{case_id}-{lang}".upper()
    page = new_page(PORTRAIT if lang == "ja" else LANDSCAPE)
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    with_shots = (case_id, lang) in SCREENSHOTS

    def on_screen(name: str) -> None:
        audit.check(page, f"{case_id}-{lang}-{name}")
        if with_shots:
            shoot(page, f"{case_id}-{lang}-{name}")

    page.goto(f"{stack.main.base}/kiosk")
    on_screen("start")
    start_patient(page, stack.main.base, lang=lang, record_number=record_number)
    message = walk(page, c["answers"], on_screen=on_screen)

    expect = c["expect"]
    key = {"emergency": "emergency", "same_day": "same_day"}.get(expect["urgency"], "thanks")
    assert message == MESSAGES[lang][key]
    assert page.locator("html").get_attribute("lang") == lang

    intake, result = _stored(stack.main.app, record_number)
    assert intake.source == "kiosk"
    assert result.urgency == expect["urgency"]
    assert result.department == expect["department"]
    assert result.red_flag is expect["red_flag"]
    fired = {f["code"] for f in result.result["flags"]}
    assert set(expect["flags"]) <= fired and not set(expect["not_flags"]) & fired
    stored = parse_questionnaire_response(intake.questionnaire_response).to_simple()
    assert stored == tablet_form().effective_answers(c["answers"])
    with state(stack.main.app).sessions() as s:
        assert s.execute(select(KioskDraft).where(
            KioskDraft.patient_record_number == record_number)).first() is None

    # Nothing of the patient in a URL, in browser storage, or in the page text.
    body = page.locator("body").inner_text()
    for secret in [f["code"] for f in result.result["flags"]] + [result.department]:
        assert secret not in body
    paths = [u.split(stack.main.base, 1)[1] for u in urls if u.startswith(stack.main.base)]
    assert paths and all(ALLOWED_URL.match(p) for p in paths), [
        p for p in paths if not ALLOWED_URL.match(p)]
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0

    # Finish: back to the staff start screen, and the message cannot be reached again.
    # An emergency's message stays until staff clear it with the PIN; going back does
    # not leave it.
    if key == "emergency":
        assert page.get_by_role("link", name="終了" if lang == "ja" else "Finish").count() == 0
        page.go_back()
        page.locator("#done").wait_for()
        assert message in page.locator("#done h1").inner_text()
        page.get_by_text("スタッフ用" if lang == "ja" else "For staff").click()
        page.fill("#f-pin", PIN)
        with page.expect_navigation():
            page.get_by_role("button", name="終了して最初の画面へ" if lang == "ja"
                             else "Finish and go to the start screen").click()
    else:
        page.get_by_role("link", name="終了" if lang == "ja" else "Finish").click()
    page.wait_for_url("**/kiosk/")
    assert page.locator("#f-pin").is_visible()
    page.go_back()
    assert "#done" not in page.content() and page.locator("#done").count() == 0
    audit.assert_clean()
