"""`intake devices add|code|revoke|list`: the code printed enrolls the device, the list
shows each state, a revocation stops the device and tells the live process, and a
refused command says why, exits non-zero and changes nothing."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.cli import KINDS, main
from intake.devices import services as devices
from intake.live.notify import CHANNEL
from intake.storage.models import AuditEvent, Device, DeviceKind, utcnow
from support import command_line_env
from support.auth import db_snapshot

CODE_RE = re.compile(r"^one-time code for (.+) \((board|tablet)\): (\d{4})-(\d{4})$", re.M)
UNTIL_RE = re.compile(r"^open (/board|/kiosk) on the device and type the code before "
                      r"\d\d:\d\d$", re.M)


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str,
         redis_url: str | None = None) -> Any:
    """``cli(*args)`` runs `intake ...` in-process on a fresh database."""
    sessions = command_line_env(monkeypatch, tmp_path / "data", database_url, redis_url)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    run.sessions = sessions  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Any:
    """On SQLite and PostgreSQL."""
    return _cli(monkeypatch, tmp_path, database_url)


@pytest.fixture
def cli_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> Any:
    return _cli(monkeypatch, tmp_path, sqlite_url)


def _code(out: Any, name: str, kind: str) -> str:
    assert out.exit_code == 0, out.output
    found = CODE_RE.search(out.output)
    assert found, out.output
    assert found.group(1, 2) == (name, kind)
    assert UNTIL_RE.search(out.output), out.output
    return found.group(3) + found.group(4)


def _enroll(sessions: sessionmaker[Session], code: str) -> devices.Enrolled:
    with sessions.begin() as s:
        verdict = devices.enroll(s, code, address="192.0.2.20", now=utcnow())
        if verdict.device is not None:
            s.expunge(verdict.device)
        return verdict


def _states(cli: Any) -> dict[str, tuple[str, str, str]]:
    out = cli("devices", "list")
    assert out.exit_code == 0, out.output
    rows = [line.split("\t") for line in out.output.splitlines()]
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def test_the_kinds_offered_are_the_kinds() -> None:
    assert KINDS == tuple(k.value for k in DeviceKind)


def test_add_code_list_revoke(cli: Any) -> None:
    sessions = cli.sessions
    assert cli("devices", "list").output == ""
    board_code = _code(cli("devices", "add", "受付１", "--kind", "board"), "受付1", "board")
    out = cli("devices", "add", "Tablet 1", "--kind", "tablet")
    tablet_code = _code(out, "Tablet 1", "tablet")
    assert "open /kiosk on the device" in out.output
    assert _states(cli) == {"受付1": ("board", "pending", "last seen never"),
                            "Tablet 1": ("tablet", "pending", "last seen never")}
    with sessions() as s:
        stored = s.execute(select(Device).where(Device.name == "受付1")).scalar_one()
        assert stored.created_by == "cli" and stored.code_hash not in (None, board_code)
    # The printed code enrolls the device (typed with the dash, as printed).
    verdict = _enroll(sessions, f"{board_code[:4]}-{board_code[4:]}")
    assert verdict.ok and verdict.device is not None and verdict.device.name == "受付1"
    board_token = verdict.token
    states = _states(cli)
    assert states["受付1"][:2] == ("board", "active, connected")  # enrolling is being seen
    assert re.fullmatch(r"last seen \d{4}-\d\d-\d\d \d\d:\d\d", states["受付1"][2])
    # A new code for the tablet: the first one stops working, the new one enrolls.
    new_tablet = _code(cli("devices", "code", "Tablet 1"), "Tablet 1", "tablet")
    assert not _enroll(sessions, tablet_code).ok
    assert _enroll(sessions, new_tablet).ok
    assert _states(cli)["Tablet 1"][1] == "active, connected"
    # Revoked: the board's token no longer identifies it.
    out = cli("devices", "revoke", "受付1")
    assert out.exit_code == 0 and out.output.strip() == "device 受付1 revoked"
    with sessions() as s:
        assert devices.identify(s, board_token) is None
    assert _states(cli)["受付1"][1] == "revoked"
    # A code issued and left to expire: not enrolled.
    cli("devices", "add", "Tablet 2", "--kind", "tablet")
    with sessions.begin() as s:
        s.execute(update(Device).where(Device.name == "Tablet 2").values(
            code_expires_at=utcnow() - timedelta(seconds=1)))
    assert _states(cli)["Tablet 2"][1] == "not_enrolled"
    # A new code after a revocation brings the board back.
    again = _code(cli("devices", "code", "受付1"), "受付1", "board")
    assert _states(cli)["受付1"][1] == "pending"
    assert _enroll(sessions, again).ok
    assert _states(cli)["受付1"][1] == "active, connected"
    with sessions.begin() as s:  # ...and a board no live process has noted for a while
        s.execute(update(Device).where(Device.name == "受付1").values(
            last_seen_at=utcnow() - timedelta(minutes=5)))
    assert _states(cli)["受付1"][1] == "active"
    # Everything audited as the command line, never with a code.
    with sessions() as s:
        events = list(s.execute(select(AuditEvent).where(AuditEvent.action.like("device.%"))
                                .order_by(AuditEvent.id)).scalars())
    actions = [e.action for e in events if e.actor == "cli"]
    assert actions.count("device.added") == 3 and actions.count("device.revoked") == 1
    assert actions.count("device.code_issued") == 5
    for e in events:
        for code in (board_code, tablet_code, new_tablet, again):
            assert code not in json.dumps(e.detail) and code not in e.entity_id


def test_revoke_tells_the_live_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       sqlite_url: str, clean_redis: str) -> None:
    cli = _cli(monkeypatch, tmp_path, sqlite_url, redis_url=clean_redis)
    _code(cli("devices", "add", "Board 1", "--kind", "board"), "Board 1", "board")
    with cli.sessions() as s:
        device_id = s.execute(select(Device.id).where(Device.name == "Board 1")).scalar_one()
    subscriber = redis.Redis.from_url(clean_redis).pubsub(ignore_subscribe_messages=True)
    subscriber.subscribe(CHANNEL)
    try:
        assert cli("devices", "revoke", "Board 1").exit_code == 0
        wanted = {"kind": "device", "device": device_id}
        seen = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and wanted not in seen:
            message = subscriber.get_message(timeout=0.5)
            if message is not None:
                seen.append(json.loads(message["data"]))
        assert wanted in seen
    finally:
        subscriber.close()


@pytest.mark.parametrize(("args", "exit_code", "message"), [
    (["devices", "add", "Ｂｏａｒｄ  1", "--kind", "tablet"], 1,
     "Error: a device named 'Board 1' already exists"),
    (["devices", "add", "", "--kind", "board"], 1,
     "Error: the device name must be 1 to 40 characters"),
    (["devices", "add", "   ", "--kind", "board"], 1,
     "Error: the device name must be 1 to 40 characters"),
    (["devices", "add", "x" * 41, "--kind", "board"], 1,
     "Error: the device name must be 1 to 40 characters"),
    (["devices", "add", "Desk\x001", "--kind", "board"], 1,
     "Error: the device name must not contain control characters"),
    (["devices", "add", "Board 2", "--kind", "phone"], 2, "Invalid value for '--kind'"),
    (["devices", "add", "Board 2"], 2, "Missing option '--kind'"),
    (["devices", "code", "ghost"], 1, "Error: no device named 'ghost'"),
    (["devices", "revoke", "ghost"], 1, "Error: no device named 'ghost'"),
])
def test_refusals_are_clear_and_change_nothing(cli_sqlite: Any, args: list[str],
                                               exit_code: int, message: str) -> None:
    cli = cli_sqlite
    _code(cli("devices", "add", "Board 1", "--kind", "board"), "Board 1", "board")
    before = db_snapshot(cli.sessions)
    out = cli(*args)
    assert out.exit_code == exit_code, out.output
    assert message in out.output
    assert "Traceback" not in out.output and not CODE_RE.search(out.output)
    assert db_snapshot(cli.sessions) == before
