"""Fixtures for the record-system tests: intakes, bundles, SMART keys. The real FHIR
server is the suite's ``fhir_server`` (tests/conftest.py); the helpers live in
``support.fhir`` (also used by the bench).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from intake.fhir.bundle import BundleInput, build_transaction_bundle
from support.fhir import (
    ClientKey,
    cases_with_results,
    make_input,
    new_client_key,
)


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    """A fresh HTTP session for the code under test (not shared with the control client)."""
    s = requests.Session()
    yield s
    s.close()


@pytest.fixture(scope="session")
def cases() -> list[dict[str, Any]]:
    """The shared clinical cases with their QuestionnaireResponse and triage result."""
    return cases_with_results()


@pytest.fixture(scope="session")
def case_by_id(cases: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in cases}


@pytest.fixture
def intake(case_by_id: dict[str, dict[str, Any]]) -> Callable[..., BundleInput]:
    """Factory: ``intake("pub-03", patient="mrn", business_id=...)`` -> BundleInput."""

    def make(case_id: str = "pub-03", **kwargs: Any) -> BundleInput:
        return make_input(case_by_id[case_id], **kwargs)

    return make


@pytest.fixture
def bundle_for(intake: Callable[..., BundleInput]) -> Callable[..., dict[str, Any]]:
    """Factory: the transaction Bundle for ``intake(...)``."""

    def make(case_id: str = "pub-03", **kwargs: Any) -> dict[str, Any]:
        return build_transaction_bundle(intake(case_id, **kwargs))

    return make


@pytest.fixture(scope="session")
def rs384_key() -> ClientKey:
    return new_client_key("RS384")


@pytest.fixture(scope="session")
def es384_key() -> ClientKey:
    return new_client_key("ES384")


@pytest.fixture(scope="session")
def unknown_key() -> ClientKey:
    """A key the token endpoint has never been told about."""
    return new_client_key("RS384")
