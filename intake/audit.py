"""The audit trail: an append-only, hash-chained log of reads and changes.

Each event's hash covers the previous event's hash, so editing or deleting a
row breaks the chain and `intake audit verify` reports where. Details carry
ids, states and codes only, never answers or demographics.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from intake.storage.models import AuditEvent, utcnow

GENESIS = "0" * 64
# Any constant works; it serialises appenders on PostgreSQL.
_PG_LOCK_KEY = 4_711_001


def _digest(prev_hash: str, at: datetime, actor: str, action: str, entity_type: str,
            entity_id: str, detail: Mapping[str, Any]) -> str:
    payload = json.dumps(
        [prev_hash, at.isoformat(timespec="microseconds"), actor, action, entity_type,
         entity_id, detail],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record(session: Session, *, actor: str, action: str, entity_type: str, entity_id: str,
           detail: Mapping[str, Any] | None = None) -> AuditEvent:
    """Append one event inside the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS
    # Microsecond precision survives every backend, so the hash is recomputable.
    at = utcnow()
    detail = dict(detail or {})
    event = AuditEvent(at=at, actor=actor, action=action, entity_type=entity_type,
                       entity_id=entity_id, detail=detail, prev_hash=prev,
                       hash=_digest(prev, at, actor, action, entity_type, entity_id, detail))
    session.add(event)
    session.flush()
    return event


def verify(session: Session) -> tuple[int, list[str]]:
    """Walk the chain; return (events checked, problems found)."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    for ev in session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        count += 1
        if ev.prev_hash != prev:
            problems.append(f"event {ev.id}: previous-hash link broken (an event before it "
                            "was changed or removed)")
        expected = _digest(ev.prev_hash, ev.at, ev.actor, ev.action, ev.entity_type,
                           ev.entity_id, ev.detail)
        if ev.hash != expected:
            problems.append(f"event {ev.id}: content does not match its hash")
        prev = ev.hash
    return count, problems
