"""Fixtures of the device enrollment tests (Flask test client; real SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def devices_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite (the pages do not depend on the database)."""
    return make_app(sqlite_url, kiosk_pin="246810")


@pytest.fixture
def any_db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL (what is stored, counted and locked)."""
    return make_app(database_url, kiosk_pin="246810")
