"""Fixtures of the CDS Hooks tests (Flask test client; real databases)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from cds_helpers import CDS_TOKEN  # noqa: E402


@pytest.fixture
def cds_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL with the shared CDS token set."""
    return make_app(database_url, cds_token=CDS_TOKEN)


@pytest.fixture
def sqlite_cds_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, cds_token=CDS_TOKEN)
