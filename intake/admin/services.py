"""What the admin pages read: a page of the audit trail, the actions it holds, the users,
the enrolled devices; and why a device request is refused, in the admin's words.

Plain values out (no ORM objects), times already in the clinic's time zone.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.audit import AuditFilters, apply_filters
from intake.devices import services as device_services
from intake.storage.models import AuditEvent, Device, DeviceKind, User

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


@dataclass(frozen=True)
class DeviceView:
    """A device as /admin/devices lists it: times already local, never a hash."""

    id: int
    name: str
    kind: str
    state: str  # intake.devices.services.state_of
    created_at: str
    created_by: str
    enrolled_at: str | None
    last_seen_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    code_expires_at: str | None  # while an unused code is valid
    connected: bool  # a board's live stream noted it in the last few minutes


def devices(session: Session, now: datetime, tz: ZoneInfo) -> list[DeviceView]:
    """Every enrolled device (boards first, then tablets, by name)."""

    def local(at: datetime | None) -> str | None:
        return None if at is None else local_time(at, tz)

    return [DeviceView(r.id, r.name, r.kind, r.state, local_time(r.created_at, tz),
                       r.created_by, local(r.enrolled_at), local(r.last_seen_at),
                       local(r.revoked_at), r.revoked_by, local(r.code_expires_at),
                       r.connected)
            for r in device_services.list_devices(session, now)]


class DeviceRefused(Exception):
    """An admin's device request that cannot be done: the HTTP status, and the catalog
    keys (with their values) of the page's title and of the sentence naming the
    problem. Raised before anything is written, or inside the transaction it rolls
    back, so a refusal changes nothing."""

    def __init__(self, status: int, title: str, why: str, **values: object) -> None:
        super().__init__(why)
        self.status, self.title, self.why, self.values = status, title, why, values


# Ids are 32-bit integers in every database; a larger one is no device (and must not
# reach PostgreSQL, which refuses it with an error rather than finding nothing).
_MAX_ID = 2**31 - 1


def device_by_id(session: Session, device_id: int, title: str, *,
                 lock: bool = False) -> Device:
    """The device with this id (``lock``: its row locked until the transaction ends, so
    two admins revoking at once do not both revoke), or a 404 naming the id."""
    device = (session.get(Device, device_id, with_for_update=lock)
              if 0 < device_id <= _MAX_ID else None)
    if device is None:
        raise DeviceRefused(404, title, "err_no_device", id=device_id)
    return device


def check_new_device(session: Session, name: str, kind: str) -> None:
    """Why ``add`` would refuse this name and kind, as a :class:`DeviceRefused` in the
    admin's language (the domain's own messages are English, for the command line).
    The domain checks again; this only names the problem for the page."""
    title = "add_failed_title"
    clean = device_services.normalise_name(name)
    if not 1 <= len(clean) <= device_services.NAME_MAX:
        raise DeviceRefused(400, title, "err_name_length", n=device_services.NAME_MAX)
    if any(unicodedata.category(ch).startswith("C") for ch in clean):
        raise DeviceRefused(400, title, "err_name_control")
    if kind not in {k.value for k in DeviceKind}:
        raise DeviceRefused(400, title, "err_kind")
    if device_services.find(session, clean) is not None:
        raise DeviceRefused(409, title, "err_duplicate", name=clean)
