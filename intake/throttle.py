"""Failure counting with lock-out, for the staff PIN and staff sign-in.

One row per key (a hash of a client address or of a user name, never the value) in
``staff_pin_throttle``, read with a row lock so concurrent failures are all counted;
runs in the caller's transaction so the count is committed with the attempt.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from intake.storage.models import StaffPinThrottle


def minutes_left(until: datetime, now: datetime) -> int:
    return max(1, int((until - now).total_seconds() + 59) // 60)


def locked_minutes(session: Session, key: str, now: datetime) -> int:
    """Minutes left of a lock-out on ``key`` (0: none). Holds the row until commit."""
    row = session.get(StaffPinThrottle, key, with_for_update=True)
    if row is not None and row.locked_until is not None and row.locked_until > now:
        return minutes_left(row.locked_until, now)
    return 0


def count_failure(session: Session, key: str, now: datetime, *, limit: int,
                  window: timedelta | None, lockout: timedelta) -> int:
    """Count one failure on ``key``; at ``limit`` lock it for ``lockout``. ``window``:
    failures older than this are forgotten (None: kept until a lock-out). Returns the
    minutes locked (0: not locked)."""
    row = session.get(StaffPinThrottle, key, with_for_update=True)
    if row is None:
        try:
            with session.begin_nested():
                row = StaffPinThrottle(client_key=key, failures=0, window_started_at=now)
                session.add(row)
        except IntegrityError:  # a concurrent first failure inserted it
            row = session.get(StaffPinThrottle, key, with_for_update=True,
                              populate_existing=True)
            assert row is not None
    expired_window = window is not None and now - row.window_started_at > window
    if expired_window or row.locked_until is not None:  # a lock here has ended
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= limit:
        row.locked_until = now + lockout
        return minutes_left(row.locked_until, now)
    return 0


def clear(session: Session, key: str) -> None:
    """Forget the failures on ``key`` (after a success)."""
    row = session.get(StaffPinThrottle, key)
    if row is not None:
        session.delete(row)
