"""The board page and the answer to an alert over HTTP (Flask test client): an enrolled
board answers with a staff name chosen there, a signed-in member of staff as themself;
every refusal leaves the alert as it was."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import select

from intake import state
from intake.devices import services as devices
from intake.live.notify import CHANNEL
from intake.storage.models import Alert, Intake, utcnow
from support import enroll_client, wait_for
from support.auth import (
    audit_events,
    csrf_token,
    make_user,
    sign_in,
    sign_out,
    signed_in_client,
)

Submit = Callable[..., str]
BOARD = "受付1"
DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


def _board(app: Any, name: str = BOARD) -> tuple[Any, str]:
    """An enrolled board's browser and the CSRF token of its page."""
    client = enroll_client(app, app.test_client(), "board", name)
    page = client.get("/board")
    assert page.status_code == 200
    found = DATA_CSRF.search(page.get_data(as_text=True))
    assert found
    return client, found.group(1)


def _desk(app: Any, name: str = "desk.kana", role: str = "front_desk") -> tuple[Any, str]:
    """A signed-in member of staff and a CSRF token of their browser."""
    client = signed_in_client(app, role, name)
    return client, csrf_token(client)


def _alert_of(app: Any, intake_id: str) -> Alert:
    with state(app).sessions() as s:
        return s.execute(select(Alert).where(Alert.intake_id == intake_id)).scalar_one()


def _alert(app: Any, submit: Submit, case_id: str = "pub-03") -> int:
    return _alert_of(app, submit(app, case_id)).id


def _stored(app: Any, alert_id: int) -> tuple[Any, ...]:
    with state(app).sessions() as s:
        a = s.get(Alert, alert_id)
        assert a is not None
        return (a.state, a.in_progress_by, a.in_progress_via, a.done_by, a.done_via)


def _answers(app: Any) -> list[Any]:
    return audit_events(app, "alert.in_progress") + audit_events(app, "alert.done")


# --- the board page -----------------------------------------------------------------------


def test_board_page_streams_alerts_and_holds_no_patient_data(board_app: Any,
                                                             submit: Submit) -> None:
    walk_in = {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
               "given_name_kana": "ハナコ", "birth_date": "1960-04-01", "sex": "female"}
    by_record = submit(board_app, "pub-03", record_number="MRN-7781")
    by_name = submit(board_app, "pub-02", record_number=None, demographics=walk_in)
    client, _ = _board(board_app)
    resp = client.get("/board")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert 'data-stream="/live/board"' in html and 'data-mode="board"' in html
    assert BOARD in html  # the board's own name
    with state(board_app).sessions() as s:
        business_ids = [s.get(Intake, i).business_id for i in (by_record, by_name)]  # type: ignore[union-attr]
    for private in ["MRN-7781", "山田", "花子", "ヤマダ", "ハナコ", "1960-04-01",
                    by_record, by_name, *business_ids]:
        assert private not in html, private


def test_board_staff_lists_active_users_only(board_app: Any) -> None:
    make_user(board_app, "aiko", "practitioner")
    make_user(board_app, "ben", "front_desk")
    make_user(board_app, "carol", "admin", active=False)
    make_user(board_app, "dan", "admin")
    client, _ = _board(board_app)
    resp = client.get("/board/staff")
    assert resp.status_code == 200
    # The front desk first (they answer most), then practitioners, then admins.
    assert resp.get_json() == {"names": ["ben", "aiko", "dan"]}
    assert board_app.test_client().get("/board/staff").status_code == 401


def test_board_page_needs_an_enrolled_board(board_app: Any) -> None:
    resp = board_app.test_client().get("/board")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/devices/enroll?kind=board")


# --- answering from a board ---------------------------------------------------------------------


def test_board_answers_with_a_chosen_staff_name(board_app: Any, submit: Submit) -> None:
    make_user(board_app, "aiko", "front_desk")
    alert_id = _alert(board_app, submit)
    client, token = _board(board_app)
    resp = client.post(f"/alerts/{alert_id}", data={
        "state": "in_progress", "via": "board", "name": "aiko", "csrf_token": token})
    assert resp.status_code == 200
    assert resp.get_json() == {"id": alert_id, "state": "in_progress", "changed": True}
    assert _stored(board_app, alert_id) == ("in_progress", "aiko", f"board:{BOARD}", None,
                                            None)
    [event] = audit_events(board_app, "alert.in_progress")
    assert event.actor == "aiko" and event.entity_id == str(alert_id)
    assert event.detail["declared"] is True and event.detail["via"] == f"board:{BOARD}"


