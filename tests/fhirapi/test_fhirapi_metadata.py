"""The CapabilityStatement and the Questionnaire, and what the API serves checked by
a real FHIR validator (Medplum's, in tests/fhir_server) as well as by the R4B models."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.questionnaire import Questionnaire

from intake import pipeline, state
from intake.clinical import load_questionnaire
from intake.constants import QUESTIONNAIRE_URL, QUESTIONNAIRE_VERSION
from support.fhir import FhirTestServer
from support.fhirapi import AUTH, FHIR_JSON, intake_id_of, post_qr, qr_for


def test_capability_statement_is_open_and_says_what_is_supported(
        sqlite_fhir_app: Any) -> None:
    resp = sqlite_fhir_app.test_client().get("/fhir/metadata")  # no token
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(FHIR_JSON)
    cs = resp.get_json(force=True)
    CapabilityStatement.model_validate(cs)
    assert (cs["fhirVersion"], cs["kind"], cs["format"]) == ("4.0.1", "instance", ["json"])
    assert cs["implementation"]["url"] == "http://localhost/fhir"
    rest = cs["rest"][0]
    assert rest["mode"] == "server" and "Bearer" in rest["security"]["description"]
    resources = {r["type"]: r for r in rest["resource"]}
    interactions = {t: {i["code"] for i in r["interaction"]} for t, r in resources.items()}
    assert interactions == {"Questionnaire": {"read", "search-type"},
                            "QuestionnaireResponse": {"create", "read"},
                            "RiskAssessment": {"read", "search-type"}}
    assert resources["QuestionnaireResponse"]["conditionalCreate"] is True
    assert {p["name"] for p in resources["RiskAssessment"]["searchParam"]} == {
        "subject", "identifier", "_count"}
    assert {p["name"] for p in resources["Questionnaire"]["searchParam"]} == {"url", "version"}


def test_public_base_url_is_used_for_absolute_urls(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url, public_base_url="https://intake.clinic.example/")
    cs = app.test_client().get("/fhir/metadata").get_json(force=True)
    assert cs["implementation"]["url"] == "https://intake.clinic.example/fhir"


def test_questionnaire_read_and_search(sqlite_fhir_app: Any) -> None:
    client = sqlite_fhir_app.test_client()
    read = client.get("/fhir/Questionnaire/posterior-knee", headers=AUTH)
    assert read.status_code == 200 and read.get_json(force=True) == load_questionnaire()
    Questionnaire.model_validate(read.get_json(force=True))
    for query, total in [(f"url={QUESTIONNAIRE_URL}", 1),
                         (f"url={QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}", 1),
                         (f"url={QUESTIONNAIRE_URL}&version={QUESTIONNAIRE_VERSION}", 1),
                         (f"url={QUESTIONNAIRE_URL}|0.1", 0),
                         ("url=http://example.org/Questionnaire/x", 0), ("", 1)]:
        bundle = client.get(f"/fhir/Questionnaire?{query}", headers=AUTH).get_json(force=True)
        Bundle.model_validate(bundle)
        assert bundle["total"] == total == len(bundle["entry"]), query
    bad = client.get("/fhir/Questionnaire?title=knee", headers=AUTH)
    assert bad.status_code == 400
    assert bad.get_json(force=True)["issue"][0]["code"] == "not-supported"


@pytest.fixture
def validator(fhir_server_session: FhirTestServer) -> FhirTestServer:
    """The suite's FHIR test server, as a validator."""
    return fhir_server_session


def _check(server: FhirTestServer, resource: dict[str, Any]) -> None:
    """The validator creates only resources that pass R4 (and the plugin's profiles)."""
    resp = server.http.post(f"{server.base_url}/{resource['resourceType']}", json=resource,
                            headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert resp.status_code == 201, (resource["resourceType"], resp.text[:2000])


def test_served_resources_pass_a_fhir_validator(sqlite_fhir_app: Any,
                                                validator: FhirTestServer) -> None:
    validator.reset()
    client = sqlite_fhir_app.test_client()
    _check(validator, client.get("/fhir/metadata").get_json(force=True))
    created = post_qr(client, qr_for("pub-03"))
    _check(validator, created.get_json(force=True))  # the informational OperationOutcome
    _check(validator, post_qr(client, {"resourceType": "Patient"}).get_json(force=True))
    intake_id = intake_id_of(created)
    qr = client.get(f"/fhir/QuestionnaireResponse/{intake_id}", headers=AUTH)
    _check(validator, qr.get_json(force=True))
    with state(sqlite_fhir_app).sessions.begin() as s:  # triage in-process, as a worker would
        assert pipeline.run_triage(s, intake_id).status == "triaged"
    ra = client.get(f"/fhir/RiskAssessment/{intake_id}", headers=AUTH).get_json(force=True)
    _check(validator, ra)
    system = ra["subject"]["identifier"]["system"]
    search = client.get(f"/fhir/RiskAssessment?subject:identifier={system}|MRN-0042",
                        headers=AUTH).get_json(force=True)
    assert search["total"] == 1
    _check(validator, search)
