"""Fixtures of the inbound FHIR API tests (Flask test client; real databases)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fhirapi_helpers import TOKEN  # noqa: E402


@pytest.fixture
def fhir_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL with the FHIR token set and no broker
    (submissions wait for the sweeper)."""
    return make_app(database_url, fhir_api_token=TOKEN)


@pytest.fixture
def sqlite_fhir_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, fhir_api_token=TOKEN)