def test_board_answer_with_an_unknown_or_disabled_name_is_refused(board_app: Any,
                                                                  submit: Submit) -> None:
    make_user(board_app, "aiko", "front_desk")
    make_user(board_app, "carol", "front_desk", active=False)
    alert_id = _alert(board_app, submit)
    client, token = _board(board_app)
    for name in ("zed", "carol", ""):
        resp = client.post(f"/alerts/{alert_id}", data={
            "state": "in_progress", "via": "board", "name": name, "csrf_token": token})
        assert resp.status_code == 400, name
        assert "error" in resp.get_json()
    assert _stored(board_app, alert_id) == ("open", None, None, None, None)
    assert _answers(board_app) == []


# --- answering signed in --------------------------------------------------------------------------


def test_signed_in_desk_answers_as_itself(board_app: Any, submit: Submit) -> None:
    alert_id = _alert(board_app, submit)
    client, token = _desk(board_app)
    resp = client.post(f"/alerts/{alert_id}", data={
        "state": "done", "via": "desk", "csrf_token": token})
    assert resp.status_code == 200
    assert resp.get_json() == {"id": alert_id, "state": "done", "changed": True}
    assert _stored(board_app, alert_id) == ("done", None, None, "desk.kana", "desk")
    [event] = audit_events(board_app, "alert.done")
    assert event.actor == "desk.kana" and "declared" not in event.detail

    again = client.post(f"/alerts/{alert_id}", data={
        "state": "done", "via": "desk", "csrf_token": token})
    assert again.status_code == 200 and again.get_json()["changed"] is False
    back = client.post(f"/alerts/{alert_id}", data={
        "state": "in_progress", "via": "desk", "csrf_token": token})
    assert back.status_code == 409 and back.get_json()["conflict"] is True
    assert _stored(board_app, alert_id) == ("done", None, None, "desk.kana", "desk")
    assert len(_answers(board_app)) == 1


def test_signed_in_answer_ignores_a_name_field(board_app: Any, submit: Submit) -> None:
    make_user(board_app, "aiko", "front_desk")
    alert_id = _alert(board_app, submit)
    client, token = _desk(board_app, "dr.mori", "practitioner")
    resp = client.post(f"/alerts/{alert_id}", data={
        "state": "in_progress", "via": "review", "name": "aiko", "csrf_token": token})
    assert resp.status_code == 200
    assert _stored(board_app, alert_id)[:3] == ("in_progress", "dr.mori", "review")


def test_answer_refusals(board_app: Any, submit: Submit) -> None:
    """Unknown alert 404, bad state or via 400, nobody 401, no CSRF token 400."""
    alert_id = _alert(board_app, submit)
    client, token = _desk(board_app)
    assert client.post("/alerts/999999", data={
        "state": "done", "via": "desk", "csrf_token": token}).status_code == 404
    for bad in ({"state": "open", "via": "desk"}, {"state": "done", "via": "phone"},
                {"state": "", "via": "desk"}):
        resp = client.post(f"/alerts/{alert_id}", data={**bad, "csrf_token": token})
        assert resp.status_code == 400, bad
    no_token = client.post(f"/alerts/{alert_id}", data={"state": "done", "via": "desk"})
    assert no_token.status_code == 400
    assert no_token.get_json()["error"] == "missing CSRF token"
    forged = client.post(f"/alerts/{alert_id}", data={
        "state": "done", "via": "desk", "csrf_token": "0" * 64})
    assert forged.status_code == 400

    nobody = board_app.test_client()
    nobody_token = csrf_token(nobody)  # a valid token: the refusal is about who asks
    resp = nobody.post(f"/alerts/{alert_id}", data={
        "state": "done", "via": "board", "name": "desk.kana", "csrf_token": nobody_token})
    assert resp.status_code == 401
    assert _stored(board_app, alert_id) == ("open", None, None, None, None)
    assert _answers(board_app) == []


def test_board_post_without_csrf_token_is_refused(board_app: Any, submit: Submit) -> None:
    make_user(board_app, "aiko", "front_desk")
    alert_id = _alert(board_app, submit)
    client, _ = _board(board_app)
    resp = client.post(f"/alerts/{alert_id}", data={
        "state": "in_progress", "via": "board", "name": "aiko"})
    assert resp.status_code == 400
    assert _stored(board_app, alert_id)[0] == "open"


