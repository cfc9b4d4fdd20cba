"""Device enrollment (``/devices/enroll``): a one-time code an admin issued, typed on the
device, becomes a long-lived HttpOnly cookie; codes are spent once, expire, and wrong
ones lock the address out; the table keeps only hashes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, text, update

from intake import state
from intake.devices import services
from intake.devices.web import COOKIE
from intake.storage.models import Device, DeviceKind, utcnow
from support import TOKEN_RE, add_device
from support.auth import audit_events

OTHER_ADDRESS = {"REMOTE_ADDR": "10.1.2.3"}


def _post_code(client: Any, code: str, **kw: Any) -> Any:
    """Open the enrollment page and type the code, as staff do on the device."""
    page = client.get("/devices/enroll?lang=en", **kw).get_data(as_text=True)
    found = TOKEN_RE.search(page)
    assert found
    return client.post("/devices/enroll?lang=en", data={"code": code,
                                                         "csrf_token": found.group(1)}, **kw)


def _device(app: Any, name: str) -> Device:
    with state(app).sessions() as s:
        return s.execute(select(Device).where(Device.name == name)).scalar_one()


def _cookie(client: Any) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return str(cookie.value)


def _wrong(code: str, i: int) -> str:
    return f"{(int(code) + 7919 * (i + 1)) % 10 ** 8:08d}"


def test_enroll_page_shows_the_form(devices_app: Any) -> None:
    client = devices_app.test_client()
    resp = client.get("/devices/enroll?kind=board&lang=en")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    html = resp.get_data(as_text=True)
    assert 'name="code"' in html and TOKEN_RE.search(html)
    assert "Register this device" in html
    assert "To use this screen as a front-desk alert board, register it." in html
    tablet = client.get("/devices/enroll?kind=tablet&lang=en").get_data(as_text=True)
    assert "To use this device as a patient tablet, register it." in tablet
    other = client.get("/devices/enroll?kind=%3Cscript%3E&lang=en").get_data(as_text=True)
    assert "<script>" not in other and 'name="kind"' not in other


def test_right_code_sets_a_strict_httponly_cookie_and_opens_the_board(
        devices_app: Any) -> None:
    code = add_device(devices_app, "board", "受付1")
    client = devices_app.test_client()
    resp = _post_code(client, code)
    assert resp.status_code == 303
    assert resp.headers["Location"].split("?")[0] == "/board"
    [set_cookie] = [h for h in resp.headers.getlist("Set-Cookie")
                    if h.startswith(f"{COOKIE}=")]
    attributes = [part.strip() for part in set_cookie.split(";")]
    assert "HttpOnly" in attributes and "SameSite=Strict" in attributes
    assert "Path=/" in attributes
    assert f"Max-Age={400 * 24 * 3600}" in attributes
    assert client.get("/board").status_code == 200
    device = _device(devices_app, "受付1")
    assert device.enrolled_at is not None and device.code_hash is None
    [event] = audit_events(devices_app, "device.enrolled")
    assert event.actor == "device:受付1"


def test_right_code_sends_a_tablet_to_the_kiosk(devices_app: Any) -> None:
    code = add_device(devices_app, "tablet", "タブレット1")
    client = devices_app.test_client()
    resp = _post_code(client, code)
    assert resp.status_code == 303
    assert resp.headers["Location"].split("?")[0] == "/kiosk"
    start = client.get("/kiosk")
    assert start.status_code == 200 and 'name="pin"' in start.get_data(as_text=True)


def test_a_code_works_once(devices_app: Any) -> None:
    code = add_device(devices_app, "board", "受付1")
    first = devices_app.test_client()
    assert _post_code(first, code).status_code == 303
    second = devices_app.test_client()
    resp = _post_code(second, code)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    assert "The code is wrong or has expired." in html and code not in html
    assert second.get_cookie(COOKIE) is None
    assert second.get("/board").status_code == 303
    assert first.get("/board").status_code == 200  # the first device is unaffected


def test_an_expired_code_is_refused(devices_app: Any) -> None:
    code = add_device(devices_app, "board", "受付1")
    with state(devices_app).sessions.begin() as s:
        s.execute(update(Device).where(Device.name == "受付1")
                  .values(code_expires_at=utcnow() - timedelta(seconds=1)))
    client = devices_app.test_client()
    assert _post_code(client, code).status_code == 422
    assert client.get_cookie(COOKIE) is None
    assert _device(devices_app, "受付1").token_hash is None
    assert client.get("/board").status_code == 303


def test_ten_wrong_codes_lock_the_address_out(any_db_app: Any) -> None:
    code = add_device(any_db_app, "board", "受付1")
    client = any_db_app.test_client()
    typed = [_wrong(code, i) for i in range(10)]
    assert code not in typed
    statuses = [_post_code(client, wrong).status_code for wrong in typed]
    assert statuses == [422] * 9 + [429]
    locked = _post_code(client, code)  # even the right code, unchecked
    assert locked.status_code == 429
    assert "registration is locked for 15 minutes" in locked.get_data(as_text=True)
    assert client.get_cookie(COOKIE) is None
    assert _device(any_db_app, "受付1").token_hash is None
    events = audit_events(any_db_app, "device.enroll_failed")
    assert len(events) == 10
    for event in events:
        recorded = repr((event.actor, event.entity_type, event.entity_id, event.detail,
                         event.source))
        for value in [code, *typed]:
            assert value not in recorded
    # The lock-out is of that address: the device can still be enrolled from another.
    elsewhere = any_db_app.test_client()
    assert _post_code(elsewhere, code, environ_base=OTHER_ADDRESS).status_code == 303


def test_only_hashes_of_the_code_and_the_token_are_stored(any_db_app: Any) -> None:
    code = add_device(any_db_app, "board", "受付1")

    def stored() -> str:
        with state(any_db_app).sessions() as s:
            rows = s.execute(text("SELECT * FROM devices")).all()
            events = s.execute(text("SELECT * FROM audit_events")).all()
        return repr([tuple(map(str, row)) for row in [*rows, *events]])

    before = stored()
    assert code not in before
    assert _device(any_db_app, "受付1").code_hash is not None  # the code's hash is there
    client = any_db_app.test_client()
    assert _post_code(client, code).status_code == 303
    token = _cookie(client)
    assert len(token) >= 32
    after = stored()
    assert code not in after and token not in after
    assert _device(any_db_app, "受付1").token_hash == services.token_hash(token)


def test_a_new_code_replaces_the_token_once_spent(devices_app: Any) -> None:
    code = add_device(devices_app, "board", "受付1")
    old = devices_app.test_client()
    assert _post_code(old, code).status_code == 303
    with state(devices_app).sessions.begin() as s:
        again = services.new_code(s, "受付1", actor="admin1", now=utcnow()).code
    assert again != code
    assert old.get("/board").status_code == 200  # works until the new code is used
    new = devices_app.test_client()
    assert _post_code(new, again).status_code == 303
    assert new.get("/board").status_code == 200
    stale = old.get("/board")
    assert stale.status_code == 303
    assert stale.headers["Location"].startswith("/devices/enroll?kind=board")
    assert _post_code(devices_app.test_client(), again).status_code == 422  # spent


def test_a_device_is_only_its_own_kind(devices_app: Any) -> None:
    tablet = devices_app.test_client()
    assert _post_code(tablet, add_device(devices_app, "tablet", "タブレット1")
                      ).status_code == 303
    board = devices_app.test_client()
    assert _post_code(board, add_device(devices_app, "board", "受付1")).status_code == 303

    resp = tablet.get("/board")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/devices/enroll?kind=board")
    assert tablet.get("/board/staff").status_code == 401
    resp = board.get("/kiosk")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/devices/enroll?kind=tablet")

    with state(devices_app).sessions() as s:
        token = _cookie(tablet)
        assert services.identify(s, token, kind=DeviceKind.BOARD) is None
        known = services.identify(s, token, kind=DeviceKind.TABLET)
        assert known is not None and known.name == "タブレット1"
        assert services.identify(s, token) == known
        assert services.identify(s, "not-a-token") is None
        assert services.identify(s, None) is None
