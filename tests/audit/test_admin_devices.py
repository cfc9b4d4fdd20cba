"""The devices screen at /admin/devices: only admins see it; it lists every device with
its state and history in the clinic's time zone; adding a device and asking for a new
code show a one-time code once (never stored in plain text, logged or put in a URL) that
enrolls the device, through the domain and through the real enrollment page; revoking
asks first, stops the device at once and tells the live process; bad input gets a clear
4xx naming the problem and changes nothing; every form needs its CSRF token; viewing and
every change are audited with the admin's name."""

from __future__ import annotations

import json
import logging
import re
import string
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import select, update

from intake import state
from intake.admin.i18n import CATALOG
from intake.auth.i18n import CATALOG as AUTH
from intake.devices import services as devices
from intake.devices.web import COOKIE
from intake.kiosk.i18n import CATALOG as SHARED
from intake.live.notify import CHANNEL
from intake.storage.models import AuditEvent, Device, DeviceKind, utcnow
from support.audit import staff_client
from support.auth import (
    assert_no_inline_code,
    assert_staff_headers,
    bare_client,
    csrf_token,
)

TEMPLATES = Path(__file__).resolve().parents[2] / "templates" / "admin"
CODE_RE = re.compile(r'<p class="device-code mono" id="device-code" data-kind="(\w+)">'
                     r"(\d{4})-(\d{4})</p>")
ERROR_RE = re.compile(r'<p role="alert" id="error-body">([^<]*)</p>')
ROW_RE = re.compile(r'<tr data-device-id="(\d+)" data-state="(\w+)"[^>]*>(.*?)</tr>', re.S)
KANA_OR_KANJI = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
ZONE = ZoneInfo("Asia/Tokyo")  # INTAKE_DISPLAY_TIMEZONE's default


def _text(resp: Any) -> str:
    return str(resp.get_data(as_text=True))


def _admin(app: Any, name: str = "admin-1") -> Any:
    return staff_client(app, name, "admin")


def _post(client: Any, path: str, **data: str) -> Any:
    """A form post with this browser's CSRF token (read from the sign-in page, which
    records nothing)."""
    return client.post(path, data={"csrf_token": csrf_token(client), **data})


def _code(resp: Any) -> str:
    """The one-time code a page shows (8 digits, shown as 1234-5678)."""
    found = CODE_RE.search(_text(resp))
    assert resp.status_code == 200 and found, (resp.status_code, _text(resp)[-1500:])
    return found.group(2) + found.group(3)


def _add(client: Any, name: str, kind: str, lang: str = "en") -> tuple[Any, str]:
    """Add a device through the form; the response and the code it shows."""
    resp = _post(client, f"/admin/devices?lang={lang}", name=name, kind=kind)
    code = _code(resp)
    assert f'data-kind="{kind}"' in _text(resp)
    return resp, code


def _device(app: Any, name: str) -> Device:
    with state(app).sessions() as s:
        return s.execute(select(Device).where(Device.name == name)).scalar_one()


def _rows(page: str) -> dict[int, tuple[str, str]]:
    return {int(i): (st, body) for i, st, body in ROW_RE.findall(page)}


def _events(app: Any, action: str | None = None) -> list[AuditEvent]:
    with state(app).sessions() as s:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(s.execute(query).scalars())


def _devices_snapshot(app: Any) -> tuple[list[tuple[Any, ...]], int]:
    """The devices table and the number of audit events: what a refusal must not change."""
    with state(app).sessions() as s:
        rows = [(d.id, d.name, d.kind, d.token_hash, d.code_hash, d.code_expires_at,
                 d.enrolled_at, d.revoked_at, d.revoked_by)
                for d in s.execute(select(Device).order_by(Device.id)).scalars()]
        count = len(s.execute(select(AuditEvent.id)).all())
    return rows, count


