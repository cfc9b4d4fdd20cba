"""Users, sign-in and sessions: the domain side, no Flask (the CLI uses it too)."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake import audit, throttle
from intake.auth.passwords import (
    check_rules,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from intake.storage.models import Role, StaffPinThrottle, User, UserSession

log = logging.getLogger(__name__)

MAX_ACCOUNT_FAILURES = 5
ACCOUNT_LOCKOUT = timedelta(minutes=15)
MAX_ADDRESS_FAILURES = 20
ADDRESS_WINDOW = timedelta(minutes=15)
# last_seen_at is written at most this often: a page's requests do not each write a row.
TOUCH_EVERY = timedelta(seconds=20)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class UserError(ValueError):
    """A user command cannot be done; the message names the problem."""


def normalise_name(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip().lower()


def parse_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise UserError(f"unknown role {role!r}: use one of "
                        f"{', '.join(r.value for r in Role)}") from None


def find_user(session: Session, name: str, *, lock: bool = False) -> User | None:
    """The user of a sign-in name (as typed: normalised here). ``lock`` holds the row
    until the transaction ends, so concurrent wrong passwords cannot lose a count."""
    query = select(User).where(User.name == normalise_name(name))
    if lock:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def create_user(session: Session, name: str, role: str, password: str, *,
                actor: str, now: datetime) -> User:
    """Add a user (in the caller's transaction). Names are lower-case ASCII."""
    clean = normalise_name(name)
    if not NAME_RE.match(clean):
        raise UserError("the user name must be 2 to 64 characters: letters a-z, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    role_value = parse_role(role)
    check_rules(password, clean)
    if find_user(session, clean) is not None:
        raise UserError(f"a user named {clean!r} already exists")
    user = User(name=clean, role=role_value.value, password_hash=hash_password(password),
                active=True, failed_signins=0, created_at=now, password_changed_at=now)
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise UserError(f"a user named {clean!r} already exists") from None
    # Failures counted while the name was no account must not lock the new user.
    session.execute(delete(StaffPinThrottle).where(
        StaffPinThrottle.client_key == _name_key(clean)))
    audit.record(session, actor=actor, action="user.created", entity_type="user",
                 entity_id=clean, detail={"role": role_value.value})
    return user


def _existing(session: Session, name: str) -> User:
    user = find_user(session, name)
    if user is None:
        raise UserError(f"no user named {normalise_name(name)!r}")
    return user


def disable_user(session: Session, name: str, *, actor: str) -> User:
    """Stop a user signing in, and end their open sessions at once."""
    user = _existing(session, name)
    user.active = False
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    audit.record(session, actor=actor, action="user.disabled", entity_type="user",
                 entity_id=user.name)
    return user


def enable_user(session: Session, name: str, *, actor: str) -> User:
    """Let a disabled user sign in again (and lift a lock-out)."""
    user = _existing(session, name)
    user.active = True
    user.failed_signins, user.locked_until = 0, None
    audit.record(session, actor=actor, action="user.enabled", entity_type="user",
                 entity_id=user.name)
    return user


def reset_password(session: Session, name: str, password: str, *, actor: str,
                   now: datetime) -> User:
    """Set a new password, lift a lock-out and end the user's open sessions."""
    user = _existing(session, name)
    check_rules(password, user.name)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.failed_signins, user.locked_until = 0, None
    session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    audit.record(session, actor=actor, action="user.password_reset", entity_type="user",
                 entity_id=user.name)
    return user


@dataclass(frozen=True)
class SignIn:
    """The verdict on one sign-in attempt."""

    user: User | None = None
    locked_minutes: int = 0  # > 0: refused (the password was not checked, or was wrong)

    @property
    def ok(self) -> bool:
        return self.user is not None


def _address_key(address: str) -> str:
    return hashlib.sha256(f"signin|{address}".encode()).hexdigest()


def _name_key(name: str) -> str:
    # Failures of a name that is no (usable) account are counted under this key, so an
    # unknown name locks like a real one and the lock-out does not tell which exist.
    return hashlib.sha256(f"signin-name|{normalise_name(name)}".encode()).hexdigest()


def _count_failure(session: Session, key: str, now: datetime, *, limit: int,
                   window: timedelta | None) -> int:
    """One failure on ``key``: an address keeps a sliding window and locks for
    ``ADDRESS_WINDOW``; a name keeps its count until a lock-out of ``ACCOUNT_LOCKOUT``."""
    return throttle.count_failure(
        session, key, now, limit=limit, window=window,
        lockout=ADDRESS_WINDOW if window is not None else ACCOUNT_LOCKOUT)


def _refused_locked(session: Session, *, actor: str, entity_type: str, entity_id: str,
                    minutes: int) -> SignIn:
    audit.record(session, actor=actor, action="signin.refused_locked",
                 entity_type=entity_type, entity_id=entity_id)
    return SignIn(locked_minutes=minutes)


def authenticate(session: Session, name: str, password: str, *, address: str,
                 now: datetime) -> SignIn:
    """Check a sign-in under the lock-outs, in the caller's transaction (so failure
    counts are committed with it). Audits the outcome; never logs the name typed for an
    unknown user (it may be a password typed in the wrong box).

    A locked account or address is refused without looking at the password. An unknown
    name, a disabled user and a wrong password get the same answer and count the same
    way (five failures lock the name for 15 minutes), so neither the message nor the
    lock-out tells an attacker which names exist.
    """
    address_key = _address_key(address)
    minutes = throttle.locked_minutes(session, address_key, now)
    if minutes:
        return _refused_locked(session, actor="anonymous", entity_type="client",
                               entity_id=address_key, minutes=minutes)
    user = find_user(session, name, lock=True)
    if user is None:
        name_key = _name_key(name)
        minutes = throttle.locked_minutes(session, name_key, now)
        if minutes:
            return _refused_locked(session, actor="anonymous", entity_type="user",
                                   entity_id="(unknown)", minutes=minutes)
        verify_password(dummy_hash(), password)  # same time as a real check
        address_locked = _count_failure(session, address_key, now,
                                        limit=MAX_ADDRESS_FAILURES, window=ADDRESS_WINDOW)
        minutes = _count_failure(session, name_key, now, limit=MAX_ACCOUNT_FAILURES,
                                 window=None)
        audit.record(session, actor="anonymous", action="signin.failed", entity_type="user",
                     entity_id="(unknown)", detail={"reason": "unknown user"})
        _log_locks(address_locked, minutes)
        return SignIn(locked_minutes=max(minutes, address_locked))
    if user.locked_until is not None and user.locked_until > now:
        return _refused_locked(session, actor=user.name, entity_type="user",
                               entity_id=user.name,
                               minutes=throttle.minutes_left(user.locked_until, now))
    right = verify_password(user.password_hash, password)
    if right and user.active:
        if needs_rehash(user.password_hash):
            user.password_hash = hash_password(password)
        user.failed_signins, user.locked_until = 0, None
        return SignIn(user=user)
    address_locked = _count_failure(session, address_key, now, limit=MAX_ADDRESS_FAILURES,
                                    window=ADDRESS_WINDOW)
    user.failed_signins += 1
    detail: dict[str, object] = {
        "reason": "wrong password" if user.active else "disabled",
        "failures": user.failed_signins}
    minutes = 0
    if user.failed_signins >= MAX_ACCOUNT_FAILURES:
        user.locked_until = now + ACCOUNT_LOCKOUT
        user.failed_signins = 0
        minutes = throttle.minutes_left(user.locked_until, now)
        detail["locked_minutes"] = int(ACCOUNT_LOCKOUT.total_seconds() // 60)
    audit.record(session, actor=user.name, action="signin.failed", entity_type="user",
                 entity_id=user.name, detail=detail)
    _log_locks(address_locked, minutes)
    return SignIn(locked_minutes=max(minutes, address_locked))


def _log_locks(address_minutes: int, name_minutes: int) -> None:
    if address_minutes:
        log.warning("sign-in locked for a client address after %d failures",
                    MAX_ADDRESS_FAILURES)
    if name_minutes:
        log.warning("a sign-in name was locked after %d failures", MAX_ACCOUNT_FAILURES)


# --- sessions ---------------------------------------------------------------------


def token_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(session: Session, user: User, *, address: str, now: datetime,
                  max_age: timedelta) -> str:
    """A new session for ``user``; returns the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(32)
    session.add(UserSession(id=token_key(token), user_id=user.id, created_at=now,
                            last_seen_at=now, expires_at=now + max_age,
                            address=address[:100]))
    audit.record(session, actor=user.name, action="signin.succeeded", entity_type="user",
                 entity_id=user.name, detail={"role": user.role})
    return token


@dataclass(frozen=True)
class Active:
    """A valid session and its user, as the views see them."""

    session_key: str
    user_id: int
    name: str
    role: str
    idle_deadline: datetime  # when the idle time-out ends it if nothing happens
    expires_at: datetime


def _delete_session(session: Session, key: str) -> bool:
    """Delete one session row; False if another request deleted it first (then that
    request has audited the end, and this one must not audit it again)."""
    result = session.execute(delete(UserSession).where(UserSession.id == key))
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count > 0


SESSION_COOKIE = "intake_session"


def ended_why(last_seen_at: datetime, expires_at: datetime, user_active: bool, *,
              now: datetime, idle: timedelta) -> str | None:
    """Why a sign-in has ended ("lifetime", "idle", "disabled"), or None if it holds:
    the one rule, for pages and for the live process's check of its open streams."""
    if expires_at <= now:
        return "lifetime"
    if last_seen_at + idle <= now:
        return "idle"
    return None if user_active else "disabled"


def still_valid(session: Session, keys: list[str], *, now: datetime,
                idle: timedelta) -> set[str]:
    """Which of these session keys (SHA-256 of tokens) are signed in now (read only)."""
    if not keys:
        return set()
    rows = session.execute(
        select(UserSession.id, UserSession.last_seen_at, UserSession.expires_at,
               User.active).join(User, User.id == UserSession.user_id)
        .where(UserSession.id.in_(keys))).all()
    return {key for key, seen, expires, active in rows
            if ended_why(seen, expires, active, now=now, idle=idle) is None}


def load_session(session: Session, token: str | None, *, now: datetime, idle: timedelta,
                 touch: bool, end_expired: bool = True) -> Active | None:
    """The session of ``token`` if it is still valid, else None (and an ended one is
    deleted, unless ``end_expired`` is False: a reader that must not write, such as the
    live process, leaves that to the next page). ``touch`` counts this request as
    activity (a page, a form); background requests (the live stream, the idle check) do
    not, so an open page still times out."""
    if not token or len(token) > 100:
        return None
    row = session.get(UserSession, token_key(token))
    if row is None:
        return None
    user = row.user
    why = ended_why(row.last_seen_at, row.expires_at, user.active, now=now, idle=idle)
    if why is not None:
        if end_expired and _delete_session(session, row.id):
            audit.record(session, actor=user.name, action="signin.expired",
                         entity_type="user", entity_id=user.name, detail={"why": why})
        return None
    last_seen = row.last_seen_at
    if touch and now - last_seen >= TOUCH_EVERY:
        # A statement, not the loaded row: a sign-out committed meanwhile leaves nothing
        # to update, which is not an error.
        session.execute(update(UserSession).where(UserSession.id == row.id)
                        .values(last_seen_at=now))
        last_seen = now
    return Active(session_key=row.id, user_id=user.id, name=user.name, role=user.role,
                  idle_deadline=min(last_seen + idle, row.expires_at),
                  expires_at=row.expires_at)


def end_session(session: Session, token: str | None) -> str | None:
    """Sign out: delete the session; returns the user's name if there was one."""
    if not token or len(token) > 100:
        return None
    row = session.get(UserSession, token_key(token))
    if row is None:
        return None
    name = row.user.name
    if not _delete_session(session, row.id):
        return None
    audit.record(session, actor=name, action="signout", entity_type="user", entity_id=name)
    return name


def purge_expired(session: Session, now: datetime) -> int:
    """Delete sessions past their absolute lifetime (idle ones go when next seen, or at
    the end of their lifetime here: a browser that never comes back leaves no row)."""
    result = session.execute(delete(UserSession).where(UserSession.expires_at <= now))
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count
