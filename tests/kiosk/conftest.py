"""Fixtures of the tablet and desk tests (Flask test client; real databases); the
tablet itself is ``support.kiosk.Tablet``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.kiosk import PIN, Tablet


@pytest.fixture
def kiosk_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite, no broker (intakes wait for the sweeper), a known PIN."""
    return make_app(sqlite_url, kiosk_pin=PIN)


@pytest.fixture
def tablet(kiosk_app: Any) -> Tablet:
    return Tablet(kiosk_app)
