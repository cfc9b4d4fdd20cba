"""Bundles against a real FHIR server (Medplum's engine, see tests/fhir_server/):
accepted and valid for every shared case and patient mode, never duplicated by
repeats, sequential or concurrent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import requests

from intake.clinical import Text
from intake.delivery.auth import NoAuth
from intake.delivery.base import Outcome
from intake.delivery.fhir_rest import FhirRestAdapter
from intake.fhir.bundle import BundleInput, build_transaction_bundle
from support.fhir import (
    MRN_SYSTEM,
    FhirTestServer,
    assert_exactly_one_of_each,
    resource_types,
)

BundleFor = Callable[..., dict[str, Any]]
Intake = Callable[..., BundleInput]
CASE_IDS = [f"pub-{i:02d}" for i in range(1, 17)]


def adapter(
    server: FhirTestServer, session: requests.Session, timeout: float = 10.0
) -> FhirRestAdapter:
    return FhirRestAdapter(server.base_url, NoAuth(), session, timeout=timeout)


def create_patient(server: FhirTestServer, mrn: str) -> str:
    resp = server.http.post(
        f"{server.base_url}/Patient",
        json={"resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": mrn}]},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return f"Patient/{resp.json()['id']}"


def test_capability_statement(fhir_server: FhirTestServer) -> None:
    cs = fhir_server.http.get(f"{fhir_server.base_url}/metadata", timeout=10).json()
    assert cs["resourceType"] == "CapabilityStatement" and cs["fhirVersion"] == "4.0.1"


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_every_case_is_accepted_and_valid(
    fhir_server: FhirTestServer, bundle_for: BundleFor, case_id: str
) -> None:
    """The server validates each resource (R4 definitions and our profiles) before applying."""
    bundle = bundle_for(case_id, patient="walk-in")
    resp = fhir_server.post_bundle(bundle)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201"] * len(bundle["entry"])
    assert_exactly_one_of_each(fhir_server, bundle)


def test_record_number_patient_is_resolved_by_the_server(
    fhir_server: FhirTestServer, bundle_for: BundleFor
) -> None:
    patient = create_patient(fhir_server, "0012345")
    bundle = bundle_for("pub-03", patient="mrn", mrn="0012345")
    resp = fhir_server.post_bundle(bundle)
    assert resp.status_code == 200, resp.text
    for rtype in ("QuestionnaireResponse", "RiskAssessment", "Flag", "ServiceRequest"):
        for res in fhir_server.search(rtype, ""):
            assert res["subject"] == {"reference": patient}
    assert fhir_server.search("Task", "")[0]["for"] == {"reference": patient}
    assert fhir_server.count("Patient") == 1


def test_unknown_record_number_is_rejected_and_changes_nothing(
    fhir_server: FhirTestServer, bundle_for: BundleFor, http_session: requests.Session
) -> None:
    """The record system owns its patients: an unknown number stops the delivery."""
    result = adapter(fhir_server, http_session).deliver(
        bundle_for("pub-03", patient="mrn", mrn="9999999"),
        business_id="KI-pub-03",
        after_ambiguous=False,
    )
    assert result.outcome is Outcome.REJECTED
    assert result.http_status == 404
    assert result.reason is not None and result.reason.startswith("HTTP 404: Conditional reference")
    assert (
        isinstance(result.response, dict) and result.response["resourceType"] == "OperationOutcome"
    )
    for rtype in ("QuestionnaireResponse", "RiskAssessment", "Flag", "Task", "Provenance"):
        assert fhir_server.count(rtype) == 0


def test_create_if_missing_makes_one_patient_per_record_number(
    fhir_server: FhirTestServer, bundle_for: BundleFor
) -> None:
    first = bundle_for("pub-03", patient="mrn-create", business_id="KI-1")
    second = bundle_for("pub-05", patient="mrn-create", business_id="KI-2")
    for bundle in (first, second, first):
        assert fhir_server.post_bundle(bundle).status_code == 200
    patients = fhir_server.search("Patient", f"identifier={MRN_SYSTEM}|0012345")
    assert len(patients) == 1
    ref = {"reference": f"Patient/{patients[0]['id']}"}
    assert {r["subject"]["reference"] for r in fhir_server.search("RiskAssessment", "")} == {
        ref["reference"]
    }
    # An existing patient is used as is.
    other = create_patient(fhir_server, "777")
    fhir_server.post_bundle(
        bundle_for("pub-02", patient="mrn-create", mrn="777", business_id="KI-3")
    )
    ras = fhir_server.search(
        "RiskAssessment",
        "identifier=https://intake-triage.org/fhir/NamingSystem/intake-id|KI-3/risk",
    )
    assert ras[0]["subject"] == {"reference": other}


def test_invalid_resources_are_refused_with_an_operation_outcome(
    fhir_server: FhirTestServer, bundle_for: BundleFor, http_session: requests.Session
) -> None:
    """The validator is real: a broken resource gets 400 and nothing is applied."""
    bundle = bundle_for("pub-03")
    bundle["entry"][2]["resource"]["status"] = 7  # RiskAssessment.status must be a code
    bundle["entry"][5]["resource"]["intent"] = "order"  # our ServiceRequest profile fixes proposal
    result = adapter(fhir_server, http_session).deliver(
        bundle, business_id="KI-pub-03", after_ambiguous=False
    )
    assert result.outcome is Outcome.REJECTED and result.http_status == 400
    assert isinstance(result.response, dict)
    texts = [i["details"]["text"] for i in result.response["issue"]]
    assert any("expected string" in t for t in texts)
    assert any("intake-service-request" in t for t in texts)
    assert fhir_server.count("QuestionnaireResponse") == 0


def _entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


PROFILE_VIOLATIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "identifier system": lambda b: _entry(b, "Task")["identifier"][0].update(system="urn:x"),
    "provenance tag": lambda b: _entry(b, "Provenance")["meta"]["tag"][0].update(system="urn:x"),
    "flag category": lambda b: _entry(b, "Flag")["category"][0]["coding"][0].update(code="admin"),
    "urgency extension": lambda b: _entry(b, "ServiceRequest").pop("extension"),
    "department": lambda b: _entry(b, "ServiceRequest").pop("performerType"),
    "rationale": lambda b: _entry(b, "RiskAssessment")["prediction"][0].pop("rationale"),
    "rule set": lambda b: _entry(b, "RiskAssessment")["method"]["coding"][0].update(system="urn:x"),
    "task code": lambda b: _entry(b, "Task")["code"]["coding"][0].update(code="fulfill"),
}


@pytest.mark.parametrize("violation", sorted(PROFILE_VIOLATIONS))
def test_the_server_enforces_our_profiles(
    fhir_server: FhirTestServer, bundle_for: BundleFor, violation: str
) -> None:
    """Valid R4, but not what our profiles allow: refused, naming the profile."""
    bundle = bundle_for("pub-03")
    PROFILE_VIOLATIONS[violation](bundle)
    resp = fhir_server.post_bundle(bundle)
    assert resp.status_code == 400
    assert "https://intake-triage.org/fhir/StructureDefinition/intake-" in resp.text


def test_a_failed_entry_rolls_the_whole_transaction_back(
    fhir_server: FhirTestServer, bundle_for: BundleFor
) -> None:
    bundle = bundle_for("pub-03")
    bundle["entry"][-1]["request"]["url"] = "Nothing"  # the last entry cannot be routed
    assert fhir_server.post_bundle(bundle).status_code >= 400
    for rtype in set(resource_types(bundle)):
        assert fhir_server.count(rtype) == 0


def test_the_same_intake_five_times_in_a_row(
    fhir_server: FhirTestServer, bundle_for: BundleFor, http_session: requests.Session
) -> None:
    bundle = bundle_for("pub-03")
    a = adapter(fhir_server, http_session)
    results = [a.deliver(bundle, business_id="KI-pub-03", after_ambiguous=False) for _ in range(5)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED] * 5
    assert results[0].extra["locations"] == results[4].extra["locations"]
    statuses = [
        [e["response"]["status"] for e in r.response["entry"]]  # type: ignore[index]
        for r in results
    ]
    assert set(statuses[0]) == {"201"} and all(set(s) == {"200"} for s in statuses[1:])
    assert_exactly_one_of_each(fhir_server, bundle)


@pytest.mark.parametrize("patient", ["walk-in", "mrn-create"])
def test_the_same_intake_five_times_at_once(
    fhir_server: FhirTestServer, bundle_for: BundleFor, patient: str
) -> None:
    """Five workers (threads, each its own connection) deliver the same intake together."""
    bundle = bundle_for("pub-03", patient=patient)
    barrier = threading.Barrier(5)
    outcomes: list[Outcome] = []

    def worker() -> None:
        with requests.Session() as s:
            a = adapter(fhir_server, s)
            barrier.wait()
            outcomes.append(
                a.deliver(bundle, business_id="KI-pub-03", after_ambiguous=False).outcome
            )

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == [Outcome.DELIVERED] * 5
    assert_exactly_one_of_each(fhir_server, bundle)


def test_different_intakes_at_once_are_all_kept(
    fhir_server: FhirTestServer, bundle_for: BundleFor
) -> None:
    bundles = [bundle_for(c, business_id=f"KI-{i}") for i, c in enumerate(CASE_IDS[:8])]
    errors: list[str] = []

    def worker(bundle: dict[str, Any]) -> None:
        with requests.Session() as s:
            r = adapter(fhir_server, s).deliver(bundle, business_id="x", after_ambiguous=False)
            if r.outcome is not Outcome.DELIVERED:
                errors.append(str(r.reason))

    threads = [threading.Thread(target=worker, args=(b,)) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert fhir_server.count("QuestionnaireResponse") == 8
    assert fhir_server.count("Provenance") == 8


def test_medplum_native_transactions_refuse_large_conditional_bundles(
    fhir_server: FhirTestServer, intake: Intake
) -> None:
    """Documents a Medplum 4.5.2 limit a production Medplum server would apply:
    a transaction with a conditional create may have at most 8 entries. Three
    red flags with a walk-in patient make 9. The test server's default mode
    applies transactions atomically without that limit (README)."""
    inp = intake("pub-03")
    flags = (
        *inp.triage.flags,
        replace(inp.triage.flags[0], code="ACUTE_LIMB_ISCHAEMIA",
                label=Text("急性下肢虚血の疑い", "possible acute limb ischaemia")),
    )
    bundle = build_transaction_bundle(replace(inp, triage=replace(inp.triage, flags=flags)))
    assert len(bundle["entry"]) == 9
    fhir_server.control("POST", "mode", {"nativeTransactions": True})
    resp = fhir_server.post_bundle(bundle)
    assert resp.status_code == 400
    assert "too many entries" in resp.text
    fhir_server.control("POST", "mode", {"nativeTransactions": False})
    assert fhir_server.post_bundle(bundle).status_code == 200
    assert_exactly_one_of_each(fhir_server, bundle)
