"""The database away under an open board: the live process stops its heartbeats, so the
board says (and sounds) that alerts are not reaching it, instead of looking quiet; when
the database is back the heartbeats resume and the alerts raised meanwhile arrive."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import create_engine, make_url, text

from intake import state
from support.live import EventStream, alerts_of, emergency, enroll_board, on_databases

pytestmark = on_databases("postgresql")


def _connections(app: Any, admin_url: str, database: str, allowed: bool) -> None:
    """Let nobody (or everybody again) connect to ``database``, ending who is in (this
    process's own pooled connections are closed first, not killed under it)."""
    state(app).sessions.kw["bind"].dispose()  # (the engine stays known, for teardown)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS '
                          f'{"true" if allowed else "false"}'))
        if not allowed:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n AND pid <> pg_backend_pid()"),
                         {"n": database})
    admin.dispose()


def test_no_heartbeat_while_the_database_is_away(make_world: Any, module_database: str,
                                                 postgres_admin_url: str) -> None:
    world = make_world()
    live = world.live(redis=False)
    board = enroll_board(world.app)
    database = make_url(module_database).database or ""
    with EventStream(live.base, "/live/board", cookies=board.cookies) as stream:
        assert stream.until("state") is not None
        assert stream.until("ping", timeout=3) is not None  # heartbeats every second
        _connections(world.app, postgres_admin_url, database, allowed=False)
        try:
            stream.drain()
            started = time.monotonic()
            # Within the hub's staleness bound (5 polls), the heartbeats stop...
            last_ping = time.monotonic()
            while time.monotonic() - started < 20 and time.monotonic() - last_ping < 4:
                try:
                    event = stream.next(timeout=0.5)
                except AssertionError:  # nothing within the half second
                    continue
                if event is not None and event.name == "ping":
                    last_ping = time.monotonic()
            assert time.monotonic() - last_ping >= 4, \
                "the board still heard heartbeats with no database behind them"
            # Nor is a new screen let in to an old list as if it were live.
            with EventStream(live.base, "/live/board", cookies=board.cookies) as refused:
                assert refused.status == 503 and b"state" not in refused.body
            assert time.monotonic() - started <= 12
        finally:
            _connections(world.app, postgres_admin_url, database, allowed=True)
        # ...and resume once it is back, with what was raised meanwhile... (raised now
        # that the database takes writes again, before the hub has read it).
        intake_id = emergency(world.app)
        stream.until("state", 15, lambda e: any(a["level"] == "emergency"
                                                for a in alerts_of(e).values()))
        assert stream.until("ping", timeout=3) is not None, intake_id  # heartbeats again
