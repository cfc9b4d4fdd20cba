"""The audit trail: who did what to which record, when and from where, kept so that an
edit or a deletion of any past entry is detected.

Each event is appended inside the caller's transaction (so it exists exactly when the
change it describes does). Details carry ids, states and codes only, never answers,
names or record numbers.

How tampering is detected, and what is claimed
----------------------------------------------

1. **Hash chain.** Each event's ``hash`` is SHA-256 over its previous event's hash and
   every field of its own (time, actor, action, entity type and id, detail, source).
   Editing any field breaks the event's hash; deleting or inserting an event in the
   middle breaks the next event's link.

2. **Seal (a keyed MAC).** A chain alone can be recomputed: someone who edits an event
   and recomputes every later hash leaves a consistent chain. So each event also stores
   ``seal`` = HMAC-SHA256 over (id, hash) under a key derived from the app's secret key
   (``INTAKE_SECRET_KEY``, or the one generated into ``DATA_DIR/secret_key``), with the
   key's ``key_id`` (a fingerprint, not the key). Without the key nobody can seal a
   forged or recomputed event, and :func:`verify` names the first one that fails.

3. **Anchor.** Neither the chain nor the seals show that the *newest* events were
   deleted: what is left is a valid, sealed prefix. The one-row table ``audit_anchor``
   records the newest event's id, hash and time, sealed with the key, and is rewritten
   in the same transaction as every append. A missing tail, a row added after it, or
   an anchor edited or deleted is detected. Before appending, the writer also compares
   the anchor with the newest event; a disagreement (e.g. the last event was deleted and
   the clinic carried on working) is kept in the anchor's sealed ``incident`` field, so
   later appends cannot hide it.

   A row in the same database was chosen over a file in ``DATA_DIR`` because it commits
   or rolls back atomically with the event, and workers on other machines share it; a
   file cannot be written in the database's transaction and is per machine.

What this does **not** catch, honestly:

- someone who has the secret key (from the server's environment or ``DATA_DIR``) can
  rewrite the trail and re-seal everything;
- a roll-back of the whole trail to an earlier state that someone copied (the events
  *and* the anchor row as they were then) looks like a trail that simply ended there;
- deleting every event together with the anchor looks like a fresh install, and
  stripping every seal and deleting the anchor makes the trail look as if it was
  recorded before sealing existed (the admin screen then shows which events predate
  sealing, which on an install that started sealed is itself a sign of tampering).

Against those, keep the newest id and hash outside the database: ``intake audit verify``
prints them and every export carries each event's hash, so a copy kept elsewhere (a
printout, a ticket, another system) pins the trail up to that point.

Key changes: after ``INTAKE_SECRET_KEY`` changes, events sealed with the earlier key
remain covered, through the chain, by the first event sealed with the new key; until
such an event is recorded the anchor cannot be checked and ``verify`` says so.
Events recorded before sealing existed (revision 0007) are covered the same way by the
first sealed event after them.

The hash of an event is SHA-256 of the compact JSON array ``[prev_hash, time, actor,
action, entity_type, entity_id, detail(, source)]`` (keys sorted, no ASCII escaping;
time as ISO 8601 with microseconds and ``+00:00``; the source is left out when empty,
for events recorded before it was kept). The CSV and FHIR exports carry every one of
these fields, so anyone can recompute the chain from an export.
"""

from __future__ import annotations

import csv
import enum
import functools
import hashlib
import hmac
import io
import ipaddress
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, text
from sqlalchemy.orm import Session

from intake.constants import (
    CS_AUDIT_ACTION,
    CS_AUDIT_ENTITY_TYPE,
    CS_AUDIT_EVENT_TYPE,
    CS_AUDIT_EVENT_TYPE_HL7,
    CS_RESTFUL_INTERACTION,
    CS_SECURITY_SOURCE_TYPE,
    EXT_AUDIT_CHAIN,
    IDENTIFIER_SYSTEM_AUDIT_ENTITY,
    IDENTIFIER_SYSTEM_STAFF_USER,
    PLUGIN_DEVICE_NAME,
)
from intake.storage.models import AuditAnchor, AuditEvent, User, utcnow

