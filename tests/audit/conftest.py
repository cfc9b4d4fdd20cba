"""Fixtures of the audit tests: the app on SQLite and PostgreSQL with a populated trail.

``audit_helpers`` is a plain module; ``--import-mode=importlib`` does not put this folder
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


@pytest.fixture
def trail_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL; its data folder holds the secret key that
    seals the trail (the CLI finds it through INTAKE_DATA_DIR)."""
    return make_app(database_url)


@pytest.fixture
def sqlite_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite only (for what the database does not change)."""
    return make_app(sqlite_url)
