"""Fixtures of the review page tests (Flask test client; real SQLite and PostgreSQL).

``review_helpers`` is a plain module; ``--import-mode=importlib`` does not put this
folder on ``sys.path``, so it is added here.
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

from review_helpers import Browser, signed_in  # noqa: E402


@pytest.fixture
def review_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite without a broker (jobs wait for the sweeper)."""
    return make_app(sqlite_url)


@pytest.fixture
def any_db_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL, for the tests of queries."""
    return make_app(database_url)


@pytest.fixture
def doctor(review_app: Any) -> Browser:
    return signed_in(review_app)