GENESIS = "0" * 64
# Any constant works; it serialises appenders on PostgreSQL (SQLite transactions here
# all start with BEGIN IMMEDIATE, which serialises them already).
_PG_LOCK_KEY = 4_711_001
_ANCHOR_ID = 1
_KEY_LABEL = b"intake audit seal v1"
# Events read per transaction when verifying or exporting: a long walk or a slow
# download never holds SQLite's write lock for long.
BATCH = 2000
# A FHIR export is one JSON document built in memory; beyond this, narrow the filters
# (the CSV export streams and has no limit).
FHIR_EXPORT_MAX = 20_000
# Actors that are people although they are no user account.
PERSON_ACTORS = frozenset({"anonymous", "front_desk"})

_COLUMNS = AuditEvent.__table__.c


# --- the key -----------------------------------------------------------------------


def derive_key(secret: str) -> bytes:
    """The sealing key: derived from the secret key, so a seal never reveals the secret
    key itself and the secret key's other uses (cookies, CSRF) stay separate."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A public fingerprint of a key, stored beside each seal: tells "sealed with another
    key" (the secret key changed, or a command runs with other settings) from "forged"."""
    return hmac.new(key, b"key id", hashlib.sha256).hexdigest()[:16]


def signing_key() -> bytes:
    """The key of this process: the Flask app's secret key inside an app context (every
    web request), else the one the ``INTAKE_*`` environment configures (workers, the
    sweeper, commands), which is the same key when they share the settings."""
    try:
        from flask import current_app, has_app_context

        if has_app_context():
            return derive_key(str(current_app.config["SECRET_KEY"]))
    except ImportError:  # pragma: no cover - Flask is a dependency
        pass
    env = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("INTAKE_")))
    return derive_key(_environment_secret(env, os.getcwd()))


@functools.lru_cache(maxsize=8)
def _environment_secret(env: tuple[tuple[str, str], ...], cwd: str) -> str:
    # Keyed by the environment and working directory, which is all load_settings reads.
    from intake.config import ensure_secret_key, load_settings

    return ensure_secret_key(load_settings())


def _seal_event(key: bytes, event_id: int, event_hash: str) -> str:
    return hmac.new(key, f"event|{event_id}|{event_hash}".encode(), hashlib.sha256).hexdigest()


