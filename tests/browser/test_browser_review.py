"""The practitioners' pages in Chromium: sign in, the worklist, an emergency submitted
meanwhile appears live (row, banner, alert tone), then the case view: acknowledge the
flag, change the department with a reason, enter examination findings and watch the new
result arrive. Real worker, real Redis, server-sent events; axe-core on both pages;
screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from intake import state
from intake.auth.users import create_user
from intake.clinical import parse_simple_answers
from intake.intakes import submit_and_enqueue
from intake.storage.models import Intake, Job, JobState, ReviewAction, TriageRecord, utcnow
from support import wait_for
from support.browser import Audit, shoot

pytestmark = pytest.mark.slow

PASSWORD = "a long browser password 7"
DESKTOP = {"width": 1440, "height": 900}
EMERGENCY = {"age_years": 62, "pain_side": "L", "chest_symptoms": True,
             "calf_swelling_one_side": True, "calf_pain_tender": True}


def _user(app: Any, name: str) -> None:
    with state(app).sessions.begin() as s:
        create_user(s, name, "practitioner", PASSWORD, actor="test", now=utcnow())


def _sign_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/review?lang=ja")
    page.wait_for_url(re.compile(r"/auth/signin"))
    page.fill("#f-name", name)
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(re.compile(r"/review\?lang=ja$"))


def _settle(app: Any, page: Any, intake_id: str) -> None:
    """Wait until the worker has no job left on the intake and the page has reloaded for
    it (the case view reloads itself on each delivery while nothing is being typed), so
    the next form is filled on the page that stays."""
    def idle() -> bool:
        with state(app).sessions() as s:
            return not s.execute(select(Job.id).where(
                Job.intake_id == intake_id, Job.state == JobState.PENDING)).first()

    wait_for(idle, timeout=20, message="the worker to finish")
    page.wait_for_timeout(1500)  # the stream's poll (1 s) and the reload
    page.wait_for_load_state()


def _intake(app: Any, record_number: str) -> Intake:
    with state(app).sessions() as s:
        found: Intake = s.execute(select(Intake).where(
            Intake.patient_record_number == record_number)).scalar_one()
        return found


def test_worklist_live_and_case_actions(stack: Any, new_page: Any, audit: Audit) -> None:
    app, base = stack.main.app, stack.main.base
    _user(app, "dr.browser")
    page = new_page(DESKTOP)
    _sign_in(page, base, "dr.browser")
    page.locator("#live-ok").wait_for()
    # (Earlier tests' unanswered alerts are counted in the title, names never.)
    assert re.fullmatch(r"(\(\d+\) )?ワークリスト", page.title()), page.title()
    assert "診断ではありません" in page.locator(".support-notice").inner_text()
    audit.check(page, "review-worklist")
    shoot(page, "review-worklist", both=False)

    # Sound on (a click is the interaction browsers require), then an emergency arrives.
    # (Its words: "no sound, tap here", or louder while an emergency waits unheard.)
    page.locator("#sound-off").click()
    page.wait_for_function("() => document.getElementById('live').dataset.sound === 'on'")
    alarms = "() => +(document.getElementById('live').dataset.tonesAlarm || 0)"
    record = "BR-REVIEW-1"
    st = state(app)
    accepted = submit_and_enqueue(st.sessions, st.celery,
                                  answers=parse_simple_answers(EMERGENCY), source="kiosk",
                                  actor="test", record_number=record)
    row = page.locator(f"tr[data-intake-id='{accepted.intake_id}']")
    row.wait_for(timeout=15_000)  # arrives live: no reload
    banner = page.locator("#alert-list .alert-card", has_text=record)
    banner.wait_for(timeout=15_000)
    assert "緊急" in banner.inner_text() and "胸の症状" in banner.inner_text()
    page.wait_for_function(f"() => ({alarms})() > 0")
    wait_for(lambda: "救急" in row.inner_text(), timeout=10, message="the row's urgency")
    assert record in row.inner_text()
    assert "肺塞栓症の疑い" in row.inner_text()
    assert page.title().startswith("(")
    audit.check(page, "review-worklist-alert")
    shoot(page, "review-worklist-alert", both=False)

    # The case view, from the alert.
    with page.expect_navigation():
        banner.get_by_role("link", name="開く").click()
    assert page.url.endswith(f"/review/{accepted.intake_id}?lang=ja")
    _settle(app, page, accepted.intake_id)
    assert record not in page.title()
    flag = page.locator("#flag-PE_SUSPECT")
    assert "肺塞栓症の疑い" in flag.inner_text() and "possible pulmonary embolism" in \
        flag.inner_text()
    assert "急な息切れ・胸の痛み" in flag.inner_text() and "Sudden breathlessness" in \
        flag.inner_text()
    assert "診断ではありません" in page.locator("#flags").inner_text()
    assert "2点" in page.locator("#wells").inner_text()
    audit.check(page, "review-case")
    shoot(page, "review-case", both=False)
    page.screenshot(path=str(_shots() / "review-case-full.png"), full_page=True)
    page.locator("#actions").screenshot(path=str(_shots() / "review-case-actions.png"))
    page.locator("#answers").screenshot(path=str(_shots() / "review-case-answers.png"))

    # Acknowledge the flag.
    with page.expect_navigation():
        flag.get_by_role("button", name="確認した").click()
    # (The page may reload itself at once for the write-back's delivery: check the
    # card, not the passing notice.)
    page.locator("#flag-PE_SUSPECT .acknowledged").wait_for()
    assert "確認済:dr.browser" in page.locator("#flag-PE_SUSPECT").inner_text()
    _settle(app, page, accepted.intake_id)

    # Change the department, with a reason.
    page.select_option("#f-new-department", "cardiology")
    page.fill("#f-reason", "胸部症状は循環器で評価")
    with page.expect_navigation():
        page.get_by_role("button", name="診療科を変更する").click()
    page.wait_for_function(
        "() => document.getElementById('department').textContent.includes('循環器内科')")
    assert "dr.browserが変更" in page.locator("#department").inner_text()
    _settle(app, page, accepted.intake_id)

    # Examination findings: the page says a new result is coming, then shows it.
    exam = page.locator("form.exam")
    exam.locator("#exam-staff_calf_diff_3cm label:has(input[value=yes])").click()
    exam.locator("#exam-staff_deep_vein_tenderness label:has(input[value=yes])").click()
    exam.locator("#exam-staff_alt_dx_as_likely label:has(input[value=no])").click()
    with page.expect_navigation():
        page.get_by_role("button", name="所見を保存して再判定").click()
    page.locator("#revision-2").wait_for(timeout=20_000)  # the page reloads itself
    _settle(app, page, accepted.intake_id)  # and once more for the new result's delivery
    assert page.locator("#computing").count() == 0
    assert "第2版" in page.locator("#revisions").inner_text()
    assert "dr.browser" in page.locator("#revision-2").inner_text()
    audit.check(page, "review-case-after")
    shoot(page, "review-case-after", both=False)

    with st.sessions() as s:
        kinds = [a.kind for a in s.execute(select(ReviewAction).where(
            ReviewAction.intake_id == accepted.intake_id).order_by(ReviewAction.seq)).scalars()]
        revisions = [r.revision for r in s.execute(select(TriageRecord).where(
            TriageRecord.intake_id == accepted.intake_id)).scalars()]
    assert kinds == ["acknowledge_flag", "change_department", "exam_findings"]
    assert sorted(revisions) == [1, 2]

    # The delivery of the new state to the record system shows on the page (the page
    # reloads itself for it).
    _settle(app, page, accepted.intake_id)
    assert _intake(app, record).delivered_at is not None
    page.wait_for_function(
        "() => document.getElementById('delivery').textContent.includes('受信確認')")

    # English, the same case.
    page.goto(f"{base}/review/{accepted.intake_id}?lang=en")
    assert "Acknowledged by dr.browser" in page.locator("#flag-PE_SUSPECT").inner_text()
    audit.check(page, "review-case-en")
    shoot(page, "review-case-en", both=False)
    audit.assert_clean()


def _shots() -> Any:
    from support.browser import SHOTS

    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
