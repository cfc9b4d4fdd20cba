"""What the admin pages read: a page of the audit trail, the actions it holds, the users.

Plain values out (no ORM objects), times already in the clinic's time zone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.audit import AuditFilters, apply_filters
from intake.storage.models import AuditEvent, User

PER_PAGE = 50


@dataclass(frozen=True)
class EventRow:
    id: int
    time: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    source: str
    detail: str
    hash: str


@dataclass(frozen=True)
class EventPage:
    rows: list[EventRow]
    total: int
    page: int
    first: int  # 1-based position of the first row shown (0 when none)
    last: int

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.last < self.total


def local_time(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def event_page(session: Session, filters: AuditFilters, page: int, tz: ZoneInfo,
               per_page: int = PER_PAGE) -> EventPage:
    """One page of the filtered trail, newest first."""
    total = session.execute(apply_filters(select(func.count()).select_from(AuditEvent),
                                          filters)).scalar_one()
    c = AuditEvent.__table__.c
    rows = session.execute(
        apply_filters(select(c.id, c.at, c.actor, c.action, c.entity_type, c.entity_id,
                             c.source, c.detail, c.hash), filters)
        .order_by(AuditEvent.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    shown = [EventRow(r.id, local_time(r.at, tz), r.actor, r.action, r.entity_type,
                      r.entity_id, r.source,
                      json.dumps(r.detail, sort_keys=True, ensure_ascii=False,
                                 separators=(", ", ": ")),
                      r.hash) for r in rows]
    first = (page - 1) * per_page + 1 if shown else 0
    return EventPage(shown, total, page, first, first + len(shown) - 1 if shown else 0)


def known_actions(session: Session) -> list[str]:
    """Every action name in the trail, for the filter's choices."""
    return list(session.execute(select(AuditEvent.action).distinct()
                                .order_by(AuditEvent.action)).scalars())


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    active: bool
    locked_until: str | None  # local time, while a lock-out lasts


def users(session: Session, now: datetime, tz: ZoneInfo) -> list[UserRow]:
    """Every user: name, role, active, and a lock-out in force (never the hash)."""
    out = []
    for u in session.execute(select(User).order_by(User.name)).scalars():
        locked = (local_time(u.locked_until, tz)
                  if u.locked_until is not None and u.locked_until > now else None)
        out.append(UserRow(u.name, u.role, u.active, locked))
    return out