def test_revoked_board_is_sent_to_enrollment_and_cannot_answer(board_app: Any,
                                                               submit: Submit) -> None:
    make_user(board_app, "aiko", "front_desk")
    alert_id = _alert(board_app, submit)
    client, token = _board(board_app)
    with state(board_app).sessions.begin() as s:
        devices.revoke(s, BOARD, actor="admin1", now=utcnow())
    page = client.get("/board")
    assert page.status_code == 303
    assert page.headers["Location"].startswith("/devices/enroll?kind=board")
    assert client.get("/board/staff").status_code == 401
    resp = client.post(f"/alerts/{alert_id}", data={
        "state": "in_progress", "via": "board", "name": "aiko", "csrf_token": token})
    assert resp.status_code == 401
    assert _stored(board_app, alert_id)[0] == "open"


# --- the live notice ----------------------------------------------------------------------------


def test_an_answer_publishes_an_alert_notice(make_app: Callable[..., Any], sqlite_url: str,
                                             private_redis: Any, submit: Submit) -> None:
    # (A Redis of this test alone: notices span a Redis server's databases.)
    clean_redis = private_redis.url
    app = make_app(sqlite_url, redis_url=clean_redis)
    alert_id = _alert(app, submit)
    client, token = _desk(app)
    listener = redis.Redis.from_url(clean_redis).pubsub()
    listener.subscribe(CHANNEL)
    confirmed = wait_for(lambda: listener.get_message(timeout=0.2), timeout=5,
                         message="the subscription")
    assert confirmed["type"] == "subscribe"
    try:
        form = {"state": "in_progress", "via": "desk", "csrf_token": token}
        assert client.post(f"/alerts/{alert_id}", data=form).status_code == 200
        message = wait_for(lambda: listener.get_message(timeout=0.2), timeout=5,
                           message="the alert notice")
        assert json.loads(message["data"]) == {"kind": "alert", "alert": alert_id}
        # A second tap changes nothing and announces nothing.
        again = client.post(f"/alerts/{alert_id}", data=form)
        assert again.get_json()["changed"] is False
        assert listener.get_message(timeout=0.5) is None
    finally:
        listener.close()


# --- a board open all day ---------------------------------------------------------------


def test_a_board_gets_a_fresh_form_token_after_a_sign_in_on_its_pc(board_app: Any,
                                                                    submit: Submit) -> None:
    """Someone signs in on the reception PC: the CSRF cookie starts anew and the token the
    board's page loaded with is refused; the page fetches a fresh one and answers."""
    make_user(board_app, "aiko", "front_desk")
    make_user(board_app, "desk.pc", "front_desk")
    alert_id = _alert(board_app, submit)
    client, old_token = _board(board_app)
    sign_in(client, "desk.pc")  # on the same browser: a new CSRF cookie
    sign_out(client)
    form = {"state": "in_progress", "via": "board", "name": "aiko"}
    assert client.post(f"/alerts/{alert_id}", data={**form, "csrf_token": old_token}
                       ).status_code == 400
    assert _stored(board_app, alert_id)[0] == "open"
    fresh = client.get("/alerts/token")
    assert fresh.status_code == 200 and fresh.headers["Cache-Control"] == "no-store"
    token = fresh.get_json()["csrf_token"]
    assert token != old_token
    assert client.post(f"/alerts/{alert_id}", data={**form, "csrf_token": token}
                       ).status_code == 200
    assert _stored(board_app, alert_id)[:3] == ("in_progress", "aiko", f"board:{BOARD}")


def test_the_board_page_renews_its_device_cookie(board_app: Any) -> None:
    client, _ = _board(board_app)
    page = client.get("/board")
    cookie = next(c for c in page.headers.getlist("Set-Cookie")
                  if c.startswith("intake_device="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Max-Age=34560000" in cookie  # 400 days from today, every time it opens


def test_an_alert_id_no_database_holds_is_404_not_500(board_app: Any) -> None:
    client, token = _desk(board_app)
    for alert_id in (2**31, 10**30):
        resp = client.post(f"/alerts/{alert_id}", data={
            "state": "done", "via": "desk", "csrf_token": token})
        assert resp.status_code == 404, alert_id
