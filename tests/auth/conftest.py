"""Fixtures of the sign-in tests: the app on SQLite, or on SQLite and PostgreSQL.

``auth_helpers`` is a plain module; ``--import-mode=importlib`` does not put this folder
on ``sys.path``, so it is added here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
pytest.register_assert_rewrite("auth_helpers")  # its asserts explain themselves too


@pytest.fixture
def auth_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite (for what the database does not change)."""
    return make_app(sqlite_url)


@pytest.fixture
def db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL (sessions, lock-outs, counts)."""
    return make_app(database_url)
