"""The FHIR REST adapter against a server that fails on purpose: every documented
outcome, over real HTTP (faults injected through the server's control API)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests

from intake.delivery.auth import BearerAuth, NoAuth
from intake.delivery.base import Outcome
from intake.delivery.fhir_rest import REASON_MAX, FhirRestAdapter
from support.fhir import WALK_IN, FhirTestServer, assert_exactly_one_of_each, wait_until

BundleFor = Callable[..., dict[str, Any]]
BID = "KI-pub-03"


@pytest.fixture
def bundle(bundle_for: BundleFor) -> dict[str, Any]:
    return bundle_for("pub-03")


@pytest.fixture
def rest(fhir_server: FhirTestServer, http_session: requests.Session) -> FhirRestAdapter:
    return FhirRestAdapter(fhir_server.base_url, NoAuth(), http_session, timeout=5.0)


def posts(server: FhirTestServer) -> list[dict[str, Any]]:
    return [
        r for r in server.request_log() if r["method"] == "POST" and r["path"].startswith("/fhir")
    ]


def test_delivered(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.DELIVERED and result.http_status == 200
    assert result.target == fhir_server.base_url
    assert result.started_at <= result.finished_at
    assert isinstance(result.response, dict) and result.response["type"] == "transaction-response"
    # The stored response keeps status and location, not the echoed resources.
    assert all(set(e) == {"response"} for e in result.response["entry"])
    assert len(result.extra["locations"]) == len(bundle["entry"])
    [post] = posts(fhir_server)
    assert post["path"] == "/fhir/R4" and post["contentType"].startswith("application/fhir+json")


def test_500_is_transient(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"status": 500})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.http_status == 500
    assert result.ambiguous  # a 500 may come after the server applied it: search next time
    assert result.reason == "HTTP 500: injected 500"


def test_503_with_retry_after_seconds(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"status": 503, "retryAfter": 2})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.http_status == 503
    assert result.retry_after == 2.0
    assert not result.ambiguous
    assert fhir_server.count("QuestionnaireResponse") == 0


def test_503_with_retry_after_http_date(
    fhir_server: FhirTestServer, http_session: requests.Session, bundle: dict[str, Any]
) -> None:
    now = datetime(2025, 1, 15, 0, 0, 0, tzinfo=UTC)
    fhir_server.faults(
        {"status": 503, "retryAfter": format_datetime(now + timedelta(seconds=90), usegmt=True)}
    )
    rest = FhirRestAdapter(
        fhir_server.base_url, NoAuth(), http_session, timeout=5.0, clock=lambda: now
    )
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.retry_after == 90.0


def test_429_is_transient_with_retry_after(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"status": 429, "retryAfter": 1})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert (result.outcome, result.http_status, result.retry_after, result.ambiguous) == (
        Outcome.TRANSIENT,
        429,
        1.0,
        False,
    )


def test_422_is_rejected_and_keeps_the_operation_outcome(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "business-rule",
                "diagnostics": "Patient is deceased; no new requests accepted",
            }
        ],
    }
    fhir_server.faults({"status": 422, "outcome": outcome})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.REJECTED and result.http_status == 422
    assert result.response == outcome
    assert result.reason == "HTTP 422: Patient is deceased; no new requests accepted"
    assert len(posts(fhir_server)) == 1  # a rejection is not retried


def test_reason_is_one_short_line_even_when_the_server_echoes_data(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    echo = "Invalid value in\n" + " ".join([WALK_IN["family"], WALK_IN["given"]] * 200)
    fhir_server.faults(
        {
            "status": 400,
            "outcome": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "details": {"text": echo}}],
            },
        }
    )
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.REJECTED
    assert (
        result.reason is not None and len(result.reason) <= REASON_MAX and "\n" not in result.reason
    )


def test_2xx_without_a_transaction_response_is_not_trusted(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"status": 200})  # an OperationOutcome, e.g. from a proxy
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.ambiguous


def test_timeout_is_ambiguous_and_the_retry_finds_the_bundle(
    fhir_server: FhirTestServer, http_session: requests.Session, bundle: dict[str, Any]
) -> None:
    """The server answers after the client gave up, having applied the bundle."""
    fhir_server.faults({"delay": 1.0, "method": "POST"})
    rest = FhirRestAdapter(fhir_server.base_url, NoAuth(), http_session, timeout=0.3)
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.ambiguous
    assert result.reason == "timed out (may have reached the server)"
    assert wait_until(lambda: fhir_server.count("Provenance") == 1, timeout=5)

    retry = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED
    assert retry.extra["found_by_search"] is True
    assert len(posts(fhir_server)) == 1
    assert_exactly_one_of_each(fhir_server, bundle)


def test_dropped_connection_is_ambiguous_and_the_retry_sends_again(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"drop": True, "method": "POST"})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.ambiguous and result.http_status is None
    assert fhir_server.count("QuestionnaireResponse") == 0  # dropped before applying

    retry = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED
    assert "found_by_search" not in retry.extra
    methods = [r["method"] for r in fhir_server.request_log()]
    assert methods[0] == "POST" and methods[-1] == "POST"
    assert "GET" in methods[1:-1]  # searched before re-sending
    assert_exactly_one_of_each(fhir_server, bundle)


def test_applied_then_dropped_is_found_by_search_not_sent_twice(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    """The ambiguous case: the server applied the bundle, then the connection died."""
    fhir_server.faults({"applyThenDrop": True, "method": "POST"})
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and result.ambiguous
    assert fhir_server.count("QuestionnaireResponse") == 1

    retry = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED and retry.extra["found_by_search"] is True
    log = fhir_server.request_log()
    assert [r["method"] for r in log] == ["POST"] + ["GET"] * len(bundle["entry"])
    assert {r["path"].rsplit("/", 1)[1] for r in log[1:]} == {
        e["request"]["url"] for e in bundle["entry"]
    }
    assert retry.response is not None and len(retry.extra["locations"]) == len(bundle["entry"])
    assert_exactly_one_of_each(fhir_server, bundle)


def test_connection_refused_is_not_ambiguous(
    http_session: requests.Session, bundle: dict[str, Any]
) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = FhirRestAdapter(f"http://127.0.0.1:{port}/fhir/R4", NoAuth(), http_session, timeout=2)
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.TRANSIENT and not result.ambiguous
    assert result.reason == "connection failed (not sent)"
    # ...but after an ambiguous attempt the question is still open.
    again = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert again.outcome is Outcome.TRANSIENT and again.ambiguous


def test_wrong_static_token_is_retried_once_then_rejected(
    fhir_server: FhirTestServer, http_session: requests.Session, bundle: dict[str, Any]
) -> None:
    fhir_server.auth(required=True, staticTokens=["right"])
    rest = FhirRestAdapter(fhir_server.base_url, BearerAuth("wrong"), http_session, timeout=5)
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.REJECTED and result.http_status == 401
    assert result.reason == "HTTP 401: unknown token"
    assert len(posts(fhir_server)) == 2
    ok = FhirRestAdapter(fhir_server.base_url, BearerAuth("right"), http_session, timeout=5)
    assert ok.deliver(bundle, business_id=BID, after_ambiguous=False).outcome is Outcome.DELIVERED


def test_no_auth_against_a_protected_server_is_rejected(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.auth(required=True)
    result = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert result.outcome is Outcome.REJECTED and result.http_status == 401
    assert all(not r["auth"] for r in fhir_server.request_log())


def test_every_request_of_an_attempt_is_recorded(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    fhir_server.faults({"applyThenDrop": True, "method": "POST"})
    first = rest.deliver(bundle, business_id=BID, after_ambiguous=False)
    assert [(r["method"], r["status"], r["error"]) for r in first.extra["requests"]] == [
        ("POST", None, "ConnectionError")
    ]
    second = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert [r["method"] for r in second.extra["requests"]] == ["GET"] * len(bundle["entry"])
    assert all(
        set(r) == {"method", "what", "status", "error", "ms"} for r in second.extra["requests"]
    )


def test_logs_and_reasons_carry_no_patient_data(
    fhir_server: FhirTestServer,
    http_session: requests.Session,
    bundle_for: BundleFor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rest = FhirRestAdapter(fhir_server.base_url, NoAuth(), http_session, timeout=0.3)
    mrn_bundle = bundle_for("pub-03", patient="mrn-create", mrn="MRN-55501")
    fhir_server.faults({"status": 503}, {"applyThenDrop": True, "method": "POST"}, {"delay": 0.6})
    results = [rest.deliver(mrn_bundle, business_id=BID, after_ambiguous=i > 0) for i in range(4)]
    walk_in = bundle_for("pub-03", business_id="KI-w")
    results.append(rest.deliver(walk_in, business_id="KI-w", after_ambiguous=False))
    assert results[-1].outcome is Outcome.DELIVERED
    secrets = ["MRN-55501", WALK_IN["family"], WALK_IN["given_kana"], "1961-04-01"]
    text = caplog.text + " ".join(f"{r.reason} {r.extra}" for r in results)
    for secret in secrets:
        assert secret not in text


def test_a_failed_search_falls_back_to_a_safe_resend(
    rest: FhirRestAdapter, fhir_server: FhirTestServer, bundle: dict[str, Any]
) -> None:
    """If the server cannot answer the search, the bundle is sent again: its
    conditional creates make that a no-op for what already exists."""
    fhir_server.faults({"applyThenDrop": True, "method": "POST", "path": ""})
    assert rest.deliver(bundle, business_id=BID, after_ambiguous=False).ambiguous
    fhir_server.faults({"status": 503, "method": "GET"})
    retry = rest.deliver(bundle, business_id=BID, after_ambiguous=True)
    assert retry.outcome is Outcome.DELIVERED and "found_by_search" not in retry.extra
    assert [r["status"] for r in retry.extra["requests"]] == [503, 200]
    statuses = {e["response"]["status"] for e in retry.response["entry"]}  # type: ignore[index]
    assert statuses == {"200"}  # everything was already there
    assert_exactly_one_of_each(fhir_server, bundle)