def _seal_anchor(key: bytes, anchor: Any) -> str:
    """The anchor's seal; ``anchor`` is the model or a row of its table."""
    payload = json.dumps(["anchor", anchor.last_id, anchor.last_hash, _iso(anchor.last_at),
                          anchor.sealed_from, anchor.incident],
                         sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


# --- recording ---------------------------------------------------------------------


def _digest(prev_hash: str, at: datetime, actor: str, action: str, entity_type: str,
            entity_id: str, detail: Mapping[str, Any], source: str = "") -> str:
    fields: list[Any] = [prev_hash, at.isoformat(timespec="microseconds"), actor, action,
                         entity_type, entity_id, detail]
    if source:  # events from before the source was recorded hash without it
        fields.append(source)
    payload = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _iso(at: datetime) -> str:
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
    :func:`current_source`), ``key`` the sealing key (default: :func:`signing_key`)."""
    key = signing_key() if key is None else key
    kid = key_id(key)
    src = current_source() if source is None else source[:100]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
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
                       hash=_digest(prev, at, actor, action, entity_type, entity_id, detail,
                                    src),
                       key_id=kid)
    session.add(event)
    session.flush()  # the id is part of the seal
    event.seal = _seal_event(key, event.id, event.hash)
    _advance_anchor(session, key, kid, event, last)
    session.flush()
    return event


def _advance_anchor(session: Session, key: bytes, kid: str, event: AuditEvent,
                    last: Row[int, str, str | None] | None) -> None:
    """Point the anchor at ``event``; keep (sealed) the first disagreement found between
    the anchor and the newest event before it."""
    anchor = session.get(AuditAnchor, _ANCHOR_ID, populate_existing=True)
    found_id, found_hash = (last.id, last.hash) if last is not None else (0, GENESIS)
    incident: dict[str, Any] | None = None
    base = {"event_id": event.id, "at": _iso(event.at), "found_last_id": found_id}
    if anchor is None:
        # A first event, or the first after sealing began (revision 0007): nothing to
        # compare. A sealed newest event without an anchor means the anchor was deleted.
        if last is not None and last.key_id is not None:
            incident = {"kind": "anchor_missing", **base}
        anchor = AuditAnchor(id=_ANCHOR_ID, sealed_from=event.id)
        session.add(anchor)
    else:
        own_key = anchor.key_id == kid
        if own_key and not hmac.compare_digest(anchor.seal, _seal_anchor(key, anchor)):
            # Someone edited the anchor (perhaps to clear an incident): say so instead.
            incident = {"kind": "anchor_altered", **base, "anchor_last_id": anchor.last_id}
        elif anchor.incident is not None:
            incident = dict(anchor.incident)  # the first one stays
        elif (anchor.last_id, anchor.last_hash) != (found_id, found_hash):
            incident = {"kind": "head_mismatch", **base, "anchor_last_id": anchor.last_id,
                        "anchor_last_at": _iso(anchor.last_at)}
    anchor.last_id = event.id
    anchor.last_hash = event.hash
    anchor.last_at = event.at
    anchor.incident = incident
    anchor.key_id = kid
    anchor.seal = _seal_anchor(key, anchor)


# --- verifying ---------------------------------------------------------------------


class BreakKind(enum.StrEnum):
    """What is wrong with the first broken entry."""

    CONTENT = "content_changed"
    LINK = "link_broken"
    UNSEALED = "unsealed"
    SEAL = "seal_mismatch"
    OTHER_KEY = "other_key"
    INSERTED = "inserted"
    TAIL_DELETED = "tail_deleted"
    HEAD_CHANGED = "head_changed"
    ANCHOR_MISSING = "anchor_missing"
    ANCHOR_ALTERED = "anchor_altered"
    ANCHOR_OTHER_KEY = "anchor_other_key"
    INCIDENT = "incident"


@dataclass(frozen=True)
class Break:
    """The first broken entry: which, when it was recorded (if known), what is wrong."""

    kind: BreakKind
    event_id: int
    at: datetime | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable name of what is wrong, for translated texts (the kind, and for an
        incident what the writer found)."""
        if self.kind is BreakKind.INCIDENT:
            return f"incident_{incident_variant(self.info)}"
        return self.kind.value

    @property
    def message(self) -> str:
        """One line in English for the command and logs (the admin screen translates
        ``kind`` and ``info`` itself)."""
        when = f" (recorded {_iso(self.at)})" if self.at is not None else ""
        return f"event {self.event_id}{when}: {_explain(self.kind, self.info)}"


