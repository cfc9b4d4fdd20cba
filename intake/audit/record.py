"""Recording: append an event to the trail inside the caller's transaction, chained to
the one before it, sealed with the key, and move the anchor (the package docstring
says what each of these catches). Also the key itself: where it comes from, and the
seals and hash every part of the trail uses."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, select, text
from sqlalchemy.orm import Session

from intake.config import Settings, ensure_secret_key
from intake.storage.db import AUDIT_KEY
from intake.storage.models import AuditAnchor, AuditEvent, utcnow

GENESIS = "0" * 64
# Any constant works; it serialises appenders on PostgreSQL (SQLite transactions here
# all start with BEGIN IMMEDIATE, which serialises them already).
PG_LOCK_KEY = 4_711_001
ANCHOR_ID = 1
_KEY_LABEL = b"intake audit seal v1"


# --- the key -----------------------------------------------------------------------


def derive_key(secret: str) -> bytes:
    """The sealing key: derived from the secret key, so a seal never reveals the secret
    key itself and the secret key's other uses (cookies, CSRF) stay separate."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A public fingerprint of a key, stored beside each seal: tells "sealed with another
    key" (the secret key changed, or a command runs with other settings) from "forged"."""
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:16]



def signing_key(settings: Settings | None = None) -> bytes:
    """The sealing key of ``settings`` (derived from their secret key), or without them
    the key of the Flask app being served (its secret key, from the app's settings).

    There is no other source. Code that runs outside the web app (workers, the live
    process, commands) passes its settings' key: it makes its sessions with
    ``session_factory(url, audit_key=signing_key(settings))`` (see :func:`session_key`),
    or gives ``key=`` to :func:`record` and :func:`~intake.audit.verify.verify`."""
    if settings is not None:
        return derive_key(ensure_secret_key(settings))
    from flask import current_app, has_app_context

    if not has_app_context():
        raise RuntimeError("no audit key outside the web app: make the session with "
                           "session_factory(url, audit_key=signing_key(settings))")
    return derive_key(str(current_app.config["SECRET_KEY"]))


def session_key(session: Session) -> bytes:
    """The key that seals and checks the events of ``session``: the one its factory was
    made with (``audit_key``), else the web app's (:func:`signing_key`)."""
    key = session.info.get(AUDIT_KEY)
    return key if isinstance(key, bytes) else signing_key()


def seal_event(key: bytes, event_id: int, event_hash: str) -> str:
    """An event's seal: HMAC-SHA256 over its id and hash."""
    return hmac.new(key, f"event|{event_id}|{event_hash}".encode(), hashlib.sha256).hexdigest()


def seal_anchor(key: bytes, anchor: Any) -> str:
    """The anchor's seal; ``anchor`` is the model or a row of its table."""
    payload = json.dumps(["anchor", anchor.last_id, anchor.last_hash, iso(anchor.last_at),
                          anchor.sealed_from, anchor.incident],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


# --- recording ---------------------------------------------------------------------


def digest(prev_hash: str, at: datetime, actor: str, action: str, entity_type: str,
           entity_id: str, detail: Mapping[str, Any], source: str = "") -> str:
    """An event's hash (the package docstring gives the exact input)."""
    fields: list[Any] = [prev_hash, at.isoformat(timespec="microseconds"), actor, action,
                         entity_type, entity_id, detail]
    if source:  # events from before the source was recorded hash without it
        fields.append(source)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def iso(at: datetime) -> str:
    """A time as hashed and sealed: UTC, ISO 8601 with microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


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
           detail: Mapping[str, Any] | None = None, source: str | None = None,
           key: bytes | None = None) -> AuditEvent:
    """Append one event inside the caller's transaction, sealed, and move the anchor.

    ``actor`` is who (a user's sign-in name, ``system``, ``api``...), ``action`` what,
    ``entity_type``/``entity_id`` to which record, ``source`` from where (default:
    :func:`current_source`), ``key`` the sealing key (default: :func:`session_key`)."""
    key = session_key(session) if key is None else key
    kid = key_id(key)
    src = current_source() if source is None else source[:100]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
    last = session.execute(
        select(AuditEvent.id, AuditEvent.hash, AuditEvent.key_id)
        .order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    prev = last.hash if last is not None else GENESIS
    # Microsecond precision survives every backend, so the hash is recomputable.
    at = utcnow()
    detail = dict(detail or {})
    event = AuditEvent(at=at, actor=actor, action=action, entity_type=entity_type,
                       entity_id=entity_id, detail=detail, source=src, prev_hash=prev,
                       hash=digest(prev, at, actor, action, entity_type, entity_id, detail,
                                    src),
                       key_id=kid)
    session.add(event)
    session.flush()  # the id is part of the seal
    event.seal = seal_event(key, event.id, event.hash)
    _advance_anchor(session, key, kid, event, last)
    session.flush()
    return event


def _advance_anchor(session: Session, key: bytes, kid: str, event: AuditEvent,
                    last: Row[int, str, str | None] | None) -> None:
    """Point the anchor at ``event``; keep (sealed) the first disagreement found between
    the anchor and the newest event before it."""
    anchor = session.get(AuditAnchor, ANCHOR_ID, populate_existing=True)
    found_id, found_hash = (last.id, last.hash) if last is not None else (0, GENESIS)
    incident: dict[str, Any] | None = None
    base = {"event_id": event.id, "at": iso(event.at), "found_last_id": found_id}
    if anchor is None:
        # A first event, or the first after sealing began (revision 0007): nothing to
        # compare. A sealed newest event without an anchor means the anchor was deleted.
        if last is not None and last.key_id is not None:
            incident = {"kind": "anchor_missing", **base}
        anchor = AuditAnchor(id=ANCHOR_ID, sealed_from=event.id)
        session.add(anchor)
    else:
        own_key = anchor.key_id == kid
        if own_key and not hmac.compare_digest(anchor.seal, seal_anchor(key, anchor)):
            # Someone edited the anchor (perhaps to clear an incident): say so instead.
            incident = {"kind": "anchor_altered", **base, "anchor_last_id": anchor.last_id}
        elif anchor.incident is not None:
            incident = dict(anchor.incident)  # the first one stays
        elif (anchor.last_id, anchor.last_hash) != (found_id, found_hash):
            incident = {"kind": "head_mismatch", **base, "anchor_last_id": anchor.last_id,
                        "anchor_last_at": iso(anchor.last_at)}
    anchor.last_id = event.id
    anchor.last_hash = event.hash
    anchor.last_at = event.at
    anchor.incident = incident
    anchor.key_id = kid
    anchor.seal = seal_anchor(key, anchor)

