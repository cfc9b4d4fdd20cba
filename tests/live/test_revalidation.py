"""Without Redis (no notices), the live process's periodic check (every 10 s) still ends
the stream of a revoked board and of a sign-in that reached its idle time-out; and a
stream is not activity: it never keeps a sign-in alive."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from intake import state
from intake.devices import services as devices
from intake.storage.models import utcnow
from support.auth import age_sessions, audit_events, sessions_of, signed_in_client
from support.live import EventStream, enroll_board, session_cookies

pytestmark = pytest.mark.slow

REVALIDATE = 10.0  # intake.live.hub.REVALIDATE


def test_the_periodic_check_ends_revoked_boards_and_idle_sign_ins(make_world: Any) -> None:
    world = make_world(session_idle_minutes="1")  # the web app and the live process agree
    live = world.live(redis=False, wait=False, session_idle_minutes="1")
    app = world.app
    board = enroll_board(app)
    client = signed_in_client(app, "front_desk", "desk-idle")
    live.wait_ready()
    # The sign-in was last used 57 s ago: 3 s are left of its one-minute idle time-out
    # (long enough since its last activity that any touch would show).
    age_sessions(app, idle=timedelta(seconds=57), name="desk-idle")
    (row,) = sessions_of(app, "desk-idle")
    deadline = row.last_seen_at + timedelta(minutes=1)
    staff = EventStream(live.base, "/live/staff", cookies=session_cookies(client))
    boards = EventStream(live.base, "/live/board", cookies=board.cookies)
    try:
        assert staff.status == 200 and boards.status == 200
        staff.until("state", 1)
        boards.until("state", 1)
        with app.app_context(), state(app).sessions.begin() as s:
            devices.revoke(s, board.name, actor="admin-test", now=utcnow())
        revoked = time.monotonic()  # and no notice: nothing listens to Redis here
        bye = boards.until("bye", REVALIDATE + 2)
        assert bye.data == {"reason": "revoked"}
        assert bye.at - revoked < REVALIDATE + 1.5
        assert boards.rest(2) == []
        bye = staff.until("bye", 3 + REVALIDATE + 2)
        assert bye.data == {"reason": "signed_out"}
        assert utcnow() >= deadline  # not before the time-out
        assert staff.rest(2) == []
        # Streaming for all that time was not activity.
        (row,) = sessions_of(app, "desk-idle")
        assert row.last_seen_at == deadline - timedelta(minutes=1)
    finally:
        staff.close()
        boards.close()
    assert EventStream(live.base, "/live/board", cookies=board.cookies).status == 401
    assert EventStream(live.base, "/live/staff",
                       cookies=session_cookies(client)).status == 401
    # The live process only reads: the web app's next request ends the sign-in for good
    # (and audits it once).
    assert audit_events(app, "signin.expired") == []
    assert client.get("/desk").status_code == 303
    assert sessions_of(app, "desk-idle") == []
    expired = audit_events(app, "signin.expired")
    assert [(e.actor, e.detail) for e in expired] == [("desk-idle", {"why": "idle"})]
