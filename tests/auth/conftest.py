"""Fixtures of the sign-in tests: the app on SQLite, or on SQLite and PostgreSQL (the
helpers are in ``support.auth``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def auth_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite (for what the database does not change)."""
    return make_app(sqlite_url)


@pytest.fixture
def db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL (sessions, lock-outs, counts)."""
    return make_app(database_url)
