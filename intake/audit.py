"""The audit trail: an append-only, hash-chained log of reads and changes.

Each event's hash covers the previous event's hash, so editing or deleting a
row breaks the chain and `intake audit verify` reports where. Details carry
ids, states and codes only, never answers or demographics.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
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
            entity_id: str, detail: Mapping[str, Any], source: str = "") -> str:
    fields: list[Any] = [prev_hash, at.isoformat(timespec="microseconds"), actor, action,
                         entity_type, entity_id, detail]
    if source:  # events from before the source was recorded hash without it
        fields.append(source)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def current_source() -> str:
    """Where an event comes from: the client address of the web request being served,
    else this host and process (a worker, the sweeper or a command)."""
    try:
        from flask import has_request_context, request

        if has_request_context():
            return (request.remote_addr or "unknown")[:100]
    except ImportError:  # pragma: no cover - Flask is a dependency
        pass
    return f"{socket.gethostname()}:{os.getpid()}"[:100]


def record(session: Session, *, actor: str, action: str, entity_type: str, entity_id: str,
           detail: Mapping[str, Any] | None = None, source: str | None = None) -> AuditEvent:
    """Append one event inside the caller's transaction.

    ``actor`` is who (a user's sign-in name, ``system``, ``api``...), ``action`` what,
    ``entity_type``/``entity_id`` to which record, ``source`` from where (default:
    :func:`current_source`)."""
    src = current_source() if source is None else source[:100]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    prev = session.execute(
        select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar_one_or_none() or GENESIS
    # Microsecond precision survives every backend, so the hash is recomputable.
    at = utcnow()
    detail = dict(detail or {})
    event = AuditEvent(at=at, actor=actor, action=action, entity_type=entity_type,
                       entity_id=entity_id, detail=detail, source=src, prev_hash=prev,
                       hash=_digest(prev, at, actor, action, entity_type, entity_id, detail,
                                    src))
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
                           ev.entity_id, ev.detail, ev.source)
        if ev.hash != expected:
            problems.append(f"event {ev.id}: content does not match its hash")
        prev = ev.hash
    return count, problems
