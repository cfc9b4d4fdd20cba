"""Fixtures of the inbound FHIR API tests (Flask test client; real databases)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from support.fhirapi import TOKEN


@pytest.fixture
def fhir_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL with the FHIR token set and no broker
    (submissions wait for the sweeper)."""
    return make_app(database_url, fhir_api_token=TOKEN)


@pytest.fixture
def sqlite_fhir_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, fhir_api_token=TOKEN)