def _explain(kind: BreakKind, info: Mapping[str, Any]) -> str:
    if kind is BreakKind.CONTENT:
        return ("content changed: its stored fields (time, actor, action, entity, detail "
                "or source) no longer match its hash")
    if kind is BreakKind.LINK:
        gap = info.get("missing")
        missing = f"; event ids {gap} are missing" if gap else ""
        return ("previous-hash link broken: an event before it was removed or "
                f"changed{missing}")
    if kind is BreakKind.UNSEALED:
        return ("no seal: it was inserted, or its seal removed, by someone without the "
                "key (events after sealing began are all sealed)")
    if kind is BreakKind.SEAL:
        return ("seal does not match: it was inserted or rewritten (its chain recomputed) "
                "by someone without the key")
    if kind is BreakKind.OTHER_KEY:
        return (f"sealed with another key ({info.get('key_id')}) after events sealed with "
                "the current key: forged")
    if kind is BreakKind.INSERTED:
        return (f"inserted: it comes after event {info.get('anchor_last_id')}, which the "
                "anchor records as the newest")
    if kind is BreakKind.TAIL_DELETED:
        return ("missing: the anchor records this event as the newest, but the trail "
                f"ends at event {info.get('trail_last_id')}: the newest events were deleted")
    if kind is BreakKind.HEAD_CHANGED:
        return ("the anchor records another hash for this newest event: the chain was "
                "recomputed")
    if kind is BreakKind.ANCHOR_MISSING:
        return ("the anchor row is missing (deleted): events after this one may have been "
                "deleted too")
    if kind is BreakKind.ANCHOR_ALTERED:
        return "the anchor's seal does not match: the anchor row was altered"
    if kind is BreakKind.ANCHOR_OTHER_KEY:
        return (f"the anchor is sealed with another key ({info.get('key_id')}; this "
                f"process uses {info.get('current_key_id')}): the secret key changed since "
                "this event (record one event to re-seal), or this command does not run "
                "with the app's INTAKE_SECRET_KEY / INTAKE_DATA_DIR")
    # INCIDENT: found by a writer when it appended the next event (on SQLite that event
    # may reuse the id of a deleted one, so it is named by its time as well).
    found, anchored = info.get("found_last_id"), info.get("anchor_last_id")
    when = (f"when the next event was recorded (event {info.get('event_id')}, "
            f"{info.get('at')})")
    variant = incident_variant(info)
    if variant == "anchor_missing":
        return (f"the anchor row had been deleted {when}: events after event {found} may "
                "have been deleted")
    if variant == "anchor_altered":
        return f"the anchor row had been altered, found {when}"
    if variant == "deleted":
        return (f"deleted: the anchor recorded this event as the newest, but {when} the "
                f"trail ended at event {found}")
    if variant == "changed":
        return f"changed: the anchor recorded another hash for this event, found {when}"
    return (f"inserted: events after event {anchored} were added without the anchor, "
            f"found {when}")


def incident_variant(info: Mapping[str, Any]) -> str:
    """What a writer found: anchor_missing, anchor_altered, deleted, changed, inserted."""
    sub = info.get("kind")
    if sub in ("anchor_missing", "anchor_altered"):
        return str(sub)
    found, anchored = info.get("found_last_id"), info.get("anchor_last_id")
    if isinstance(found, int) and isinstance(anchored, int) and found < anchored:
        return "deleted"
    return "changed" if found == anchored else "inserted"


@dataclass(frozen=True)
class ChainReport:
    """The result of :func:`verify`."""

    checked: int  # events read
    first: Break | None  # the first broken entry (lowest id), if any
    further: int  # problems found after the first one (not described)
    newest_id: int | None  # the newest event and its hash: keep them elsewhere to pin
    newest_hash: str | None  # the trail up to here
    sealed_from: int | None  # the first event sealed in this database
    unsealed: int  # events recorded before sealing began
    key_id: str  # fingerprint of the key this check used

    @property
    def ok(self) -> bool:
        return self.first is None

    @property
    def problems(self) -> list[str]:
        """The first problem as text (empty when intact); later ones are only counted."""
        return [] if self.first is None else [self.first.message]

    def summary(self) -> str:
        if self.first is None:
            head = (f"; newest event {self.newest_id} hash {self.newest_hash}"
                    if self.newest_id is not None else "")
            legacy = (f"; {self.unsealed} events predate sealing (covered by the chain)"
                      if self.unsealed else "")
            return f"{self.checked} events checked, 0 problems{head}{legacy}"
        total = 1 + self.further
        return (f"{self.checked} events checked, {total} problem{'s' if total > 1 else ''}"
                f" (the first is described; fix or explain it, then verify again)")


