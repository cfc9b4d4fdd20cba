"""Fixtures of the audit tests: the app on SQLite and PostgreSQL with a populated trail
(the helpers are in ``support.audit``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def trail_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL; its data folder holds the secret key that
    seals the trail (the CLI finds it through INTAKE_DATA_DIR)."""
    return make_app(database_url)


@pytest.fixture
def sqlite_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite only (for what the database does not change)."""
    return make_app(sqlite_url)
