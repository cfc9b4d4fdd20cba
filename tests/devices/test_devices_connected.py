"""Which boards are connected: staff screens warn when boards are enrolled but none is
on (alerts then reach only signed-in screens)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from intake import state
from intake.devices import services as devices
from intake.storage.models import Device, utcnow
from support import add_device, enroll_device


def _seen(app: Any, name: str, ago: timedelta | None) -> None:
    with state(app).sessions.begin() as s:
        s.execute(update(Device).where(Device.name == name)
                  .values(last_seen_at=None if ago is None else utcnow() - ago))


def test_boards_enrolled_and_connected(any_db_app: Any) -> None:
    app = any_db_app

    def counts() -> tuple[int, int]:
        with state(app).sessions() as s:
            return devices.boards_connected(s, utcnow())

    assert counts() == (0, 0)
    enroll_device(app, "board", "受付1")
    enroll_device(app, "board", "受付2")
    enroll_device(app, "tablet", "タブレット1")  # tablets do not count
    add_device(app, "board", "受付3")  # a code, never used: not enrolled
    assert counts() == (2, 2)  # enrolling is being seen
    _seen(app, "受付1", timedelta(minutes=5))
    assert counts() == (2, 1)
    _seen(app, "受付2", None)
    assert counts() == (2, 0)
    with state(app).sessions.begin() as s:
        devices.revoke(s, "受付2", actor="admin", now=utcnow())
    assert counts() == (1, 0)
    _seen(app, "受付1", timedelta(seconds=30))
    assert counts() == (1, 1)