@dataclass
class _Walk:
    key: bytes
    kid: str
    sealed_from: int | None
    prev_hash: str = GENESIS
    prev_id: int = 0
    prev_at: datetime | None = None
    checked: int = 0
    first: Break | None = None
    problems: int = 0
    seen_sealed: bool = False
    seen_current: bool = False
    unsealed: int = 0

    def problem(self, brk: Break) -> None:
        self.problems += 1
        if self.first is None or brk.event_id < self.first.event_id:
            self.first = brk

    def step(self, ev: Row[Any]) -> None:
        self.checked += 1
        brk = self._check(ev)
        if brk is not None:
            self.problem(brk)
        # Re-synchronise on the stored hash: one edit is one problem, not a cascade.
        self.prev_hash, self.prev_id, self.prev_at = ev.hash, ev.id, ev.at

    def _check(self, ev: Row[Any]) -> Break | None:
        expected = _digest(ev.prev_hash, ev.at, ev.actor, ev.action, ev.entity_type,
                           ev.entity_id, ev.detail, ev.source)
        if not hmac.compare_digest(ev.hash, expected):
            return Break(BreakKind.CONTENT, ev.id, ev.at)
        if ev.prev_hash != self.prev_hash:
            gap = (f"{self.prev_id + 1}-{ev.id - 1}" if ev.id - 1 > self.prev_id + 1
                   else str(self.prev_id + 1) if ev.id - 1 == self.prev_id + 1 else "")
            return Break(BreakKind.LINK, ev.id, ev.at, {"missing": gap} if gap else {})
        if ev.key_id is None:
            if self.seen_sealed or (self.sealed_from is not None
                                    and ev.id >= self.sealed_from):
                return Break(BreakKind.UNSEALED, ev.id, ev.at)
            self.unsealed += 1
            return None
        self.seen_sealed = True
        if ev.key_id == self.kid:
            self.seen_current = True
            if ev.seal is None or not hmac.compare_digest(
                    ev.seal, _seal_event(self.key, ev.id, ev.hash)):
                return Break(BreakKind.SEAL, ev.id, ev.at)
            return None
        # Sealed with an earlier key: covered through the chain by the first event
        # sealed with the current key (or by the anchor), which must come after it.
        if self.seen_current:
            return Break(BreakKind.OTHER_KEY, ev.id, ev.at, {"key_id": ev.key_id})
        return None


def _event_rows(session: Session, query: Select[Any], *, after: int, upto: int | None,
                own: bool, batch: int = BATCH) -> Iterator[Row[Any]]:
    """Rows of ``query`` in id order, read ``batch`` at a time by id (keyset), each batch
    in its own transaction when ``own`` (the session was handed over idle)."""
    last = after
    while True:
        q = query.where(AuditEvent.id > last)
        if upto is not None:
            q = q.where(AuditEvent.id <= upto)
        rows = session.execute(q.order_by(AuditEvent.id).limit(batch)).all()
        if own:
            session.rollback()  # read only: end the transaction between batches
        yield from rows
        if len(rows) < batch:
            return
        last = rows[-1].id


def _all_columns() -> Select[Any]:
    return select(*_COLUMNS)


def verify(session: Session, *, key: bytes | None = None, batch: int = BATCH) -> ChainReport:
    """Walk the whole trail; report the first broken entry and count the rest.

    Give it a session with no transaction open: it then reads in batches, each in its own
    short transaction (a long walk never blocks writers on SQLite), and reads the newest
    events together with the anchor under the appenders' lock, so events appended while
    it runs are never mistaken for tampering. (In a session already in a transaction it
    reads everything in that transaction.)
    """
    key = signing_key() if key is None else key
    kid = key_id(key)
    own = not session.in_transaction()
    anchor0 = _anchor_row(session)
    bound = session.execute(select(func.max(AuditEvent.id))).scalar()
    if own:
        session.rollback()
    sealed_from = (anchor0.sealed_from if anchor0 is not None and anchor0.key_id == kid
                   and hmac.compare_digest(anchor0.seal, _seal_anchor(key, anchor0))
                   else None)
    walk = _Walk(key, kid, sealed_from)
    # Phase 1: every event that existed when we started, batch by batch.
    if bound is not None:
        for ev in _event_rows(session, _all_columns(), after=0, upto=bound, own=own,
                              batch=batch):
            walk.step(ev)
    # Phase 2: the events appended since, with the anchor, in one transaction under the
    # appenders' lock (shared: several checks may run at once).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": _PG_LOCK_KEY})
    anchor = _anchor_row(session)
    tail = session.execute(_all_columns().where(AuditEvent.id > walk.prev_id)
                           .order_by(AuditEvent.id)).all()
    first_after = None  # the first event after the one the anchor records as newest
    if anchor is not None:
        first_after = session.execute(
            select(AuditEvent.id, AuditEvent.at).where(AuditEvent.id > anchor.last_id)
            .order_by(AuditEvent.id).limit(1)).first()
    if own:
        session.rollback()
    for ev in tail:
        walk.step(ev)
    _check_anchor(walk, anchor, first_after)
    return ChainReport(checked=walk.checked, first=walk.first,
                       further=max(0, walk.problems - 1),
                       newest_id=walk.prev_id or None,
                       newest_hash=walk.prev_hash if walk.prev_id else None,
                       sealed_from=sealed_from if sealed_from is not None else (
                           anchor.sealed_from if anchor is not None else None),
                       unsealed=walk.unsealed, key_id=kid)


