"""Fixtures of the review page tests (Flask test client; real SQLite and PostgreSQL); the
helpers are in ``support.review``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.review import Browser, signed_in


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
