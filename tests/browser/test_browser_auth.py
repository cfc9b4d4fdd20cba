"""Staff sign-in in Chromium: the sign-in page (axe, screenshots), and a signed-in page
that leaves for the sign-in page by itself when the idle time-out ends the session.

A server of this module runs the app with a 1-minute idle time-out on the stack's
database; time is moved by ageing the session's last activity in the database, not by
waiting a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from intake import state
from support.auth import PASSWORD, age_sessions, audit_events, make_user, sessions_of
from support.browser import LANDSCAPE, Audit, serve_behind_live, shoot, sign_in_staff

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def short_idle(stack: Any, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[Any, str]]:
    """The app with INTAKE_SESSION_IDLE_MINUTES=1, behind its live process as under
    ``intake serve``: (app, base URL)."""
    settings = state(stack.main.app).settings
    server = serve_behind_live({"data_dir": str(settings.data_dir),
                                "database_url": settings.database_url,
                                "redis_url": settings.redis_url,
                                "kiosk_pin": settings.kiosk_pin, "log_level": "warning",
                                "session_idle_minutes": "1"},
                               tmp_path_factory.mktemp("short-idle"))
    yield server.app, server.base
    server.stop()


def test_idle_time_out_leaves_the_page_for_the_sign_in_page(
        short_idle: tuple[Any, str], new_page: Any, audit: Audit) -> None:
    app, base = short_idle
    name = "desk.idle"
    make_user(app, name, "front_desk")
    page = new_page(LANDSCAPE, locale="en-US")
    page.goto(f"{base}/desk?lang=en")
    page.wait_for_url("**/auth/signin?**")
    assert page.get_by_role("heading", name="Staff sign-in").is_visible()
    audit.check(page, "staff-signin")
    shoot(page, "staff-signin", both=False)

    sign_in_staff(page, base, name, PASSWORD, lang="en")
    assert urlsplit(page.url).path == "/desk"
    assert page.get_by_test_id("signed-in-as").inner_text() == f"{name} (front desk)"
    page.locator("#live-ok").wait_for()
    audit.check(page, "desk-signed-in")

    # Nobody touches the screen: the last activity is made 61 s old.
    age_sessions(app, idle=timedelta(seconds=61), name=name)
    page.wait_for_url("**/auth/signin?**timed_out=1**", timeout=30_000)
    query = parse_qs(urlsplit(page.url).query)
    assert query["next"] == ["/desk?lang=en"] and query["lang"] == ["en"]
    notice = page.get_by_role("status")
    assert notice.inner_text() == "You were signed out after a period without activity."
    assert "Front-desk alerts" not in page.content()  # nothing of the desk is left
    audit.check(page, "staff-signin-timed-out")
    shoot(page, "staff-signin-timed-out", both=False)
    assert sessions_of(app, name) == []
    assert [e.detail for e in audit_events(app, "signin.expired")
            if e.actor == name] == [{"why": "idle"}]

    # Signing in again returns to the page that was open.
    page.fill("#f-name", name)
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert urlsplit(page.url).path == "/desk" and "lang=en" in page.url
    audit.assert_clean()


def test_the_warning_shows_before_the_end_and_activity_keeps_the_session(
        short_idle: tuple[Any, str], new_page: Any) -> None:
    app, base = short_idle
    name = "desk.warned"
    make_user(app, name, "front_desk")
    page = new_page(LANDSCAPE, locale="ja-JP")
    sign_in_staff(page, base, name, PASSWORD)
    warning = page.locator("#idle-warning")
    assert warning.is_hidden()
    # 45 s without activity: 15 s left, under a third of the 1-minute time-out.
    age_sessions(app, idle=timedelta(seconds=45), name=name)
    warning.wait_for(state="visible", timeout=25_000)
    assert "まもなくサインアウトします" in warning.inner_text()
    page.keyboard.press("Shift")  # someone is at the desk
    warning.wait_for(state="hidden", timeout=5_000)
    (row,) = sessions_of(app, name)
    assert (row.last_seen_at - row.created_at) > timedelta(seconds=1)  # counted as activity
    assert urlsplit(page.url).path == "/desk"
