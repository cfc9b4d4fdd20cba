"""Verifying: walk the whole trail and name the first broken entry (the package
docstring says what is checked and what cannot be). Also the batched, keyset-paged
reading of the trail that the exports share."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, text
from sqlalchemy.orm import Session

from intake.audit.record import (
    ANCHOR_ID,
    GENESIS,
    PG_LOCK_KEY,
    digest,
    iso,
    key_id,
    seal_anchor,
    seal_event,
    session_key,
)
from intake.storage.models import AuditAnchor, AuditEvent

# Events read per transaction when verifying or exporting: a long walk or a slow
# download never holds SQLite's write lock for long.
BATCH = 2000

_COLUMNS = AuditEvent.__table__.c


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
        when = f" (recorded {iso(self.at)})" if self.at is not None else ""
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
        expected = digest(ev.prev_hash, ev.at, ev.actor, ev.action, ev.entity_type,
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
                    ev.seal, seal_event(self.key, ev.id, ev.hash)):
                return Break(BreakKind.SEAL, ev.id, ev.at)
            return None
        # Sealed with an earlier key: covered through the chain by the first event
        # sealed with the current key (or by the anchor), which must come after it.
        if self.seen_current:
            return Break(BreakKind.OTHER_KEY, ev.id, ev.at, {"key_id": ev.key_id})
        return None


def event_rows(session: Session, query: Select[Any], *, after: int, upto: int | None,
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


def all_columns() -> Select[Any]:
    """Every column of the trail's events (a plain-row query, not ORM objects)."""
    return select(*_COLUMNS)


def verify(session: Session, *, key: bytes | None = None, batch: int = BATCH) -> ChainReport:
    """Walk the whole trail; report the first broken entry and count the rest.

    Give it a session with no transaction open: it then reads in batches, each in its own
    short transaction (a long walk never blocks writers on SQLite), and reads the newest
    events together with the anchor under the appenders' lock, so events appended while
    it runs are never mistaken for tampering. (In a session already in a transaction it
    reads everything in that transaction.) ``key`` defaults to the session's
    (:func:`~intake.audit.record.session_key`).
    """
    key = session_key(session) if key is None else key
    kid = key_id(key)
    own = not session.in_transaction()
    anchor0 = _anchor_row(session)
    bound = session.execute(select(func.max(AuditEvent.id))).scalar()
    if own:
        session.rollback()
    sealed_from = (anchor0.sealed_from if anchor0 is not None and anchor0.key_id == kid
                   and hmac.compare_digest(anchor0.seal, seal_anchor(key, anchor0))
                   else None)
    walk = _Walk(key, kid, sealed_from)
    # Phase 1: every event that existed when we started, batch by batch.
    if bound is not None:
        for ev in event_rows(session, all_columns(), after=0, upto=bound, own=own,
                              batch=batch):
            walk.step(ev)
    # Phase 2: the events appended since, with the anchor, in one transaction under the
    # appenders' lock (shared: several checks may run at once).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": PG_LOCK_KEY})
    anchor = _anchor_row(session)
    tail = session.execute(all_columns().where(AuditEvent.id > walk.prev_id)
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
    return session.execute(select(*table.c).where(table.c.id == ANCHOR_ID)).first()


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
    if not hmac.compare_digest(anchor.seal, seal_anchor(walk.key, anchor)):
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

