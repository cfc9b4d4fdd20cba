"""Tablet behaviour in Chromium: required screening items, instant enableWhen, the knee
picture by keyboard, the idle warning and reset (with a RED answer triaged), privacy of
the back button after a reset, and axe-core on the screens the walks do not reach."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import select

from intake import state
from intake.kiosk.form import tablet_form
from intake.storage.models import Intake, KioskDraft
from support import case, wait_for
from support.browser import (
    LANDSCAPE,
    PIN,
    PORTRAIT,
    SHOTS,
    Audit,
    answer_all,
    current_step,
    enroll_context,
    press,
    send,
    shoot,
    start_patient,
)

pytestmark = pytest.mark.slow


def _step(name: str) -> int:
    return [s.link_id for s in tablet_form().sections].index(name)


def _intakes(app: Any, record_number: str) -> list[Intake]:
    with state(app).sessions() as s:
        found = s.execute(select(Intake).where(Intake.patient_record_number == record_number))
        return list(found.scalars())


def _drafts(app: Any, record_number: str) -> list[KioskDraft]:
    with state(app).sessions() as s:
        found = s.execute(select(KioskDraft).where(
            KioskDraft.patient_record_number == record_number))
        return list(found.scalars())


def _tap_yes_no(page: Any, link_id: str, value: bool) -> None:
    page.locator(f"#item-{link_id} label:has(input[value='{'true' if value else 'false'}'])"
                 ).click()


@pytest.mark.parametrize(("lang", "message", "viewport"), [
    ("ja", "この質問にお答えください", PORTRAIT),
    ("en", "Please answer this question", LANDSCAPE)])
def test_screening_items_are_required_inline_in_the_language(
        stack: Any, new_page: Any, audit: Audit, lang: str, message: str,
        viewport: dict[str, int]) -> None:
    page = new_page(viewport)
    start_patient(page, stack.main.base, lang=lang, record_number=f"BR-REQ-{lang}")
    step = _step("swelling_circulation")
    page.goto(f"{stack.main.base}/kiosk/q/{step}")
    _tap_yes_no(page, "fever", False)
    with page.expect_navigation():
        press(page, "次へ", "Next")
    assert current_step(page) == step
    summary = page.get_by_role("alert")
    assert summary.is_visible()
    required = [q.link_id for q in tablet_form().sections[step].questions if q.required]
    for link_id in required:
        error = page.locator(f"#err-{link_id}")
        assert (error.count() == 0) is (link_id == "fever"), link_id
        if link_id != "fever":
            assert error.inner_text() == message
    # The message is tied to the question for screen readers.
    radio = page.locator("#item-chest_symptoms input[value=true]")
    assert radio.get_attribute("aria-describedby") == "err-chest_symptoms"
    audit.check(page, f"required-{lang}")
    shoot(page, f"required-error-{lang}")
    for link_id in required:
        if link_id == "popliteal_lump":
            page.locator("#item-popliteal_lump label:has(input[value=NONE])").click()
        elif link_id != "fever":
            _tap_yes_no(page, link_id, False)
    with page.expect_navigation():
        press(page, "次へ", "Next")
    assert current_step(page) == step + 1
    audit.assert_clean()


def test_dependent_questions_appear_at_once(stack: Any, new_page: Any) -> None:
    page = new_page()
    start_patient(page, stack.main.base, lang="en", record_number="BR-EW")
    page.goto(f"{stack.main.base}/kiosk/q/0")
    url = page.url
    pregnancy = page.locator("#item-pregnancy_hormone")
    assert pregnancy.is_visible()  # sex not answered yet: shown (the safer reading)
    page.locator("#item-sex label:has(input[value=M])").click()
    assert pregnancy.is_hidden()
    assert page.locator("#item-pregnancy_hormone input[name=shown]").is_disabled()
    page.locator("#item-sex label:has(input[value=F])").click()
    assert pregnancy.is_visible()
    assert page.url == url  # no navigation: the script decided
    page.goto(f"{stack.main.base}/kiosk/q/{_step('running')}")
    follow_up = page.locator("#item-run_pattern")
    assert follow_up.is_hidden()
    _tap_yes_no(page, "runner", True)
    assert follow_up.is_visible()
    # Autosave kept the answers on the server, not in the browser.
    wait_for(lambda: _drafts(stack.main.app, "BR-EW")[0].answers.get("runner") is True,
             timeout=5, message="autosave")
    assert _drafts(stack.main.app, "BR-EW")[0].answers["sex"] == "F"
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0


def test_knee_picture_by_touch_keyboard_and_screen_reader(stack: Any, new_page: Any,
                                                          audit: Audit) -> None:
    page = new_page()
    start_patient(page, stack.main.base, lang="ja", record_number="BR-KNEE")
    page.goto(f"{stack.main.base}/kiosk/q/{_step('pain')}")
    # Every region has a name that says which knee and where.
    for name in ("左ひざ・内側", "左ひざ・外側", "右ひざ・中央", "右ひざ・内側"):
        assert page.get_by_role("radio", name=name).count() == 1, name
    assert page.get_by_role("group", name=re.compile("どちらの膝")).count() == 1
    # Touch: tap the right knee, then the inner side of the right knee.
    page.locator("#item-pain_side label.region:has(input[value=R])").click()
    page.locator("#item-pain_location label.region:has(input[value=MEDIAL])").nth(1).click()
    assert page.get_by_role("radio", name="右ひざ・内側").is_checked()
    shoot(page.locator("#item-pain_location").page, "knee-picture-touch", both=False)
    page.locator("#item-pain_location").screenshot(
        path=str(SHOTS / "knee-location-768x1024.png"))
    # Keyboard: arrows move along the regions of the radio group.
    page.get_by_role("radio", name="右ひざ・内側").focus()
    page.keyboard.press("ArrowRight")
    assert page.get_by_role("radio", name="右ひざ・中央").is_checked()
    focused = page.evaluate("() => document.activeElement.closest('label').className")
    assert "region" in focused
    audit.check(page, "knee-picture")
    with page.expect_navigation():
        press(page, "次へ", "Next")
    draft = _drafts(stack.main.app, "BR-KNEE")[0]
    assert (draft.answers["pain_side"], draft.answers["pain_location"]) == ("R", "CENTRAL")
    audit.assert_clean()


def test_back_button_shows_nothing_after_a_reset(stack: Any, new_page: Any,
                                                 audit: Audit) -> None:
    page = new_page()
    record = "BR-PRIV-7731"
    start_patient(page, stack.main.base, lang="ja", record_number=record)
    page.get_by_role("link", name="はじめる").click()
    page.locator("#in-age_years").fill("67")
    page.locator("#item-sex label:has(input[value=F])").click()
    with page.expect_navigation():
        press(page, "次へ", "Next")
    page.locator("#item-pain_side label.region:has(input[value=L])").click()
    page.get_by_role("link", name="やめる").click()
    page.wait_for_url("**/kiosk/quit")
    audit.check(page, "quit")
    shoot(page, "quit")
    with page.expect_navigation():
        page.get_by_role("button", name="やめる").click()
    assert page.url.endswith("/kiosk/")
    assert _drafts(stack.main.app, record) == []
    assert _intakes(stack.main.app, record) == []
    for _ in range(4):
        page.go_back()
        page.wait_for_load_state()
        html = page.content()
        assert record not in html and "67" not in page.locator("body").inner_text()
        assert page.locator("input:checked").count() in (0, 2)  # the start form's defaults
        assert page.locator("#f-pin").is_visible() or "/kiosk" not in page.url
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    audit.assert_clean()


def test_idle_warns_then_continues_on_touch(stack: Any, new_page: Any, audit: Audit) -> None:
    page = new_page()
    start_patient(page, stack.idle.base, lang="en", record_number="BR-IDLE-1")
    page.get_by_role("link", name="Start").click()
    dialog = page.get_by_role("alertdialog")
    dialog.wait_for(state="visible", timeout=6000)
    assert "Are you still there?" in dialog.inner_text()
    assert re.search(r"\d seconds left", dialog.inner_text())
    audit.check(page, "idle-warning")
    shoot(page, "idle-warning", both=False)
    page.get_by_role("button", name="Continue").click()
    assert dialog.is_hidden()
    assert "/kiosk/q/" in page.url
    audit.assert_clean()


def test_idle_reset_triages_a_red_answer_left_unsent(stack: Any, new_page: Any) -> None:
    """The patient says yes to chest symptoms and walks away without pressing Next."""
    page = new_page()
    record = "BR-IDLE-RED"
    start_patient(page, stack.idle.base, lang="ja", record_number=record)
    page.goto(f"{stack.idle.base}/kiosk/q/{_step('swelling_circulation')}")
    _tap_yes_no(page, "chest_symptoms", True)
    started = time.monotonic()
    page.wait_for_url("**/kiosk/", timeout=15_000)
    assert time.monotonic() - started >= 4  # 2 s idle + 3 s warning (give or take a tick)
    assert page.locator("#f-pin").is_visible()
    [intake] = wait_for(lambda: _intakes(stack.idle.app, record), timeout=5, message="intake")
    assert intake.source == "kiosk-timeout"

    def triaged() -> Any:
        with state(stack.idle.app).sessions() as s:
            found = s.get(Intake, intake.id)
            return found.triage_records[-1] if found and found.triage_records else None

    result = wait_for(triaged, timeout=15, message="triage of the timed-out answers")
    assert result.urgency == "emergency" and result.red_flag
    assert _drafts(stack.idle.app, record) == []
    page.go_back()
    assert record not in page.content()


def test_idle_reset_without_a_red_answer_deletes_everything(stack: Any, new_page: Any) -> None:
    page = new_page()
    record = "BR-IDLE-QUIET"
    start_patient(page, stack.idle.base, lang="en", record_number=record)
    page.get_by_role("link", name="Start").click()
    page.locator("#in-age_years").fill("52")
    page.wait_for_url("**/kiosk/", timeout=15_000)
    assert _drafts(stack.idle.app, record) == []
    assert _intakes(stack.idle.app, record) == []


def test_screens_the_walks_do_not_reach_are_accessible(stack: Any, new_page: Any,
                                                       audit: Audit) -> None:
    page = new_page(locale="en-US")
    # The start screen with errors, and the PIN refused.
    page.goto(f"{stack.main.base}/kiosk?lang=en")
    page.fill("#f-pin", "000001")
    page.locator("label:has(input[name=patient][value=walk_in])").click()
    assert page.locator("#f-record_number").is_hidden()  # only the walk-in fields
    page.fill("#f-family_name_kana", "Yamada")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("hand the tablet over")).click()
    assert page.locator("#f-family_name_kana").get_attribute("aria-invalid") == "true"
    audit.check(page, "start-errors")
    shoot(page, "start-errors")
    # The waiting screen: a server with a database of its own and no broker, so the
    # result never comes.
    start_patient(page, stack.nobroker.base, lang="en", record_number="BR-WAIT")
    answer_all(page, case("pub-01")["answers"])
    send(page)
    page.locator("#waiting").wait_for()
    audit.check(page, "waiting")
    shoot(page, "waiting")
    # An expired form: the error screen (back on the main database's tablet: the other
    # server's enrollment replaced this browser's device cookie).
    enroll_context(page.context, stack.main.base, "tablet")
    page.goto(f"{stack.main.base}/kiosk?lang=en")
    page.evaluate("() => document.querySelector('[name=csrf_token]').value = 'stale'")
    page.fill("#f-pin", PIN)
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("hand the tablet over")).click()
    assert "This screen has expired" in page.content()
    audit.check(page, "expired")
    shoot(page, "expired")
    audit.assert_clean()


def test_start_screen_forgets_what_staff_typed_when_left_idle(stack: Any,
                                                              new_page: Any) -> None:
    page = new_page()
    page.goto(f"{stack.idle.base}/kiosk")
    page.fill("#f-record_number", "BR-TYPED-1")
    page.get_by_role("alertdialog").wait_for(state="visible", timeout=6000)
    page.wait_for_function(
        "() => document.querySelector('#f-record_number').value === ''", timeout=10_000)
    assert page.get_by_role("alertdialog").is_hidden()
    page.go_back()
    assert "BR-TYPED-1" not in page.content()
