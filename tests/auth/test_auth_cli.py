"""`intake users create|disable|enable|reset-password|list`, passwords from standard input:
what they store, and a clear message, a non-zero exit and no change when refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake.auth import users
from intake.auth.passwords import verify_password
from intake.cli import ROLES, main
from intake.storage.models import AuditEvent, Role, User, UserSession, utcnow
from support import REPO, command_line_env
from support.auth import db_snapshot

FIRST = "Popliteal-cyst-41"
SECOND = "Baker-cyst-2027!"


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Any:
    """``cli(args, stdin)`` runs `intake ...` in-process on a fresh database."""
    sessions = command_line_env(monkeypatch, tmp_path / "data", database_url)
    runner = CliRunner()

    def run(args: list[str], stdin: str | None = None) -> Any:
        return runner.invoke(main, args, input=stdin, catch_exceptions=False)

    run.sessions = sessions  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Any:
    """On SQLite and PostgreSQL."""
    return _cli(monkeypatch, tmp_path, database_url)


@pytest.fixture
def cli_sqlite(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_url: str) -> Any:
    return _cli(monkeypatch, tmp_path, sqlite_url)


def _user(sessions: sessionmaker[Session], name: str) -> User | None:
    with sessions() as s:
        return s.execute(select(User).where(User.name == name)).scalar_one_or_none()


def test_the_roles_offered_are_the_roles() -> None:
    assert ROLES == tuple(r.value for r in Role)


def test_create_list_disable_enable_reset(cli: Any) -> None:
    sessions = cli.sessions
    out = cli(["users", "create", "Nurse.Kato", "--role", "practitioner"], FIRST + "\n")
    assert out.exit_code == 0, out.output
    assert out.output.strip() == "user nurse.kato created (practitioner)"
    assert cli(["users", "create", "desk.sato", "--role", "front_desk"],
               SECOND + "\r\n").exit_code == 0
    user = _user(sessions, "nurse.kato")
    assert user is not None and user.role == "practitioner" and user.active
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password(user.password_hash, FIRST)
    desk = _user(sessions, "desk.sato")
    assert desk is not None and verify_password(desk.password_hash, SECOND)  # no "\r"
    listed = cli(["users", "list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines() == ["desk.sato\tfront_desk\tactive",
                                          "nurse.kato\tpractitioner\tactive"]

    # A signed-in session of the user, to see disable end it.
    with sessions.begin() as s:
        found = users.find_user(s, "nurse.kato")
        assert found is not None
        users.start_session(s, found, address="192.0.2.1", now=utcnow(),
                            max_age=timedelta(hours=12))
    out = cli(["users", "disable", "NURSE.KATO"])
    assert out.exit_code == 0 and out.output.startswith("user nurse.kato disabled")
    assert "nurse.kato\tpractitioner\tdisabled" in cli(["users", "list"]).output
    with sessions() as s:
        assert s.execute(select(UserSession)).first() is None
    assert cli(["users", "enable", "nurse.kato"]).output.strip() == "user nurse.kato enabled"

    out = cli(["users", "reset-password", "nurse.kato"], SECOND + "\n")
    assert out.exit_code == 0 and out.output.startswith("password of nurse.kato reset")
    user = _user(sessions, "nurse.kato")
    assert user is not None and user.active
    assert verify_password(user.password_hash, SECOND)
    assert not verify_password(user.password_hash, FIRST)

    # A lock-out shows in the list, and reset-password lifts it.
    with sessions.begin() as s:
        s.execute(User.__table__.update().where(User.name == "desk.sato")
                  .values(locked_until=utcnow() + timedelta(minutes=10)))
    assert "desk.sato\tfront_desk\tactive, locked" in cli(["users", "list"]).output
    assert cli(["users", "reset-password", "desk.sato"], FIRST + "\n").exit_code == 0
    assert "desk.sato\tfront_desk\tactive\n" in cli(["users", "list"]).output

    with sessions() as s:
        events = list(s.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())
    assert [(e.actor, e.action, e.entity_id) for e in events
            if e.action.startswith("user.")] == [
        ("cli", "user.created", "nurse.kato"), ("cli", "user.created", "desk.sato"),
        ("cli", "user.disabled", "nurse.kato"), ("cli", "user.enabled", "nurse.kato"),
        ("cli", "user.password_reset", "nurse.kato"),
        ("cli", "user.password_reset", "desk.sato")]
    dump = json.dumps([(e.actor, e.action, e.entity_id, e.detail, e.source) for e in events])
    assert FIRST not in dump and SECOND not in dump


@pytest.mark.parametrize(("args", "stdin", "code", "message"), [
    (["users", "create", "dr.x", "--role", "doctor"], FIRST, 2,
     "Invalid value for '--role': 'doctor' is not one of"),
    (["users", "create", "dr.x"], FIRST, 2, "Missing option '--role'"),
    (["users", "create", "dr.x", "--role", "admin"], "short-1\n", 1,
     "Error: the password must have at least 10 characters"),
    (["users", "create", "dr.x", "--role", "admin"], "dr.x-is-my-name\n", 1,
     "Error: the password must not contain the user name"),
    (["users", "create", "dr.x", "--role", "admin"], "\n", 1,
     "Error: no password on standard input"),
    (["users", "create", "dr.x", "--role", "admin"], "", 1,
     "Error: no password on standard input"),
    (["users", "create", "x", "--role", "admin"], FIRST, 1,
     "Error: the user name must be 2 to 64 characters"),
    (["users", "create", "ＤＲ.ｉｎｏ", "--role", "admin"], FIRST, 1,
     "Error: a user named 'dr.ino' already exists"),
    (["users", "disable", "ghost"], None, 1, "Error: no user named 'ghost'"),
    (["users", "enable", "ghost"], None, 1, "Error: no user named 'ghost'"),
    (["users", "reset-password", "ghost"], SECOND, 1, "Error: no user named 'ghost'"),
    (["users", "reset-password", "dr.ino"], "aaaaaaaaaaaa\n", 1,
     "Error: the password must not repeat one or two characters"),
])
def test_refusals_are_clear_and_change_nothing(cli_sqlite: Any, args: list[str],
                                               stdin: str | None, code: int,
                                               message: str) -> None:
    cli = cli_sqlite
    assert cli(["users", "create", "dr.ino", "--role", "practitioner"],
               FIRST + "\n").exit_code == 0
    before = db_snapshot(cli.sessions)
    out = cli(args, stdin)
    assert out.exit_code == code, out.output
    assert message in out.output
    assert "Traceback" not in out.output
    if stdin and stdin.strip():
        assert stdin.strip() not in out.output.replace(message, "")  # never echoed
    assert db_snapshot(cli.sessions) == before


@pytest.mark.integration  # runs the `intake` command as a process of its own
def test_the_installed_command_reads_the_password_from_a_pipe(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "intake.cli", "users", "create", "admin.ueno",
                           "--role", "admin"], input=FIRST + "\n", env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "user admin.ueno created (admin)"
    assert FIRST not in proc.stdout + proc.stderr
    listed = subprocess.run([sys.executable, "-m", "intake.cli", "users", "list"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert listed.stdout == "admin.ueno\tadmin\tactive\n"
