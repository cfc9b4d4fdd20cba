"""What changed in the worklist's data since a cursor: arrivals, triage results, delivery
attempts and review actions, as (kind, intake id) pairs. Read by the live process once a
second (and at once when notified); staff screens then reload what they show.

The cursor holds each table's newest id seen and the newest arrival time (intake ids are
random, so arrivals go by time). Ids are handed out before commit, so on PostgreSQL a
row can become visible after a later one was read: each read looks back
:data:`LOOKBACK` ids (and :data:`INTAKE_OVERLAP` for arrivals) and skips what it has
already reported, so a late commit is still announced once.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.storage.models import DeliveryAttempt, Intake, ReviewAction, TriageRecord

LOOKBACK = 64
INTAKE_OVERLAP = timedelta(seconds=5)
_REMEMBER = 4096  # keys remembered per table, enough for LOOKBACK and the overlap


@dataclass(frozen=True)
class Cursor:
    result: int = 0
    attempt: int = 0
    action: int = 0
    received_us: int = 0

    def __str__(self) -> str:
        return f"{self.result}.{self.attempt}.{self.action}.{self.received_us}"

    @classmethod
    def parse(cls, raw: str | None) -> Cursor | None:
        """The form :meth:`__str__` gives (a page's cursor, from its URL), or None."""
        parts = (raw or "").split(".")
        if len(parts) != 4 or not all(p.isdigit() and len(p) <= 18 for p in parts):
            return None
        return cls(*(int(p) for p in parts))

    def covers(self, kind: str, key: int) -> bool:
        """Whether a page read at this cursor already had the change (kind, key)."""
        limit = {"result": self.result, "delivery": self.attempt, "review": self.action,
                 "intake": self.received_us}[kind]
        return key <= limit


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def latest_cursor(session: Session) -> Cursor:
    """The cursor of everything stored now."""
    newest = session.execute(select(func.max(Intake.received_at))).scalar_one()
    return Cursor(
        int(session.execute(select(func.max(TriageRecord.id))).scalar_one() or 0),
        int(session.execute(select(func.max(DeliveryAttempt.id))).scalar_one() or 0),
        int(session.execute(select(func.max(ReviewAction.id))).scalar_one() or 0),
        _micros(newest) if newest is not None else 0)


@dataclass
class Seen:
    """What one reader has reported already (bounded: oldest keys are forgotten)."""

    keys: OrderedDict[tuple[str, Any], None] = field(default_factory=OrderedDict)

    def first_time(self, key: tuple[str, Any]) -> bool:
        if key in self.keys:
            return False
        self.keys[key] = None
        while len(self.keys) > _REMEMBER * 4:
            self.keys.popitem(last=False)
        return True


def changes_after(session: Session, cursor: Cursor, seen: Seen,
                  limit: int = 500) -> tuple[list[tuple[str, str, int]], Cursor]:
    """(kind, intake id, key) for every change after ``cursor`` not reported before,
    oldest first per kind, and the new cursor. Kinds: ``result``, ``delivery``,
    ``review`` (the key is the row's id), ``intake`` (the key is its arrival time in
    microseconds), as :meth:`Cursor.covers` compares them."""
    out: list[tuple[str, str, int]] = []
    result_id, attempt_id, action_id, received_us = (cursor.result, cursor.attempt,
                                                     cursor.action, cursor.received_us)
    for kind, model, start in (("result", TriageRecord, cursor.result),
                               ("delivery", DeliveryAttempt, cursor.attempt),
                               ("review", ReviewAction, cursor.action)):
        rows = session.execute(
            select(model.id, model.intake_id)
            .where(model.id > max(0, start - LOOKBACK))
            .order_by(model.id).limit(limit)).all()
        newest = start
        for row_id, intake_id in rows:
            newest = max(newest, int(row_id))
            if seen.first_time((kind, int(row_id))):
                out.append((kind, intake_id, int(row_id)))
        if kind == "result":
            result_id = newest
        elif kind == "delivery":
            attempt_id = newest
        else:
            action_id = newest
    query = select(Intake.id, Intake.received_at)
    if cursor.received_us:
        since = datetime.fromtimestamp(cursor.received_us / 1_000_000, UTC) - INTAKE_OVERLAP
        query = query.where(Intake.received_at > since)
    for intake_id, received_at in session.execute(
            query.order_by(Intake.received_at).limit(limit)).all():
        received_us = max(received_us, _micros(received_at))
        if seen.first_time(("intake", intake_id)):
            out.append(("intake", intake_id, _micros(received_at)))
    return out, Cursor(result_id, attempt_id, action_id, received_us)
