"""Fixtures of the CDS Hooks tests (Flask test client; real databases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.cds import CDS_TOKEN


@pytest.fixture
def cds_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL with the shared CDS token set."""
    return make_app(database_url, cds_token=CDS_TOKEN)


@pytest.fixture
def sqlite_cds_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, cds_token=CDS_TOKEN)