def _anchor_row(session: Session) -> Row[Any] | None:
    """The anchor as a plain row (a snapshot, not an object of the caller's session)."""
    table = AuditAnchor.__table__
    return session.execute(select(*table.c).where(table.c.id == _ANCHOR_ID)).first()


def _check_anchor(walk: _Walk, anchor: Row[Any] | None,
                  first_after: Row[int, datetime] | None) -> None:
    newest = walk.prev_id
    if anchor is None:
        # An empty trail, or one recorded entirely before sealing began, has no anchor.
        if walk.seen_sealed:
            walk.problem(Break(BreakKind.ANCHOR_MISSING, newest, walk.prev_at))
        return
    if anchor.key_id != walk.kid:
        walk.problem(Break(BreakKind.ANCHOR_OTHER_KEY, anchor.last_id, anchor.last_at,
                           {"key_id": anchor.key_id, "current_key_id": walk.kid}))
        return
    if not hmac.compare_digest(anchor.seal, _seal_anchor(walk.key, anchor)):
        walk.problem(Break(BreakKind.ANCHOR_ALTERED, anchor.last_id, anchor.last_at))
        return
    if anchor.incident is not None:
        walk.problem(_incident_break(anchor.incident))
    if anchor.last_id > newest:
        walk.problem(Break(BreakKind.TAIL_DELETED, anchor.last_id, anchor.last_at,
                           {"trail_last_id": newest}))
    elif first_after is not None:
        brk = Break(BreakKind.INSERTED, first_after.id, first_after.at,
                    {"anchor_last_id": anchor.last_id})
        if walk.first is not None and walk.first.event_id == brk.event_id:
            walk.first = brk  # the same event, better explained; already counted
        else:
            walk.problem(brk)
    elif anchor.last_hash != walk.prev_hash:
        walk.problem(Break(BreakKind.HEAD_CHANGED, anchor.last_id, anchor.last_at))


def _incident_break(incident: Mapping[str, Any]) -> Break:
    found = incident.get("found_last_id")
    anchored = incident.get("anchor_last_id")
    at = None
    if isinstance(found, int) and isinstance(anchored, int) and anchored != found:
        # Deleted: name the newest event the anchor knew; inserted: the first one added.
        event_id = anchored if found < anchored else anchored + 1
        raw = incident.get("anchor_last_at") if found < anchored else None
        at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    else:
        event_id = found if isinstance(found, int) else int(incident.get("event_id", 0))
    return Break(BreakKind.INCIDENT, event_id, at, dict(incident))


# --- filters and exports -----------------------------------------------------------


@dataclass(frozen=True)
class AuditFilters:
    """Which events to list or export. Times are aware datetimes: ``since`` inclusive,
    ``before`` exclusive. Values are matched exactly."""

    since: datetime | None = None
    before: datetime | None = None
    actor: str | None = None
    action: str | None = None
    entity_id: str | None = None

    def names(self) -> list[str]:
        """The filters in use, by name (for the audit record of a view or an export:
        the names, never the values typed)."""
        return [n for n in ("since", "before", "actor", "action", "entity_id")
                if getattr(self, n) is not None]


