"""The audit tests' tools: record events under the app's key, tamper with rows the way
someone with database access would (plain SQL, no app code), run `intake audit verify`
as a separate process, and sign staff in through the real form.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from intake import audit, state
from intake.auth.users import create_user
from intake.storage.models import AuditAnchor, AuditEvent, utcnow
from support import REPO, TOKEN_RE

PASSWORD = "Posterior-knee-2026"
# A walk-in patient's name: it must never appear in the trail, its exports or its screen.
WALK_IN = {"family_name": "鈴木", "given_name": "秘子", "family_name_kana": "スズキ",
           "given_name_kana": "ヒコ", "birth_date": "1948-03-09", "sex": "female"}


def record_events(app: Any, n: int, *, actor: str = "alice", action: str = "intake.read",
                  source: str | None = "10.0.0.7") -> list[int]:
    """``n`` events, one transaction each, sealed with the app's key; returns their ids."""
    ids = []
    with app.app_context():
        for i in range(n):
            with state(app).sessions.begin() as s:
                ev = audit.record(s, actor=actor, action=action, entity_type="intake",
                                  entity_id=f"intake-{i}", detail={"n": i}, source=source)
                ids.append(ev.id)
    return ids


def verify(app: Any) -> audit.ChainReport:
    """What `intake audit verify` finds, checked in-process with the app's key."""
    with app.app_context(), state(app).sessions() as s:
        return audit.verify(s)


def edit_event(app: Any, event_id: int, **values: Any) -> None:
    """Change columns of one stored event directly, as someone with SQL access could."""
    with state(app).sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.id == event_id).values(**values))


def delete_event(app: Any, event_id: int) -> None:
    with state(app).sessions.begin() as s:
        s.execute(delete(AuditEvent).where(AuditEvent.id == event_id))


def event(app: Any, event_id: int) -> AuditEvent:
    with state(app).sessions() as s:
        return s.execute(select(AuditEvent).where(AuditEvent.id == event_id)).scalar_one()


def anchor(app: Any) -> AuditAnchor | None:
    with state(app).sessions() as s:
        return s.get(AuditAnchor, 1)


def forge_append(app: Any, *, actor: str = "mallory", seal: str | None = None) -> int:
    """Append an event without the app: correctly chained and hashed (anyone can compute
    SHA-256), sealed with ``seal`` if given (a guess, since the key is unknown)."""
    with state(app).sessions.begin() as s:
        last = s.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)
                         ).scalar_one()
        at = last.at + timedelta(seconds=1)
        detail = {"forged": True}
        digest = audit.digest(last.hash, at, actor, "intake.read", "intake", "x", detail,
                               "10.0.0.66")
        ev = AuditEvent(at=at, actor=actor, action="intake.read", entity_type="intake",
                        entity_id="x", detail=detail, source="10.0.0.66",
                        prev_hash=last.hash, hash=digest,
                        key_id=last.key_id if seal is not None else None, seal=seal)
        s.add(ev)
        s.flush()
        return ev.id


def recompute_from(app: Any, event_id: int) -> None:
    """Re-hash ``event_id`` and every later event, as a forger hiding an edit would: the
    chain is consistent again, only the seals (which need the key) are not."""
    with state(app).sessions.begin() as s:
        events = s.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        prev = audit.GENESIS
        for ev in events:
            if ev.id >= event_id:
                ev.prev_hash = prev
                ev.hash = audit.digest(prev, ev.at, ev.actor, ev.action, ev.entity_type,
                                        ev.entity_id, ev.detail, ev.source)
            prev = ev.hash


def run_cli(app: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """`intake <args>` as its own process, on the app's database and data folder."""
    settings = state(app).settings
    return cli(str(settings.data_dir), settings.database_url, *args)


def cli(data_dir: str, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env.update({"INTAKE_DATA_DIR": data_dir, "INTAKE_DATABASE_URL": database_url})
    return subprocess.run([sys.executable, "-m", "intake.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def make_staff(app: Any, name: str, role: str) -> None:
    """A user made the way `intake users create` makes one (audited, argon2id)."""
    with app.app_context(), state(app).sessions.begin() as s:
        create_user(s, name, role, PASSWORD, actor="cli", now=utcnow())


def sign_in(client: Any, name: str) -> Any:
    """Sign in through the real form (GET it for the CSRF token, then POST)."""
    page = client.get("/auth/signin")
    token = TOKEN_RE.search(page.get_data(as_text=True))
    assert token, page.status_code
    return client.post("/auth/signin", data={"name": name, "password": PASSWORD,
                                             "csrf_token": token.group(1)})


def staff_client(app: Any, name: str, role: str) -> Any:
    make_staff(app, name, role)
    client = app.test_client()
    resp = sign_in(client, name)
    assert resp.status_code == 303, resp.status_code
    return client