def _enroll_in_browser(app: Any, code: str, kind: str = "board") -> Any:
    """A new browser types ``code`` on the real enrollment page; returns that browser."""
    device = bare_client(app)
    form = device.get(f"/devices/enroll?kind={kind}&lang=ja")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', _text(form))
    assert token
    resp = device.post("/devices/enroll?lang=ja",
                       data={"csrf_token": token.group(1), "code": code, "kind": kind})
    home = "/board" if kind == "board" else "/kiosk"
    assert resp.status_code == 303 and resp.headers["Location"].startswith(home), (
        resp.status_code, _text(resp)[-800:])
    return device


# --- who gets in ------------------------------------------------------------------------


def test_only_admins_get_in_and_others_change_nothing(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _add(admin, "Front desk 1", "board")
    device_id = _device(sqlite_app, "Front desk 1").id
    gets = ["/admin/devices", f"/admin/devices/{device_id}/revoke"]
    posts: list[tuple[str, dict[str, str]]] = [
        ("/admin/devices", {"name": "Sneaky", "kind": "board"}),
        (f"/admin/devices/{device_id}/code", {}),
        (f"/admin/devices/{device_id}/revoke", {"confirm": "yes"}),
    ]
    before = _devices_snapshot(sqlite_app)
    anonymous = bare_client(sqlite_app)
    for path in gets:
        resp = anonymous.get(path)
        assert resp.status_code == 303, path
        assert resp.headers["Location"].startswith("/auth/signin?next=")
    for path, data in posts:
        resp = anonymous.post(path, data={"csrf_token": csrf_token(anonymous), **data})
        assert resp.status_code == 401, path
    assert _devices_snapshot(sqlite_app) == before
    for role in ("practitioner", "front_desk"):
        client = staff_client(sqlite_app, f"{role.replace('_', '-')}-1", role)
        marks = _devices_snapshot(sqlite_app)[1]
        for path in gets:
            resp = client.get(path)
            assert resp.status_code == 403, (role, path)
            assert "data-device-id" not in _text(resp) and "Front desk 1" not in _text(resp)
        for path, data in posts:
            resp = _post(client, path, **data)
            assert resp.status_code == 403, (role, path)
            assert not CODE_RE.search(_text(resp))
        rows, count = _devices_snapshot(sqlite_app)
        assert rows == before[0]
        # Only the sign-in itself was recorded.
        assert {e.action for e in _events(sqlite_app)[marks:]} <= {"auth.signin"}
        assert count >= marks


def test_the_nav_has_devices_and_the_pages_pass_the_csp(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    for path in ("/admin", "/admin/users"):
        page = _text(admin.get(path + "?lang=ja"))
        assert 'href="/admin/devices?lang=ja">端末</a>' in page
    resp, _code = _add(admin, "受付1", "board", lang="ja")
    device_id = _device(sqlite_app, "受付1").id
    pages = {
        "list": admin.get("/admin/devices?lang=en"),
        "issued": resp,
        "confirm": admin.get(f"/admin/devices/{device_id}/revoke"),
        "error": _post(admin, "/admin/devices", name="", kind="board"),
        "not found": admin.get("/admin/devices/999/revoke"),
    }
    for where, page in pages.items():
        assert_staff_headers(page, where)
        assert_no_inline_code(_text(page), where)
        assert 'aria-current="page">' in _text(page) and "/admin/devices" in _text(page)
    en = _text(pages["list"])
    assert 'href="/admin/devices?lang=en" aria-current="page">Devices</a>' in en


# --- the list -----------------------------------------------------------------------------


def test_the_list_shows_every_device_state_and_history_in_local_time(
        trail_app: Any) -> None:
    admin = _admin(trail_app)
    empty = _text(admin.get("/admin/devices?lang=en"))
    assert "There are no devices yet." in empty
    _, board_code = _add(admin, "Front desk 1", "board")
    _add(admin, "Tablet 1", "tablet")
    _add(admin, "Tablet 2", "tablet")
    _add(admin, "Tablet 3", "tablet")
    _enroll_in_browser(trail_app, board_code)
    _post(admin, f"/admin/devices/{_device(trail_app, 'Tablet 2').id}/revoke", confirm="yes")
    ids = {n: _device(trail_app, n).id for n in ("Front desk 1", "Tablet 1", "Tablet 2",
                                                 "Tablet 3")}
    # Known times (UTC) to read back in Asia/Tokyo (UTC+9); Tablet 3's code has expired.
    created = datetime(2026, 11, 21, 14, 59, 59, tzinfo=UTC)
    with state(trail_app).sessions.begin() as s:
        s.execute(update(Device).values(created_at=created))
        s.execute(update(Device).where(Device.id == ids["Front desk 1"]).values(
            enrolled_at=datetime(2026, 11, 21, 15, 0, 0, tzinfo=UTC),
            last_seen_at=datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)))
        s.execute(update(Device).where(Device.id == ids["Tablet 2"]).values(
            revoked_at=datetime(2026, 11, 23, 0, 0, 0, tzinfo=UTC)))
        s.execute(update(Device).where(Device.id == ids["Tablet 3"]).values(
            code_expires_at=utcnow() - timedelta(seconds=1)))
    page = _text(admin.get("/admin/devices?lang=en"))
    rows = _rows(page)
    assert list(rows) == [ids["Front desk 1"], ids["Tablet 1"], ids["Tablet 2"],
                          ids["Tablet 3"]]  # boards first, then by name
    board = rows[ids["Front desk 1"]]
    assert board[0] == "active"
    assert "Front desk 1" in board[1] and ">board<" in board[1] and ">active<" in board[1]
    # Created, in local time, by whom.
    assert '>2026-11-21 23:59:59</span><br><span class="note">by admin-1<' in board[1]
    assert "2026-11-22 00:00:00" in board[1]  # enrolled
    assert "2026-11-22 10:02:03" in board[1]  # last seen
    assert "Revoke" in board[1] and "New code" in board[1]
    pending = rows[ids["Tablet 1"]]
    assert pending[0] == "pending" and ">tablet<" in pending[1]
    assert "pending code" in pending[1] and "code valid until" in pending[1]
    assert "not yet" in pending[1] and "never" in pending[1]
    revoked = rows[ids["Tablet 2"]]
    assert revoked[0] == "revoked" and ">revoked<" in revoked[1]
    assert '>2026-11-23 09:00:00</span><br><span class="note">by admin-1<' in revoked[1]
    assert "Revoke" not in revoked[1] and "New code" in revoked[1]  # can come back
    lapsed = rows[ids["Tablet 3"]]
    assert lapsed[0] == "not_enrolled" and ">not enrolled<" in lapsed[1]
    assert "Times are in Asia/Tokyo time." in page
    ja = _rows(_text(admin.get("/admin/devices?lang=ja")))
    assert ">受付ボード<" in ja[ids["Front desk 1"]][1] and ">使用中<" in ja[ids["Front desk 1"]][1]
    assert ">タブレット<" in ja[ids["Tablet 1"]][1]
    assert "登録待ち（コード発行済み）" in ja[ids["Tablet 1"]][1]
    assert ">無効化済み<" in ja[ids["Tablet 2"]][1] and ">未登録<" in ja[ids["Tablet 3"]][1]
    assert "実行：admin-1" in ja[ids["Tablet 2"]][1]


def test_viewing_the_list_is_audited(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _add(admin, "Front desk 1", "board")
    admin.get("/admin/devices?lang=en")
    viewed = _events(sqlite_app, "devices.viewed")[-1]
    assert (viewed.actor, viewed.source, viewed.entity_type) == ("admin-1", "127.0.0.1",
                                                                 "device")
    assert viewed.detail == {"rows": 1}
    assert _events(sqlite_app)[-1].action == "devices.viewed"


# --- adding a device and its one-time code ---------------------------------------------


def test_add_shows_the_code_once_and_it_enrolls_through_the_real_page(
        trail_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin = _admin(trail_app)
    resp, code = _add(admin, "  受付１  ", "board", lang="ja")  # NFKC, spaces trimmed
    page = _text(resp)
    assert "「受付1」（受付ボード）を追加しました" in page
    shown = f"{code[:4]}-{code[4:]}"
    assert f'id="device-code" data-kind="board">{shown}</p>' in page
    device = _device(trail_app, "受付1")
    assert device.kind == "board" and device.created_by == "admin-1"
    expires = device.code_expires_at
    assert expires is not None
    local = expires.astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")
    assert f"有効期限：{local}（Asia/Tokyo）まで（15分間）" in page
    assert "（/board）を開き" in page and 'id="device-url">http://localhost/board</p>' in page
    assert "一度だけ表示され" in page
    # Not stored in plain text, not in the URL, the headers, the log or the trail.
    assert device.code_hash not in (None, code, shown) and len(device.code_hash or "") == 64
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Location" not in resp.headers
    assert all(code not in v and shown not in v for _, v in resp.headers.items())
    assert not any(code in r.getMessage() or shown in r.getMessage()
                   for r in caplog.records)
    for ev in _events(trail_app):
        assert code not in json.dumps(ev.detail) and code not in ev.entity_id
    # Shown once: the list (and any later page) does not show it again.
    listed = _text(admin.get("/admin/devices?lang=ja"))
    assert code not in listed and shown not in listed
    assert "登録待ち" in listed
    # Typed on the device (as shown, with the dash): the device gets its cookie, and the
    # board answers.
    browser = _enroll_in_browser(trail_app, shown)
    cookie = browser.get_cookie(COOKIE)
    assert cookie is not None and cookie.http_only and len(cookie.value) > 20
    assert browser.get("/board?lang=ja").status_code == 200
    with state(trail_app).sessions() as s:
        known = devices.identify(s, cookie.value)
    assert known is not None and known.name == "受付1" and known.kind is DeviceKind.BOARD
    assert _device(trail_app, "受付1").code_hash is None  # spent
    # The same code does not work twice.
    with state(trail_app).sessions.begin() as s:
        again = devices.enroll(s, code, address="192.0.2.9", now=utcnow())
    assert not again.ok
    assert _rows(_text(admin.get("/admin/devices")))[device.id][0] == "active"


def test_a_tablet_code_enrolls_with_the_domain_function(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    resp, code = _add(admin, "Tablet 1", "tablet")
    page = _text(resp)
    assert "“Tablet 1” (tablet) was added" in page
    assert "(/kiosk)" in page and 'id="device-url">http://localhost/kiosk</p>' in page
    with state(sqlite_app).sessions.begin() as s:
        verdict = devices.enroll(s, code, address="192.0.2.10", now=utcnow())
        assert verdict.ok and verdict.device is not None
        assert (verdict.device.name, verdict.device.kind) == ("Tablet 1", "tablet")
        token = verdict.token
    with state(sqlite_app).sessions() as s:
        assert devices.identify(s, token, kind=DeviceKind.TABLET) is not None
        assert devices.identify(s, token, kind=DeviceKind.BOARD) is None


def test_the_public_base_url_names_the_page_to_open(make_app: Callable[..., Any],
                                                    sqlite_url: str) -> None:
    app = make_app(sqlite_url, public_base_url="https://intake.clinic.example")
    resp, _ = _add(_admin(app), "Front desk 1", "board")
    assert 'id="device-url">https://intake.clinic.example/board</p>' in _text(resp)


# --- a new code ---------------------------------------------------------------------------


def test_a_new_code_replaces_the_earlier_one_and_moves_the_device(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _, first = _add(admin, "Front desk 1", "board")
    device_id = _device(sqlite_app, "Front desk 1").id
    resp = _post(admin, f"/admin/devices/{device_id}/code?lang=en")
    second = _code(resp)
    assert "A new registration code for “Front desk 1” (board)" in _text(resp)
    assert "Any earlier code no longer works." in _text(resp)
    with state(sqlite_app).sessions.begin() as s:
        assert not devices.enroll(s, first, address="192.0.2.1", now=utcnow()).ok
    old_browser = _enroll_in_browser(sqlite_app, second)
    old_token = old_browser.get_cookie(COOKIE).value
    # A third code for a replaced board: the old one keeps working until it is used.
    resp = _post(admin, f"/admin/devices/{device_id}/code")
    third = _code(resp)
    with state(sqlite_app).sessions() as s:
        assert devices.identify(s, old_token) is not None
    assert _rows(_text(admin.get("/admin/devices")))[device_id][0] == "active"
    new_browser = _enroll_in_browser(sqlite_app, third)
    assert new_browser.get("/board").status_code == 200
    resp = old_browser.get("/board")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/devices/enroll")
    issued = _events(sqlite_app, "device.code_issued")
    assert [e.actor for e in issued] == ["admin-1"] * 3
    assert {e.entity_id for e in issued} == {str(device_id)}


# --- revoking -----------------------------------------------------------------------------


def test_revoke_asks_first_then_stops_the_device_and_tells_the_live_process(
        make_app: Callable[..., Any], database_url: str, clean_redis: str) -> None:
    app = make_app(database_url, redis_url=clean_redis)
    admin = _admin(app)
    _, code = _add(admin, "Front desk 1", "board")
    device_id = _device(app, "Front desk 1").id
    browser = _enroll_in_browser(app, code)
    token = browser.get_cookie(COOKIE).value
    assert browser.get("/board").status_code == 200
    # The list's button opens a confirmation page; a post without its confirmation
    # shows that page again. Neither changes anything.
    list_page = _text(admin.get("/admin/devices?lang=en"))
    assert f'href="/admin/devices/{device_id}/revoke?lang=en"' in list_page
    before = _devices_snapshot(app)
    confirm = admin.get(f"/admin/devices/{device_id}/revoke?lang=en")
    page = _text(confirm)
    assert confirm.status_code == 200 and "Revoke “Front desk 1”?" in page
    assert "This board stops showing alerts at once" in page
    assert 'name="confirm" value="yes"' in page and 'name="csrf_token"' in page
    unconfirmed = _post(admin, f"/admin/devices/{device_id}/revoke?lang=ja")
    assert unconfirmed.status_code == 200
    assert "「Front desk 1」を無効化しますか？" in _text(unconfirmed)
    assert _devices_snapshot(app) == before
    subscriber = redis.Redis.from_url(clean_redis).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(CHANNEL)
    try:
        resp = _post(admin, f"/admin/devices/{device_id}/revoke?lang=en", confirm="yes")
        assert resp.status_code == 303
        assert resp.headers["Location"] == f"/admin/devices?lang=en&revoked={device_id}"
        notices = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and {"kind": "device",
                                               "device": device_id} not in notices:
            message = subscriber.get_message(timeout=0.5)
            if message is not None:
                notices.append(json.loads(message["data"]))
        assert {"kind": "device", "device": device_id} in notices
    finally:
        subscriber.close()
    with state(app).sessions() as s:
        assert devices.identify(s, token) is None
    resp = browser.get("/board")
    assert resp.status_code == 303
    assert resp.headers["Location"].startswith("/devices/enroll?kind=board")
    after = _text(admin.get(f"/admin/devices?lang=en&revoked={device_id}"))
    assert "“Front desk 1” was revoked" in after
    state_, row = _rows(after)[device_id]
    assert state_ == "revoked" and "by admin-1" in row
    revoked = _events(app, "device.revoked")
    assert [(e.actor, e.entity_id) for e in revoked] == [("admin-1", str(device_id))]
    # Revoking again is refused (409) and changes nothing; a new code brings it back.
    before = _devices_snapshot(app)
    again = _post(admin, f"/admin/devices/{device_id}/revoke?lang=en", confirm="yes")
    assert again.status_code == 409
    assert '<p role="alert" id="error-body">“Front desk 1” is already revoked.</p>' in _text(
        again)
    assert admin.get(f"/admin/devices/{device_id}/revoke").status_code == 409
    assert _devices_snapshot(app) == before
    resp = _post(admin, f"/admin/devices/{device_id}/code")
    code = _code(resp)
    assert _rows(_text(admin.get("/admin/devices")))[device_id][0] == "pending"
    back = _enroll_in_browser(app, code)
    assert back.get("/board").status_code == 200


def test_revoking_a_device_that_never_enrolled_clears_its_code(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _, code = _add(admin, "Tablet 1", "tablet")
    device_id = _device(sqlite_app, "Tablet 1").id
    resp = _post(admin, f"/admin/devices/{device_id}/revoke", confirm="yes")
    assert resp.status_code == 303
    with state(sqlite_app).sessions.begin() as s:
        assert not devices.enroll(s, code, address="192.0.2.3", now=utcnow()).ok


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "status", "ja", "en"), [
    ({"name": "", "kind": "board"}, 400, "「名前」：1〜40文字で入力してください。",
     "“Name”: enter 1 to 40 characters."),
    ({"name": " \u3000 ", "kind": "board"}, 400, "「名前」：1〜40文字で入力してください。",
     "“Name”: enter 1 to 40 characters."),
    ({"name": "x" * 41, "kind": "tablet"}, 400, "「名前」：1〜40文字で入力してください。",
     "“Name”: enter 1 to 40 characters."),
    ({"name": "Desk\x00 1", "kind": "board"}, 400, "「名前」：制御文字は使えません。",
     "“Name”: control characters are not allowed."),
    ({"name": "Desk 2", "kind": "phone"}, 400, "「種類」：受付ボードかタブレットを選んでください。",
     "“Kind”: choose board or tablet."),
    ({"name": "Desk 2"}, 400, "「種類」：受付ボードかタブレットを選んでください。",
     "“Kind”: choose board or tablet."),
    ({"name": "ｆｒｏｎｔ  desk 1", "kind": "tablet"}, 409,
     "「front desk 1」という名前の端末はすでにあります。",
     "A device named “front desk 1” already exists"),
])
def test_a_bad_new_device_is_refused_naming_the_problem(
        sqlite_app: Any, data: dict[str, str], status: int, ja: str, en: str) -> None:
    admin = _admin(sqlite_app)
    _add(admin, "front desk 1", "board")
    before = _devices_snapshot(sqlite_app)
    for lang, message in (("ja", ja), ("en", en)):
        resp = _post(admin, f"/admin/devices?lang={lang}", **data)
        page = _text(resp)
        assert resp.status_code == status, (lang, resp.status_code)
        found = ERROR_RE.search(page)
        assert found and message in found.group(1), page[-1500:]
        assert not CODE_RE.search(page)
        assert 'id="add-device"' in page  # the form again, to correct
    assert _devices_snapshot(sqlite_app) == before  # nothing written, nothing audited


def test_a_race_or_a_new_domain_rule_is_still_a_clear_refusal(
        sqlite_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two admins adding the same name at once (the unique index decides), or a refusal
    the page's own checks do not know: 409 / 400 with a message, never a 500."""
    admin = _admin(sqlite_app)
    _add(admin, "Front desk 1", "board")
    before = _devices_snapshot(sqlite_app)
    monkeypatch.setattr("intake.admin.services.check_new_device", lambda *a: None)
    monkeypatch.setattr("intake.devices.services.find", lambda *a: None)
    resp = _post(admin, "/admin/devices?lang=en", name="Front desk 1", kind="board")
    assert resp.status_code == 409
    assert "A device named “Front desk 1” already exists" in _text(resp)
    resp = _post(admin, "/admin/devices?lang=en", name="", kind="board")
    assert resp.status_code == 400 and "Check what was entered." in _text(resp)
    assert _devices_snapshot(sqlite_app) == before


def test_an_unknown_device_is_a_404(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _add(admin, "Front desk 1", "board")
    before = _devices_snapshot(sqlite_app)
    for device_id in ("999", "0", "2147483648", "99999999999999999999"):
        for path, data in ((f"/admin/devices/{device_id}/code", {}),
                           (f"/admin/devices/{device_id}/revoke", {"confirm": "yes"}),
                           (f"/admin/devices/{device_id}/revoke", {})):
            resp = _post(admin, path + "?lang=en", **data)
            assert resp.status_code == 404, (path, resp.status_code)
            found = ERROR_RE.search(_text(resp))
            assert found and f"There is no device number {int(device_id)}" in found.group(1)
        assert admin.get(f"/admin/devices/{device_id}/revoke").status_code == 404
    for path in ("/admin/devices/abc/code", "/admin/devices/-1/revoke",
                 "/admin/devices/1.5/code"):
        assert _post(admin, path).status_code == 404, path
    assert _devices_snapshot(sqlite_app) == before


def test_every_form_needs_its_csrf_token(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app)
    _add(admin, "Front desk 1", "board")
    device_id = _device(sqlite_app, "Front desk 1").id
    foreign = csrf_token(sqlite_app.test_client())
    before = _devices_snapshot(sqlite_app)
    for path, data in (("/admin/devices", {"name": "Desk 9", "kind": "board"}),
                       (f"/admin/devices/{device_id}/code", {}),
                       (f"/admin/devices/{device_id}/revoke", {"confirm": "yes"})):
        for token in (None, "", "0" * 64, foreign):
            form = dict(data) if token is None else {**data, "csrf_token": token}
            resp = admin.post(path + "?lang=en", data=form)
            assert resp.status_code == 400, (path, token, resp.status_code)
            assert "This form has expired" in _text(resp)
            assert not CODE_RE.search(_text(resp))
        resp = admin.post(path, data={**data, "csrf_token": csrf_token(admin)},
                          headers={"Origin": "https://evil.example"})
        assert resp.status_code == 400
    assert _devices_snapshot(sqlite_app) == before


# --- the audit trail and the strings -----------------------------------------------------


def test_every_change_is_audited_with_the_admins_name(sqlite_app: Any) -> None:
    admin = _admin(sqlite_app, "admin-kato")
    _, code = _add(admin, "Front desk 1", "board")
    device_id = str(_device(sqlite_app, "Front desk 1").id)
    _post(admin, f"/admin/devices/{device_id}/code")
    _post(admin, f"/admin/devices/{device_id}/revoke", confirm="yes")
    trail = [(e.action, e.actor, e.entity_type, e.entity_id, e.source)
             for e in _events(sqlite_app) if e.action.startswith("device.")]
    assert trail == [
        ("device.added", "admin-kato", "device", device_id, "127.0.0.1"),
        ("device.code_issued", "admin-kato", "device", device_id, "127.0.0.1"),
        ("device.code_issued", "admin-kato", "device", device_id, "127.0.0.1"),
        ("device.revoked", "admin-kato", "device", device_id, "127.0.0.1"),
    ]
    assert _device(sqlite_app, "Front desk 1").revoked_by == "admin-kato"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_string_is_in_both_languages_and_known_to_the_templates() -> None:
    for key, (ja, en) in CATALOG.items():
        assert ja.strip() and en.strip(), key
        assert _fields(ja) == _fields(en), key
        assert not KANA_OR_KANJI.search(en), key
    for key in ("devices_title", "kind_board", "kind_tablet", "state_active",
                "state_pending", "state_revoked", "state_not_enrolled", "code_how"):
        assert KANA_OR_KANJI.search(CATALOG[key][0]), key
    assert CATALOG["kind_board"] == ("受付ボード", "board")
    assert CATALOG["kind_tablet"] == ("タブレット", "tablet")
    known = set(CATALOG) | set(AUTH) | set(SHARED)
    used: set[str] = set()
    for name in ("devices.html", "_nav.html"):
        text = (TEMPLATES / name).read_text()
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""", text))
        # Keys built from a value: every value has its string.
        for prefix in re.findall(r"""\bt\(\s*["']([a-z_]+_)["']\s*\+""", text):
            assert prefix in {"kind_", "state_", "revoke_"}, prefix
    assert used and used <= known, sorted(used - known)
    for kind in DeviceKind:
        assert {f"kind_{kind.value}", f"kind_{kind.value}_desc",
                f"revoke_{kind.value}"} <= set(CATALOG)
    for st in ("active", "pending", "revoked", "not_enrolled"):
        assert f"state_{st}" in CATALOG

