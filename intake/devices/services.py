"""Enrolled devices, the domain side (no Flask: the CLI, the admin pages and the live
process use it).

An admin adds a device by name and kind and gets a one-time code (8 digits, valid for
:data:`CODE_LIFETIME`). Typed on the device (``/devices/enroll``), the code is spent and
the browser gets a random token in a long-lived cookie; the table keeps SHA-256 hashes
of both, so a copy of it can neither enroll a device nor pose as one. Wrong codes count
towards a lock-out of the client address (:mod:`intake.throttle`).

Revoking clears the token at once: the device's next request, and its open live streams
(closed by the live process on the ``device`` notice and on its periodic check), get
nothing more. A new code enrolls the same name again (a replaced tablet keeps its name).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake import audit, throttle
from intake.storage.models import Device, DeviceKind

COOKIE = "intake_device"  # the device's token, in an HttpOnly, SameSite=Strict cookie
CODE_LIFETIME = timedelta(minutes=15)
CODE_DIGITS = 8
MAX_CODE_FAILURES = 10
CODE_LOCKOUT = timedelta(minutes=15)
# A device's last_seen_at is written at most this often.
SEEN_EVERY = timedelta(seconds=60)
NAME_MAX = 40


class DeviceError(ValueError):
    """A device command cannot be done; the message names the problem."""


def normalise_name(name: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", name).split())


def parse_kind(kind: str) -> DeviceKind:
    try:
        return DeviceKind(kind.strip().lower())
    except ValueError:
        raise DeviceError(f"unknown kind {kind!r}: use "
                          f"{' or '.join(k.value for k in DeviceKind)}") from None


def _check_name(name: str) -> str:
    clean = normalise_name(name)
    if not 1 <= len(clean) <= NAME_MAX:
        raise DeviceError(f"the device name must be 1 to {NAME_MAX} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in clean):
        raise DeviceError("the device name must not contain control characters")
    return clean


def token_hash(token: str) -> str:
    return hashlib.sha256(f"device|{token}".encode()).hexdigest()


def _code_hash(device_id: int, code: str) -> str:
    return hashlib.sha256(f"device-code|{device_id}|{code}".encode()).hexdigest()


def _new_code() -> str:
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def find(session: Session, name: str) -> Device | None:
    return session.execute(select(Device).where(Device.name == normalise_name(name))
                           ).scalar_one_or_none()


@dataclass(frozen=True)
class Issued:
    """A one-time enrollment code, shown once to the admin who asked for it."""

    device: Device
    code: str
    expires_at: datetime


def add(session: Session, name: str, kind: str, *, actor: str, now: datetime) -> Issued:
    """A new device and its first enrollment code (in the caller's transaction)."""
    clean = _check_name(name)
    kind_value = parse_kind(kind)
    if find(session, clean) is not None:
        raise DeviceError(f"a device named {clean!r} already exists")
    device = Device(name=clean, kind=kind_value.value, created_at=now, created_by=actor)
    session.add(device)
    session.flush()
    audit.record(session, actor=actor, action="device.added", entity_type="device",
                 entity_id=str(device.id), detail={"kind": kind_value.value})
    return _issue(session, device, actor=actor, now=now)


def new_code(session: Session, name: str, *, actor: str, now: datetime) -> Issued:
    """A fresh code for an existing device (a new browser, a replaced tablet, or after
    a revocation). The device's current token keeps working until the code is used."""
    device = find(session, name)
    if device is None:
        raise DeviceError(f"no device named {normalise_name(name)!r}")
    return _issue(session, device, actor=actor, now=now)


def _issue(session: Session, device: Device, *, actor: str, now: datetime) -> Issued:
    code = _new_code()
    device.code_hash = _code_hash(device.id, code)
    device.code_expires_at = now + CODE_LIFETIME
    audit.record(session, actor=actor, action="device.code_issued", entity_type="device",
                 entity_id=str(device.id),
                 detail={"minutes": int(CODE_LIFETIME.total_seconds() // 60)})
    return Issued(device, code, device.code_expires_at)


def revoke(session: Session, name: str, *, actor: str, now: datetime) -> Device:
    """Stop a device at once: its token and any unused code are cleared."""
    device = session.execute(select(Device).where(Device.name == normalise_name(name))
                             .with_for_update()).scalar_one_or_none()
    if device is None:
        raise DeviceError(f"no device named {normalise_name(name)!r}")
    if state_of(device, now) == "revoked":
        raise DeviceError(f"device {device.name!r} is already revoked")
    device.token_hash = None
    device.code_hash = None
    device.code_expires_at = None
    device.revoked_at, device.revoked_by = now, actor
    audit.record(session, actor=actor, action="device.revoked", entity_type="device",
                 entity_id=str(device.id), detail={"kind": device.kind})
    return device


@dataclass(frozen=True)
class Enrolled:
    """The verdict on one enrollment code typed on a device."""

    device: Device | None = None
    token: str | None = None  # for the cookie; never stored
    locked_minutes: int = 0

    @property
    def ok(self) -> bool:
        return self.device is not None


def _address_key(address: str) -> str:
    return hashlib.sha256(f"device-code|{address}".encode()).hexdigest()


def enroll(session: Session, code: str, *, address: str, now: datetime) -> Enrolled:
    """Spend a one-time code typed on a device: the device gets a new token (a token it
    had before stops working). Wrong codes count towards a lock-out of the address."""
    key = _address_key(address)
    minutes = throttle.locked_minutes(session, key, now)
    if minutes:
        return Enrolled(locked_minutes=minutes)
    digits = "".join(ch for ch in unicodedata.normalize("NFKC", code) if ch.isdigit())
    device = None
    if len(digits) == CODE_DIGITS:
        candidates = session.execute(
            select(Device).where(Device.code_hash.is_not(None),
                                 Device.code_expires_at > now).with_for_update()
        ).scalars()
        device = next((d for d in candidates
                       if secrets.compare_digest(d.code_hash or "",
                                                 _code_hash(d.id, digits))), None)
    if device is None:
        minutes = throttle.count_failure(session, key, now, limit=MAX_CODE_FAILURES,
                                         window=CODE_LOCKOUT, lockout=CODE_LOCKOUT)
        audit.record(session, actor="anonymous", action="device.enroll_failed",
                     entity_type="client", entity_id=key[:16])
        return Enrolled(locked_minutes=minutes)
    throttle.clear(session, key)
    token = secrets.token_urlsafe(32)
    device.token_hash = token_hash(token)
    device.code_hash, device.code_expires_at = None, None
    device.enrolled_at, device.last_seen_at = now, now
    device.revoked_at, device.revoked_by = None, None
    audit.record(session, actor=f"device:{device.name}", action="device.enrolled",
                 entity_type="device", entity_id=str(device.id), detail={"kind": device.kind})
    return Enrolled(device=device, token=token)


@dataclass(frozen=True)
class Known:
    """An enrolled device as requests see it (``token_hash``: which enrollment of it,
    so a browser whose enrollment was replaced is told apart)."""

    id: int
    name: str
    kind: DeviceKind
    token_hash: str

    @property
    def actor(self) -> str:
        """How the audit trail names it."""
        return f"device:{self.name}"


def identify(session: Session, token: str | None, *, now: datetime | None = None,
             kind: DeviceKind | None = None) -> Known | None:
    """The enrolled, unrevoked device holding ``token`` (of ``kind`` if given), or None.
    With ``now``, notes that it was seen (at most once a minute)."""
    if not token or len(token) > 100:
        return None
    device = session.execute(select(Device).where(Device.token_hash == token_hash(token))
                             ).scalar_one_or_none()
    if device is None or device.revoked_at is not None:
        return None
    if kind is not None and device.kind != kind:
        return None
    if now is not None and (device.last_seen_at is None
                            or now - device.last_seen_at >= SEEN_EVERY):
        session.execute(update(Device).where(Device.id == device.id)
                        .values(last_seen_at=now))
    return Known(device.id, device.name, DeviceKind(device.kind), device.token_hash or "")


def current_tokens(session: Session, hashes: list[str]) -> set[str]:
    """Which of these token hashes still belong to an enrolled, unrevoked device (for
    the live process's check of its open streams: a revoked device, or a browser whose
    enrollment another one replaced, is no longer among them)."""
    if not hashes:
        return set()
    found = session.execute(select(Device.token_hash).where(
        Device.token_hash.in_(hashes), Device.revoked_at.is_(None))).scalars()
    return {h for h in found if h is not None}


# A board counts as connected when a live process noted it this recently (they note
# their boards every minute).
BOARD_LIVE_WINDOW = timedelta(seconds=150)


def boards_connected(session: Session, now: datetime) -> tuple[int, int]:
    """(enrolled boards, boards connected now): staff screens warn when boards are
    enrolled but none is connected, since alerts then reach only signed-in screens."""
    rows = session.execute(
        select(Device.last_seen_at).where(Device.kind == DeviceKind.BOARD,
                                          Device.token_hash.is_not(None),
                                          Device.revoked_at.is_(None))).scalars().all()
    live = sum(1 for seen in rows if seen is not None and now - seen <= BOARD_LIVE_WINDOW)
    return len(rows), live


def mark_seen(session: Session, ids: list[int], now: datetime) -> None:
    """Note that these devices are connected now (boards with an open live stream)."""
    if ids:
        session.execute(update(Device).where(Device.id.in_(ids)).values(last_seen_at=now))


@dataclass(frozen=True)
class DeviceRow:
    """A device as the admin list shows it."""

    id: int
    name: str
    kind: str
    state: str  # "active", "pending" (a code not yet used), "revoked", "not_enrolled"
    created_at: datetime
    created_by: str
    enrolled_at: datetime | None
    last_seen_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    code_expires_at: datetime | None
    connected: bool  # a live process noted it within BOARD_LIVE_WINDOW (boards)


def state_of(device: Device, now: datetime) -> str:
    if device.token_hash is not None and device.revoked_at is None:
        return "active"
    if device.code_hash is not None and device.code_expires_at is not None \
            and device.code_expires_at > now:
        return "pending"
    return "revoked" if device.revoked_at is not None else "not_enrolled"


def list_devices(session: Session, now: datetime) -> list[DeviceRow]:
    rows = session.execute(select(Device).order_by(Device.kind, Device.name)).scalars()
    out = []
    for d in rows:
        state = state_of(d, now)
        connected = state == "active" and d.last_seen_at is not None \
            and now - d.last_seen_at <= BOARD_LIVE_WINDOW
        out.append(DeviceRow(d.id, d.name, d.kind, state, d.created_at, d.created_by,
                             d.enrolled_at, d.last_seen_at, d.revoked_at, d.revoked_by,
                             d.code_expires_at if state == "pending" else None, connected))
    return out
