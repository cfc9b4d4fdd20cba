"""The whole path to a record system: HTTP submission → a real Celery worker → the
FHIR REST adapter → the real Medplum server, including retries scheduled through
Celery, a rejection that a person sees, and SMART Backend Services in the worker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from intake import constants
from support import case, wait_for
from support.fhir import FhirTestServer, new_client_key

pytestmark = pytest.mark.slow

WALK_IN = {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
           "given_name_kana": "ハナコ", "birth_date": "1950-01-02", "sex": "female"}


def _status(client: Any, intake_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/intakes/{intake_id}").get_json()
    return body


def _final(client: Any, intake_id: str) -> dict[str, Any] | None:
    body = _status(client, intake_id)
    return body if body["status"] in ("delivered", "delivery_failed") else None


def _submit(client: Any, case_id: str, **patient: Any) -> str:
    body = {"answers": case(case_id)["answers"], **patient}
    resp = client.post("/api/intakes", json=body)
    assert resp.status_code == 202, resp.get_json()
    intake_id: str = resp.get_json()["id"]
    return intake_id


@pytest.fixture
def ehr(make_app: Callable[..., Any], sqlite_url: str, clean_redis: str,
        start_worker: Callable[..., Any], fhir_server: FhirTestServer
        ) -> Callable[..., Any]:
    """Factory: an app and a worker delivering to the test server with these settings."""

    def start(**settings: str) -> Any:
        settings = {"fhir_base_url": fhir_server.base_url, "fhir_timeout": "5",
                    "retry_backoff_cap": "3", **settings}
        app = make_app(sqlite_url, redis_url=clean_redis, **settings)
        start_worker(sqlite_url, clean_redis, **settings)
        return app.test_client()

    return start


def test_intakes_arrive_once_each_in_the_record_system(ehr: Callable[..., Any],
                                                       fhir_server: FhirTestServer) -> None:
    client = ehr()
    ids = [_submit(client, c, walk_in=WALK_IN) for c in ("pub-03", "pub-04", "pub-01")]
    bodies = [wait_for(lambda i=i: _final(client, i), 60, 0.2, "delivery") for i in ids]
    assert [b["status"] for b in bodies] == ["delivered"] * 3
    for body in bodies:
        ident = f"{constants.IDENTIFIER_SYSTEM_INTAKE}|{body['business_id']}"
        assert fhir_server.count("QuestionnaireResponse", identifier=ident) == 1
        risk = fhir_server.search("RiskAssessment", f"identifier={ident}/risk")
        assert len(risk) == 1
        assert risk[0]["method"]["coding"][0]["version"] == "1.0.0"
        assert body["delivery"]["last_attempt"]["http_status"] == 200
    # The emergency case raised its red flags as Flags; the self-care one none.
    assert fhir_server.count("Flag") >= 2
    assert fhir_server.count("Patient") == 3


def test_503_with_retry_after_is_retried_through_celery(ehr: Callable[..., Any],
                                                        fhir_server: FhirTestServer) -> None:
    client = ehr()
    fhir_server.faults({"status": 503, "retryAfter": 1, "method": "POST"},
                       {"status": 429, "retryAfter": 1, "method": "POST"})
    intake_id = _submit(client, "pub-02", walk_in=WALK_IN)
    body = wait_for(lambda: _final(client, intake_id), 60, 0.2, "delivery after retries")
    assert body["status"] == "delivered"
    assert body["delivery"]["attempts"] == 3
    posts = [r for r in fhir_server.request_log() if r["method"] == "POST"]
    assert len(posts) == 3


def test_a_rejection_stops_and_shows_the_reason(ehr: Callable[..., Any],
                                                fhir_server: FhirTestServer) -> None:
    client = ehr()
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "business-rule", "diagnostics": "Patient is inactive"}]}
    fhir_server.faults({"status": 422, "outcome": outcome, "method": "POST"})
    intake_id = _submit(client, "pub-05", walk_in=WALK_IN)
    body = wait_for(lambda: _final(client, intake_id), 60, 0.2, "a final state")
    assert body["status"] == "delivery_failed"
    assert body["delivery"]["state"] == "failed" and body["delivery"]["attempts"] == 1
    assert body["delivery"]["last_attempt"]["http_status"] == 422
    assert "Patient is inactive" in body["status_reason"]


def test_unknown_record_number_is_rejected_not_invented(ehr: Callable[..., Any],
                                                        fhir_server: FhirTestServer) -> None:
    """A conditional reference to a patient the EHR does not know: the bundle is refused
    (404) instead of creating a ghost patient; staff see why."""
    client = ehr()
    intake_id = _submit(client, "pub-09", record_number="NO-SUCH-1")
    body = wait_for(lambda: _final(client, intake_id), 60, 0.2, "a final state")
    assert body["status"] == "delivery_failed"
    assert body["delivery"]["last_attempt"]["http_status"] == 404
    assert fhir_server.count("QuestionnaireResponse") == 0


def test_unknown_record_number_creates_a_patient_when_configured(
        ehr: Callable[..., Any], fhir_server: FhirTestServer) -> None:
    client = ehr(fhir_create_patients="true")
    intake_id = _submit(client, "pub-09", record_number="NEW-77")
    body = wait_for(lambda: _final(client, intake_id), 60, 0.2, "a final state")
    assert body["status"] == "delivered"
    patients = fhir_server.search("Patient", "identifier=NEW-77")
    assert len(patients) == 1 and "name" not in patients[0]  # the number only


def test_smart_backend_services_from_the_worker(ehr: Callable[..., Any],
                                                fhir_server: FhirTestServer,
                                                tmp_path: Path) -> None:
    key = new_client_key("ES384")
    fhir_server.register_client("intake-plugin", key, token_ttl=300)
    pem = tmp_path / "client.pem"
    pem.write_bytes(key.private_pem)
    pem.chmod(0o600)
    client = ehr(fhir_auth="smart", smart_client_id="intake-plugin",
                 smart_private_key_file=str(pem), smart_key_id=key.kid, smart_alg="es384")
    ids = [_submit(client, c, walk_in=WALK_IN) for c in ("pub-06", "pub-07")]
    for intake_id in ids:
        body = wait_for(lambda i=intake_id: _final(client, i), 60, 0.2, "delivery")
        assert body["status"] == "delivered", body
    assertions = fhir_server.assertions()
    # One token for both deliveries (cached), obtained with a valid client assertion.
    assert [a["accepted"] for a in assertions] == [True], assertions