def apply_filters(query: Select[Any], filters: AuditFilters) -> Select[Any]:
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.before is not None:
        query = query.where(AuditEvent.at < filters.before)
    if filters.actor is not None:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.action is not None:
        query = query.where(AuditEvent.action == filters.action)
    if filters.entity_id is not None:
        query = query.where(AuditEvent.entity_id == filters.entity_id)
    return query


def _filtered_rows(session: Session, filters: AuditFilters) -> Iterator[Row[Any]]:
    own = not session.in_transaction()
    return _event_rows(session, apply_filters(_all_columns(), filters), after=0, upto=None,
                       own=own)


def utc_text(at: datetime) -> str:
    """An event time as exported: UTC, ISO 8601 with microseconds and ``Z``."""
    return _iso(at).replace("+00:00", "Z")


def _detail_text(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


CSV_HEADER = ("id", "time_utc", "actor", "action", "entity_type", "entity_id", "source",
              "detail", "hash", "prev_hash", "key_id", "seal")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading quote before = + - @ (and tab or
    carriage return), which would otherwise start a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_line(cells: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([csv_cell(c) for c in cells])
    return buf.getvalue()


def export_csv(session: Session, filters: AuditFilters) -> Iterator[str]:
    """The filtered events as CSV lines (header first), oldest first, streamed batch by
    batch. Times are UTC; ``detail`` is compact JSON; hash, previous hash and seal let
    the chain be rechecked from the file."""
    yield _csv_line(CSV_HEADER)
    for ev in _filtered_rows(session, filters):
        yield _csv_line([str(ev.id), utc_text(ev.at), ev.actor, ev.action, ev.entity_type,
                         ev.entity_id, ev.source, _detail_text(ev.detail), ev.hash,
                         ev.prev_hash, ev.key_id or "", ev.seal or ""])


class ExportTooLarge(ValueError):
    """More events match than one FHIR export holds; the message says how to narrow."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} events match; one FHIR export holds at most "
                         f"{FHIR_EXPORT_MAX}: narrow the date range, or use the CSV")
        self.count = count


# What an action did, by the last part of its name: the FHIR AuditEvent.action code
# (Create, Read, Update, Delete, Execute) and the FHIR RESTful interaction it amounts to.
_VERBS: dict[str, tuple[str, str | None]] = {
    "read": ("R", "read"),
    "case_viewed": ("R", "read"),
    "search": ("R", "search-type"),
    "viewed": ("R", "search-type"),  # lists: the desk, the worklist, the audit trail
    "worklist_viewed": ("R", "search-type"),
    "users_viewed": ("R", "search-type"),
    "exported": ("R", "search-type"),
    "received": ("C", "create"),
    "created": ("C", "create"),
    "started": ("C", "create"),
    "card_issued": ("C", "create"),
    "feedback": ("C", "create"),
    "triaged": ("U", "update"),
    "triage_failed": ("U", "update"),
    "delivered": ("U", "update"),
    "delivery_failed": ("U", "update"),
    "disabled": ("U", "update"),
    "enabled": ("U", "update"),
    "password_reset": ("U", "update"),
    "acknowledge_flag": ("U", "update"),
    "change_department": ("U", "update"),
    "exam_findings": ("U", "update"),
    "reviewed": ("U", "update"),
    "ended": ("D", "delete"),  # a tablet session ends: its draft answers are deleted
}


def fhir_action(action: str) -> tuple[str, str | None]:
    """(AuditEvent.action code, restful-interaction code or None) of an action name.
    Sign-ins, sign-outs and anything unknown are E (execute) with no interaction."""
    return _VERBS.get(action.rsplit(".", 1)[-1], ("E", None))


def _is_failure(action: str) -> bool:
    return action.endswith(("failed", "refused_locked"))


def _plugin_display() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PLUGIN_DEVICE_NAME} {version('knee-intake')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return PLUGIN_DEVICE_NAME


def _network_type(address: str) -> str:
    """AuditEvent.agent.network.type: 2 an IP address, 1 a machine name (host:pid)."""
    try:
        ipaddress.ip_address(address)
        return "2"
    except ValueError:
        return "1"


def audit_event_resource(ev: Any, *, people: frozenset[str], observer: str) -> dict[str, Any]:
    """One event as a FHIR R4 AuditEvent (a plain dict; validated with the bundle).

    Ids and codes only: the entity is named by its type and id as the trail holds them,
    the agent by sign-in name (staff) or component name. The chain extension carries the
    id, hashes and seal, so an export can be checked link by link."""
    code, interaction = fhir_action(ev.action)
    category = ev.action.split(".", 1)[0]
    if category == "fhir":
        event_type = {"system": CS_AUDIT_EVENT_TYPE_HL7, "code": "rest",
                      "display": "RESTful Operation"}
    else:
        event_type = {"system": CS_AUDIT_EVENT_TYPE, "code": category}
    subtype = [{"system": CS_AUDIT_ACTION, "code": ev.action}]
    if interaction is not None:
        subtype.append({"system": CS_RESTFUL_INTERACTION, "code": interaction})
    person = ev.actor in people or ev.actor in PERSON_ACTORS
    who: dict[str, Any] = {"display": ev.actor}
    if ev.actor in people:
        who["identifier"] = {"system": IDENTIFIER_SYSTEM_STAFF_USER, "value": ev.actor}
    agent: dict[str, Any] = {"who": who, "requestor": person}
    if ev.source:
        agent["network"] = {"address": ev.source, "type": _network_type(ev.source)}
    chain = [{"url": "sequence", "valueInteger": ev.id},
             {"url": "previousHash", "valueString": ev.prev_hash},
             {"url": "hash", "valueString": ev.hash}]
    if ev.key_id is not None and ev.seal is not None:
        chain += [{"url": "keyId", "valueString": ev.key_id},
                  {"url": "seal", "valueString": ev.seal}]
    return {
        "resourceType": "AuditEvent",
        "id": str(ev.id),
        "extension": [{"url": EXT_AUDIT_CHAIN, "extension": chain}],
        "type": event_type,
        "subtype": subtype,
        "action": code,
        "recorded": utc_text(ev.at),
        "outcome": "4" if _is_failure(ev.action) else "0",
        "agent": [agent],
        "source": {"observer": {"display": observer},
                   "type": [{"system": CS_SECURITY_SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
        "entity": [{
            "what": {"identifier": {"system": IDENTIFIER_SYSTEM_AUDIT_ENTITY,
                                    "value": ev.entity_id}},
            "type": {"system": CS_AUDIT_ENTITY_TYPE, "code": ev.entity_type},
            "detail": [{"type": "detail", "valueString": _detail_text(ev.detail)}],
        }],
    }


def export_fhir(session: Session, filters: AuditFilters) -> dict[str, Any]:
    """The filtered events, oldest first, as a FHIR R4 Bundle of type ``collection``,
    validated with fhir.resources (R4B). At most :data:`FHIR_EXPORT_MAX` events."""
    from fhir.resources.R4B.bundle import Bundle

    own = not session.in_transaction()
    total = session.execute(apply_filters(select(func.count()).select_from(AuditEvent),
                                          filters)).scalar_one()
    people = frozenset(session.execute(select(User.name)).scalars())
    if own:
        session.rollback()
    if total > FHIR_EXPORT_MAX:
        raise ExportTooLarge(total)
    observer = _plugin_display()
    entries = []
    for ev in _filtered_rows(session, filters):
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'audit:{ev.id}:{ev.hash}')}",
            "resource": audit_event_resource(ev, people=people, observer=observer),
        })
    bundle = {"resourceType": "Bundle", "type": "collection",
              "timestamp": utc_text(utcnow()), "entry": entries}
    out: dict[str, Any] = Bundle.model_validate(bundle).model_dump(mode="json",
                                                                    exclude_none=True)
    return out
