"""Signing in: lock-outs per account and per address, unknown and disabled users refused
like a wrong password, where the browser goes afterwards, and the audit trail."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from intake import state
from intake.auth import users
from intake.storage.models import User, utcnow
from support.auth import (
    PASSWORD,
    audit_events,
    get_user,
    make_user,
    session_cookie,
    sessions_of,
    sign_in,
    sign_out,
)

WRONG = "Not-the-password-1"
ALERT_RE = re.compile(r'<div class="summary" role="alert"><p>([^<]*)</p></div>')


def _message(resp: Any) -> str:
    found = ALERT_RE.search(resp.get_data(as_text=True))
    assert found, resp.get_data(as_text=True)[:500]
    return found.group(1)


def test_five_wrong_passwords_lock_the_account_even_for_the_right_one(db_app: Any) -> None:
    make_user(db_app, "desk.ueda", "front_desk")
    client = db_app.test_client()
    for n in range(1, 5):
        resp = sign_in(client, "desk.ueda", WRONG, lang="en")
        assert resp.status_code == 403
        assert _message(resp) == "The user name or password is wrong."
        assert get_user(db_app, "desk.ueda").failed_signins == n
    resp = sign_in(client, "desk.ueda", WRONG, lang="en")
    assert resp.status_code == 429
    assert _message(resp) == "Too many failed sign-ins: try again in 15 minutes."
    assert resp.headers["Retry-After"] == "900"
    # The right password is refused while the lock lasts, from any browser.
    for browser in (client, db_app.test_client()):
        resp = sign_in(browser, "desk.ueda", PASSWORD, lang="ja")
        assert resp.status_code == 429
        assert "15分間サインインできません" in _message(resp)
        assert session_cookie(browser) is None
    assert sessions_of(db_app) == []
    failed = audit_events(db_app, "signin.failed")
    assert [e.detail["failures"] for e in failed] == [1, 2, 3, 4, 5]
    assert failed[-1].detail["locked_minutes"] == 15
    assert len(audit_events(db_app, "signin.refused_locked")) == 2

    # Fifteen minutes later (moved in the database) the right password works again.
    with state(db_app).sessions.begin() as s:
        s.execute(update(User).values(locked_until=utcnow() - timedelta(seconds=1)))
    resp = sign_in(client, "desk.ueda", PASSWORD)
    assert resp.status_code == 303 and resp.headers["Location"] == "/desk"
    assert get_user(db_app, "desk.ueda").failed_signins == 0


def test_the_lock_lifts_after_fifteen_minutes(db_app: Any) -> None:
    """The service functions take ``now``: the lock-out measured in minutes."""
    make_user(db_app, "dr.mori", "practitioner")
    t0 = utcnow()

    def attempt(password: str, at: timedelta) -> users.SignIn:
        with state(db_app).sessions.begin() as s:
            return users.authenticate(s, "dr.mori", password, address="192.0.2.7",
                                      now=t0 + at)

    verdicts = [attempt(WRONG, timedelta(0)) for _ in range(5)]
    assert [v.locked_minutes for v in verdicts] == [0, 0, 0, 0, 15]
    assert attempt(PASSWORD, timedelta(minutes=14)).locked_minutes == 1
    assert not attempt(PASSWORD, timedelta(minutes=14, seconds=59)).ok
    assert attempt(PASSWORD, timedelta(minutes=15, seconds=5)).ok
    # A success clears the count: four more failures do not lock.
    assert [attempt(WRONG, timedelta(minutes=16)).locked_minutes for _ in range(4)] == [0] * 4


def test_unknown_and_disabled_users_are_refused_like_a_wrong_password(auth_app: Any) -> None:
    make_user(auth_app, "desk.real", "front_desk")
    make_user(auth_app, "desk.gone", "front_desk", active=False)
    attempts = {"wrong password": ("desk.real", WRONG),
                "unknown user": ("desk.ghost", PASSWORD),
                "disabled user, right password": ("desk.gone", PASSWORD)}
    seen: dict[str, list[tuple[int, str]]] = {}
    for what, (name, password) in attempts.items():
        client = auth_app.test_client()
        seen[what] = [(r.status_code, _message(r)) for r in
                      (sign_in(client, name, password, lang="en") for _ in range(6))]
        assert session_cookie(client) is None
    expected = [(403, "The user name or password is wrong.")] * 4 + [
        (429, "Too many failed sign-ins: try again in 15 minutes.")] * 2
    assert seen == {what: expected for what in attempts}, seen
    assert sessions_of(auth_app) == []
    # The unknown name typed is not recorded (it may be a password in the wrong box).
    assert "desk.ghost" not in json.dumps([(e.actor, e.entity_id, e.detail)
                                           for e in audit_events(auth_app)])
    # A user created later under a name that was tried is not locked by those tries.
    with state(auth_app).sessions.begin() as s:
        users.create_user(s, "desk.ghost", "front_desk", PASSWORD, actor="t", now=utcnow())
    assert sign_in(auth_app.test_client(), "desk.ghost", PASSWORD).status_code == 303
    # Enabling the disabled user lifts its lock.
    with state(auth_app).sessions.begin() as s:
        users.enable_user(s, "desk.gone", actor="test")
    assert sign_in(auth_app.test_client(), "desk.gone", PASSWORD).status_code == 303


def test_twenty_failures_from_one_address_lock_it_across_names(db_app: Any) -> None:
    make_user(db_app, "desk.kudo", "front_desk")
    client = db_app.test_client()
    statuses = [sign_in(client, f"guess{n:02d}", WRONG).status_code for n in range(20)]
    assert statuses == [403] * 19 + [429]
    # Now a real user with the right password is refused from this address...
    resp = sign_in(db_app.test_client(), "desk.kudo", PASSWORD, lang="en")
    assert resp.status_code == 429 and "15 minutes" in _message(resp)
    assert get_user(db_app, "desk.kudo").failed_signins == 0  # not counted against them
    # ...but not from another one,
    other = db_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.99"
    assert sign_in(other, "desk.kudo", PASSWORD).status_code == 303
    # and the address lock lifts after fifteen minutes.
    with state(db_app).sessions.begin() as s:
        later = users.authenticate(s, "desk.kudo", PASSWORD, address="127.0.0.1",
                                   now=utcnow() + timedelta(minutes=15, seconds=5))
    assert later.ok


@pytest.mark.parametrize("evil", [
    "//evil.example/desk", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "javascript:alert(1)", "desk", "http:/evil.example", ""])
def test_next_goes_only_to_a_local_path(auth_app: Any, evil: str) -> None:
    make_user(auth_app, "desk.noda", "front_desk")
    client = auth_app.test_client()
    form = client.get("/auth/signin", query_string={"next": evil}).get_data(as_text=True)
    assert 'name="next" value=""' in form
    resp = sign_in(client, "desk.noda", next_path=evil)
    assert resp.status_code == 303 and resp.headers["Location"] == "/desk"


def test_next_brings_the_user_back_to_the_page_they_asked_for(auth_app: Any) -> None:
    make_user(auth_app, "dr.ota", "practitioner")
    client = auth_app.test_client()
    resp = client.get("/desk/?lang=en")
    assert resp.status_code == 303
    assert resp.headers["Location"] == "/auth/signin?next=%2Fdesk%2F%3Flang%3Den&lang=en"
    form = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/desk/?lang=en"' in form and "Staff sign-in" in form
    resp = sign_in(client, "dr.ota", next_path="/desk/?lang=en")
    assert resp.headers["Location"] == "/desk/?lang=en"
    assert client.get("/desk/?lang=en").status_code == 200


@pytest.mark.parametrize(("role", "home"), [
    ("front_desk", "/desk"), ("practitioner", "/review"), ("admin", "/admin")])
def test_each_role_lands_on_its_page(auth_app: Any, role: str, home: str) -> None:
    make_user(auth_app, "someone", role)
    resp = sign_in(auth_app.test_client(), "someone")
    assert resp.status_code == 303 and resp.headers["Location"] == home


@pytest.mark.parametrize("form", [{"name": "desk.x"}, {"password": PASSWORD},
                                  {"name": "", "password": PASSWORD},
                                  {"name": "x" * 65, "password": PASSWORD}])
def test_an_incomplete_form_is_refused_and_counts_nothing(auth_app: Any,
                                                          form: dict[str, str]) -> None:
    client = auth_app.test_client()
    page = client.get("/auth/signin?lang=en").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    resp = client.post("/auth/signin?lang=en", data={**form, "csrf_token": token})
    assert resp.status_code == 422
    assert _message(resp) == "Enter your user name and password."
    assert audit_events(auth_app) == []


def test_audit_events_of_signing_in_and_out_hold_no_password(db_app: Any) -> None:
    make_user(db_app, "desk.abe", "front_desk")
    client = db_app.test_client()
    assert sign_in(client, "desk.abe", WRONG).status_code == 403
    assert sign_in(client, "desk.abe").status_code == 303
    assert sign_out(client).headers["Location"] == "/auth/signin?signed_out=1"
    events = audit_events(db_app)
    assert [(e.actor, e.action, e.entity_type, e.entity_id) for e in events] == [
        ("desk.abe", "signin.failed", "user", "desk.abe"),
        ("desk.abe", "signin.succeeded", "user", "desk.abe"),
        ("desk.abe", "signout", "user", "desk.abe"),
    ]
    assert events[0].detail == {"reason": "wrong password", "failures": 1}
    assert events[1].detail == {"role": "front_desk"}
    assert all(e.source == "127.0.0.1" for e in events)
    dump = json.dumps([[getattr(e, c.name) for c in e.__table__.columns] for e in events],
                      default=str, ensure_ascii=False)
    assert PASSWORD not in dump and WRONG not in dump


def test_the_language_switch_keeps_where_to_return(auth_app: Any) -> None:
    client = auth_app.test_client()
    page = client.get("/auth/signin?next=%2Fdesk&timed_out=1&lang=ja").get_data(as_text=True)
    found = re.search(r'href="([^"]+)" lang="en"', page)
    assert found, page
    switch = found.group(1).replace("&amp;", "&")
    assert switch == "/auth/signin?next=%2Fdesk&timed_out=1&lang=en"
    english = client.get(switch).get_data(as_text=True)
    assert "You were signed out after a period without activity." in english
    assert 'name="next" value="/desk"' in english
