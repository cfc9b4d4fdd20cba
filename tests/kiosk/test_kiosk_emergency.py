"""The tablet as an enrolled device, and its emergency screen: after an emergency result
the closing message stays (no return to the start screen, even after the usual window)
until a member of staff clears it with the PIN; other results still return by
themselves. Triage is run by the test (no broker)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from intake import pipeline, state
from intake.storage.models import AuditEvent, Device, Intake, utcnow
from support import TOKEN_RE, case
from support.kiosk import PIN, Tablet, drafts, intakes_of

EMERGENCY_JA = "今すぐ受付スタッフにお声がけください"
SAME_DAY_JA = "まもなくスタッフがお声がけします"
START_TITLE_JA = "問診の開始(スタッフ用)"


def _triage_all(app: Any) -> None:
    """Run the triage step as the worker would."""
    with state(app).sessions.begin() as s:
        for intake_id in s.execute(select(Intake.id)).scalars().all():
            pipeline.run_triage(s, intake_id)


def _send(tablet: Tablet, case_id: str, record_number: str) -> Intake:
    tablet.start(record_number=record_number)
    tablet.answer_all(case(case_id)["answers"])
    assert tablet.send().headers["Location"] == "/kiosk/done"
    _triage_all(tablet.app)
    [intake] = intakes_of(tablet.app, record_number)
    return intake


def _age(app: Any, intake_id: str, hours: float = 1) -> None:
    """Move the intake's arrival back, past the closing message's window."""
    with state(app).sessions.begin() as s:
        s.execute(update(Intake).where(Intake.id == intake_id)
                  .values(received_at=utcnow() - timedelta(hours=hours)))


def _is_emergency_screen(html: str) -> bool:
    return EMERGENCY_JA in html and 'action="/kiosk/clear"' in html \
        and 'name="pin"' in html and "data-seconds" not in html \
        and 'http-equiv="refresh"' not in html


def _cleared_events(app: Any) -> list[AuditEvent]:
    with state(app).sessions() as s:
        return list(s.execute(select(AuditEvent).where(
            AuditEvent.action == "kiosk.emergency_cleared")).scalars())


def test_unenrolled_browser_is_sent_to_enrollment(kiosk_app: Any) -> None:
    client = kiosk_app.test_client()
    resp = client.get("/kiosk")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/devices/enroll?kind=tablet")
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    found = TOKEN_RE.search(page)
    assert found
    posted = client.post("/kiosk", data={
        "csrf_token": found.group(1), "pin": PIN, "lang": "ja", "patient": "record",
        "record_number": "MRN-X"})
    assert posted.status_code == 303
    assert posted.headers["Location"].startswith("/devices/enroll?kind=tablet")
    assert drafts(kiosk_app) == []


def test_intake_carries_the_tablet_it_was_answered_on(tablet: Tablet) -> None:
    intake = _send(tablet, "pub-07", "MRN-T1")
    with state(tablet.app).sessions() as s:
        device = s.execute(select(Device).where(Device.kind == "tablet")).scalar_one()
    assert intake.device_id == device.id


def test_emergency_screen_stays_until_cleared(tablet: Tablet) -> None:
    intake = _send(tablet, "pub-03", "MRN-E1")
    done = tablet.get("/kiosk/done")
    assert done.status_code == 200 and _is_emergency_screen(done.get_data(as_text=True))
    # Long after the usual closing window, the tablet still goes back to it.
    _age(tablet.app, intake.id)
    start = tablet.get("/kiosk")
    assert start.status_code == 303 and start.headers["Location"] == "/kiosk/done"
    assert _is_emergency_screen(tablet.get("/kiosk/done").get_data(as_text=True))
    assert _cleared_events(tablet.app) == []


def test_wrong_pin_keeps_the_emergency_screen(tablet: Tablet) -> None:
    _send(tablet, "pub-03", "MRN-E2")
    tablet.get("/kiosk/done")
    resp = tablet.post("/kiosk/clear", {"pin": "000000"})
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert _is_emergency_screen(html) and "PINが違います" in html
    assert "000000" not in html
    assert tablet.get("/kiosk").headers["Location"] == "/kiosk/done"
    assert _cleared_events(tablet.app) == []


def test_wrong_pins_at_clear_count_towards_the_lock_out(tablet: Tablet) -> None:
    _send(tablet, "pub-06", "MRN-E3")
    tablet.get("/kiosk/done")
    statuses = [tablet.post("/kiosk/clear", {"pin": "000000"}).status_code
                for _ in range(5)]
    assert statuses == [403] * 4 + [429]
    locked = tablet.post("/kiosk/clear", {"pin": PIN})  # even the right PIN, unchecked
    assert locked.status_code == 429
    assert "PINの誤りが続いたため" in locked.get_data(as_text=True)
    assert _is_emergency_screen(locked.get_data(as_text=True))
    assert tablet.get("/kiosk").headers["Location"] == "/kiosk/done"
    assert _cleared_events(tablet.app) == []


def test_right_pin_clears_to_the_start_screen(tablet: Tablet) -> None:
    intake = _send(tablet, "pub-03", "MRN-E4")
    tablet.get("/kiosk/done")
    resp = tablet.post("/kiosk/clear", {"pin": PIN})
    assert resp.status_code == 303 and resp.headers["Location"] == "/kiosk/"
    [event] = _cleared_events(tablet.app)
    assert event.entity_type == "intake" and event.entity_id == intake.id
    start = tablet.get("/kiosk")
    assert start.status_code == 200
    html = start.get_data(as_text=True)
    assert START_TITLE_JA in html and 'name="pin"' in html and EMERGENCY_JA not in html
    assert tablet.get("/kiosk/done").status_code == 303
    # The next patient can be started.
    assert tablet.start(record_number="MRN-NEXT").headers["Location"] == "/kiosk/welcome"


def test_emergency_known_only_after_the_wait_is_shown_when_the_tablet_returns(
        make_app: Callable[..., Any], sqlite_url: str) -> None:
    """Triage not done in time: the same-day message (auto return); an emergency result
    that arrives afterwards keeps the tablet on the emergency screen."""
    app = make_app(sqlite_url, kiosk_pin=PIN, kiosk_result_wait="0")
    tablet = Tablet(app)
    tablet.start(record_number="MRN-LATE")
    tablet.answer_all(case("pub-03")["answers"])
    tablet.send()
    first = tablet.get("/kiosk/done").get_data(as_text=True)
    assert SAME_DAY_JA in first and "data-seconds" in first
    _triage_all(app)
    back = tablet.get("/kiosk")
    assert back.status_code == 303 and back.headers["Location"] == "/kiosk/done"
    assert _is_emergency_screen(tablet.get("/kiosk/done").get_data(as_text=True))


def test_same_day_result_still_returns_by_itself(tablet: Tablet) -> None:
    intake = _send(tablet, "pub-02", "MRN-S1")
    html = tablet.get("/kiosk/done").get_data(as_text=True)
    assert SAME_DAY_JA in html
    assert "data-seconds" in html and 'action="/kiosk/clear"' not in html
    _age(tablet.app, intake.id)
    start = tablet.get("/kiosk")
    assert start.status_code == 200 and START_TITLE_JA in start.get_data(as_text=True)
    assert tablet.get("/kiosk/done").status_code == 303


def test_going_back_in_the_browser_does_not_leave_the_emergency_screen(
        tablet: Tablet) -> None:
    """The page before the closing message in the tablet's history is the review page
    (Send posted from it): Back, or a swipe, must not end the emergency screen without
    the staff PIN."""
    _send(tablet, "pub-03", "MRN-E5")
    assert _is_emergency_screen(tablet.get("/kiosk/done").get_data(as_text=True))
    for url in ("/kiosk/review", "/kiosk/welcome", "/kiosk/q/0", "/kiosk/quit"):
        tablet.get(url)
        back = tablet.get("/kiosk")
        assert back.status_code == 303 and back.headers["Location"] == "/kiosk/done", url
    assert _is_emergency_screen(tablet.get("/kiosk/done").get_data(as_text=True))
    assert _cleared_events(tablet.app) == []
