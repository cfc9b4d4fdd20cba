"""Fixtures of the device enrollment tests (Flask test client; real SQLite and PostgreSQL).

``auth_helpers`` is a plain module of ``tests/auth``; ``--import-mode=importlib`` does not
put that folder on ``sys.path``, so it is added here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_AUTH = str(Path(__file__).resolve().parents[1] / "auth")
if _AUTH not in sys.path:
    sys.path.insert(0, _AUTH)
pytest.register_assert_rewrite("auth_helpers")


@pytest.fixture
def devices_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite (the pages do not depend on the database)."""
    return make_app(sqlite_url, kiosk_pin="246810")


@pytest.fixture
def any_db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL (what is stored, counted and locked)."""
    return make_app(database_url, kiosk_pin="246810")
