"""Server-side sessions: a new id at each sign-in, worthless after sign-out, the idle
time-out and the absolute lifetime (time moved in the database), requests that are not
activity, and disable / reset-password ending open sessions at once."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import timedelta
from typing import Any

import pytest

from intake import state
from intake.auth import users
from intake.auth.users import SESSION_COOKIE
from intake.storage.models import utcnow
from intake.web import require_roles
from support.auth import (
    PASSWORD,
    age_sessions,
    audit_events,
    make_user,
    session_cookie,
    sessions_of,
    sign_in,
    sign_out,
    signed_in_client,
)

IDLE = timedelta(minutes=15)  # the default INTAKE_SESSION_IDLE_MINUTES


def _signed_in(client: Any) -> bool:
    data = client.get("/auth/state").get_json()
    return bool(data["signed_in"])


def _to_signin(resp: Any) -> bool:
    return resp.status_code == 303 and resp.headers["Location"].startswith("/auth/signin?")


def test_each_sign_in_gets_a_new_session_id(db_app: Any) -> None:
    make_user(db_app, "desk.iwata", "front_desk")
    client = db_app.test_client()
    client.set_cookie(SESSION_COOKIE, "planted-by-someone-else")  # session fixation
    assert sign_in(client, "desk.iwata").status_code == 303
    first = session_cookie(client)
    assert first is not None and first != "planted-by-someone-else" and len(first) >= 43
    assert [s.id for s in sessions_of(db_app)] == [hashlib.sha256(first.encode()).hexdigest()]

    # Signing in again in the same browser: another id, and the old session ends.
    assert sign_in(client, "desk.iwata").status_code == 303
    second = session_cookie(client)
    assert second not in (None, first)
    assert [s.id for s in sessions_of(db_app)] == [
        hashlib.sha256(second.encode()).hexdigest()]  # type: ignore[union-attr]
    stale = db_app.test_client()
    stale.set_cookie(SESSION_COOKIE, first)
    assert not _signed_in(stale) and _to_signin(stale.get("/desk"))

    # Another browser of the same user has a session of its own.
    other = signed_in_client(db_app, "front_desk", "desk.iwata")
    assert session_cookie(other) not in (first, second)
    assert len(sessions_of(db_app, "desk.iwata")) == 2
    assert _signed_in(client) and _signed_in(other)


def test_the_old_cookie_is_worthless_after_sign_out(db_app: Any) -> None:
    client = signed_in_client(db_app, "front_desk")
    token = session_cookie(client)
    assert client.get("/desk").status_code == 200
    resp = sign_out(client)
    assert resp.status_code == 303 and resp.headers["Location"] == "/auth/signin?signed_out=1"
    assert session_cookie(client) is None
    assert sessions_of(db_app) == []
    notice = client.get(resp.headers["Location"] + "&lang=en").get_data(as_text=True)
    assert "You have signed out." in notice
    replay = db_app.test_client()
    replay.set_cookie(SESSION_COOKIE, token or "")
    assert _to_signin(replay.get("/desk"))
    assert replay.get("/desk/rows").status_code == 401
    assert not _signed_in(replay)
    # Signing out without a session is harmless.
    assert sign_out(db_app.test_client()).status_code == 303


def test_idle_time_out(db_app: Any) -> None:
    client = signed_in_client(db_app, "front_desk", "desk.kono")
    age_sessions(db_app, idle=IDLE - timedelta(seconds=30))
    state_now = client.get("/auth/state").get_json()
    assert state_now["signed_in"] and 20 <= state_now["seconds_left"] <= 30
    age_sessions(db_app, idle=IDLE + timedelta(seconds=1))
    resp = client.get("/desk?lang=en")
    assert _to_signin(resp)
    assert not _signed_in(client)
    assert sessions_of(db_app) == []
    expired = audit_events(db_app, "signin.expired")
    assert [(e.actor, e.detail) for e in expired] == [("desk.kono", {"why": "idle"})]
    # The page the browser is sent to says why.
    page = client.get("/auth/signin?timed_out=1&lang=en").get_data(as_text=True)
    assert "You were signed out after a period without activity." in page


def test_a_shorter_idle_setting_is_honoured(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url, session_idle_minutes="1")
    client = signed_in_client(app, "practitioner")
    data = client.get("/auth/state").get_json()
    assert 50 <= data["seconds_left"] <= 60 and data["idle_seconds"] == 60
    assert data["role"] == "practitioner"
    age_sessions(app, idle=timedelta(seconds=61))
    assert not _signed_in(client)


def test_absolute_lifetime(db_app: Any) -> None:
    client = signed_in_client(db_app, "admin", "admin.sano")
    (row,) = sessions_of(db_app)
    assert row.expires_at - row.created_at == timedelta(hours=12)
    # However active, the session ends at its lifetime; the time left says so.
    age_sessions(db_app, idle=timedelta(0), lifetime_over=-timedelta(seconds=40))
    assert client.get("/auth/state").get_json()["seconds_left"] <= 40
    age_sessions(db_app, idle=timedelta(0), lifetime_over=timedelta(seconds=1))
    assert _to_signin(client.get("/desk"))
    assert [(e.actor, e.detail) for e in audit_events(db_app, "signin.expired")] == [
        ("admin.sano", {"why": "lifetime"})]
    assert sessions_of(db_app) == []


def test_background_requests_do_not_extend_the_session(make_app: Any,
                                                       database_url: str) -> None:
    app = make_app(database_url)
    client = signed_in_client(app, "front_desk")

    def last_seen_ago() -> float:
        (row,) = sessions_of(app)
        return (utcnow() - row.last_seen_at).total_seconds()

    age_sessions(app, idle=timedelta(minutes=5))
    # (The live stream of the live process does not either: tests/live.)
    for url in ("/auth/state", "/desk/state", "/desk/rows"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert last_seen_ago() >= 299, url
    assert client.get("/auth/keepalive").get_json() == {"signed_in": True}
    assert last_seen_ago() < 5
    age_sessions(app, idle=timedelta(minutes=5))
    assert client.get("/desk").status_code == 200
    assert last_seen_ago() < 5


def test_disabling_a_user_ends_their_sessions_at_once(db_app: Any) -> None:
    browsers = [signed_in_client(db_app, "front_desk", "desk.hara") for _ in range(2)]
    bystander = signed_in_client(db_app, "front_desk", "desk.oda")
    with state(db_app).sessions.begin() as s:
        users.disable_user(s, "desk.hara", actor="admin.sano")
    for client in browsers:
        assert _to_signin(client.get("/desk"))
    assert sessions_of(db_app, "desk.hara") == []
    assert bystander.get("/desk").status_code == 200
    assert sign_in(db_app.test_client(), "desk.hara").status_code == 403
    with state(db_app).sessions.begin() as s:
        users.enable_user(s, "desk.hara", actor="admin.sano")
    assert sign_in(db_app.test_client(), "desk.hara").status_code == 303
    assert [(e.actor, e.entity_id) for e in audit_events(db_app, "user.disabled")] == [
        ("admin.sano", "desk.hara")]


def test_resetting_a_password_ends_sessions_and_the_old_password(db_app: Any) -> None:
    client = signed_in_client(db_app, "practitioner", "dr.ishii")
    with state(db_app).sessions.begin() as s:
        users.reset_password(s, "dr.ishii", "Baker-cyst-2027", actor="cli", now=utcnow())
    assert _to_signin(client.get("/desk"))
    assert sessions_of(db_app) == []
    assert sign_in(client, "dr.ishii", PASSWORD).status_code == 403
    assert sign_in(client, "dr.ishii", "Baker-cyst-2027").status_code == 303


def test_an_ending_session_is_audited_once_when_requests_race(db_app: Any) -> None:
    """Several requests of one page (the stream, a refresh, the idle check) often arrive
    together just after the time-out: one of them ends the session, the others find it
    gone, and there is one audit event."""
    client = signed_in_client(db_app, "front_desk")
    token = session_cookie(client)
    age_sessions(db_app, idle=IDLE + timedelta(minutes=1))
    sessions = state(db_app).sessions
    first = sessions()
    assert users.load_session(first, token, now=utcnow(), idle=IDLE, touch=True) is None
    outcome: list[Any] = []

    def second() -> None:
        with sessions.begin() as s:
            outcome.append(users.load_session(s, token, now=utcnow(), idle=IDLE,
                                              touch=True))

    racer = threading.Thread(target=second)
    racer.start()
    time.sleep(0.3)  # the second request reads the row (PostgreSQL) or waits (SQLite)
    first.commit()
    first.close()
    racer.join(timeout=30)
    assert outcome == [None]
    assert len(audit_events(db_app, "signin.expired")) == 1


def test_require_roles_needs_roles() -> None:
    with pytest.raises(ValueError, match="one or more Role"):
        require_roles()
    with pytest.raises(ValueError, match="one or more Role"):
        require_roles("admin")  # type: ignore[arg-type]
