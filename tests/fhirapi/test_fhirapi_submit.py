"""POST /fhir/QuestionnaireResponse: stored through the shared pipeline, idempotent,
and every malformed request refused with an OperationOutcome and nothing stored.

Runs on SQLite and on PostgreSQL (the write paths), without a broker: the intake waits
with its triage job pending, as after a broker outage (the worker tests run the rest).
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy import select

from intake import state
from intake.clinical import parse_questionnaire_response, parse_simple_answers
from intake.constants import CS_ANSWER, IDENTIFIER_SYSTEM_INTAKE
from intake.storage.models import AuditEvent, Intake
from support import case
from support.fhirapi import (
    AUTH,
    CLIENT_SYSTEM,
    FHIR_JSON,
    HEADERS,
    ISSUE_TYPES,
    MRN_SYSTEM,
    counts,
    intake_id_of,
    post_qr,
    qr_for,
)


def _outcome(resp: Any) -> dict[str, Any]:
    assert resp.headers["Content-Type"].startswith(FHIR_JSON), resp.headers["Content-Type"]
    body: dict[str, Any] = resp.get_json(force=True)
    OperationOutcome.model_validate(body)
    assert {i["code"] for i in body["issue"]} <= ISSUE_TYPES, body
    return body


def test_submission_is_stored_with_its_pending_job(fhir_app: Any) -> None:
    client = fhir_app.test_client()
    sent = qr_for("pub-03", mrn="MRN-0042")
    resp = post_qr(client, sent)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    outcome = _outcome(resp)
    assert outcome["issue"][0]["severity"] == "information"
    intake_id = intake_id_of(resp)
    assert f"RiskAssessment/{intake_id}" in outcome["issue"][0]["diagnostics"]
    assert resp.headers["Cache-Control"] == "no-store"

    with state(fhir_app).sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        assert (intake.source, intake.patient_record_number) == ("fhir", "MRN-0042")
        assert [(j.kind, j.state) for j in intake.jobs] == [("triage", "pending")]
        stored = intake.questionnaire_response
        assert stored["status"] == "completed"
        assert stored["authored"] == sent["authored"]  # the client's time, not receipt
        assert stored["identifier"] == {"system": IDENTIFIER_SYSTEM_INTAKE,
                                        "value": intake.business_id}
        actions = [a.action for a in s.execute(select(AuditEvent)).scalars()]
        assert actions == ["intake.received"]

    read = client.get(resp.headers["Location"], headers=AUTH)
    assert read.status_code == 200
    assert read.headers["Content-Type"].startswith(FHIR_JSON)
    served = read.get_json(force=True)
    QuestionnaireResponse.model_validate(served)
    assert served["id"] == intake_id and served["meta"]["versionId"] == "1"
    assert read.headers["ETag"] == 'W/"1"'
    assert served["subject"] == {"type": "Patient", "identifier": {
        "system": MRN_SYSTEM, "value": "MRN-0042"}}
    # What is served reads back as exactly the answers that were sent.
    assert parse_questionnaire_response(served) == parse_simple_answers(
        case("pub-03")["answers"])
    with state(fhir_app).sessions() as s:
        assert s.execute(select(AuditEvent.action).where(AuditEvent.entity_id == intake_id)
                         .order_by(AuditEvent.id)).scalars().all() == [
            "intake.received", "fhir.questionnaire_response.read"]


def test_subject_as_identifier_and_stopped_response(fhir_app: Any) -> None:
    """A logical reference with the record-number system works as well; a response
    abandoned part-way (``stopped``) is triaged as it is and keeps its status."""
    body = qr_for("pub-15")
    body["subject"] = {"identifier": {"system": MRN_SYSTEM, "value": "MRN-7"}}
    body["status"] = "stopped"
    resp = post_qr(fhir_app.test_client(), body)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    with state(fhir_app).sessions() as s:
        intake = s.get(Intake, intake_id_of(resp))
        assert intake is not None and intake.patient_record_number == "MRN-7"
        assert intake.questionnaire_response["status"] == "stopped"


def test_identifier_and_if_none_exist_make_repeats_harmless(fhir_app: Any) -> None:
    client = fhir_app.test_client()
    body = qr_for("pub-02", identifier="portal-777")
    first = post_qr(client, body)
    assert first.status_code == 202
    again = post_qr(client, body)
    assert again.status_code == 200, again.get_data(as_text=True)
    assert again.headers["Location"] == first.headers["Location"]
    assert "nothing was created" in _outcome(again)["issue"][0]["diagnostics"]

    cond = {**HEADERS, "If-None-Exist": f"identifier={CLIENT_SYSTEM}|portal-777"}
    assert post_qr(client, body, cond).headers["Location"] == first.headers["Location"]
    assert counts(fhir_app)[:2] == (1, 1)

    # Same identifier, other answers: refused, neither version silently kept.
    changed = copy.deepcopy(body)
    changed["item"] = qr_for("pub-03")["item"]
    clash = post_qr(client, changed)
    assert clash.status_code == 409
    assert _outcome(clash)["issue"][0]["code"] == "duplicate"

    # If-None-Exist alone names the submission too.
    plain = qr_for("pub-07")
    cond2 = {**HEADERS, "If-None-Exist": f"identifier={CLIENT_SYSTEM}|ehr-1"}
    created = post_qr(client, plain, cond2)
    repeated = post_qr(client, plain, cond2)
    assert (created.status_code, repeated.status_code) == (202, 200)
    assert created.headers["Location"] == repeated.headers["Location"]

    # The server's own business identifier names the intake it was given to.
    with state(fhir_app).sessions() as s:
        business_id = s.get(Intake, intake_id_of(first)).business_id  # type: ignore[union-attr]
    echoed = dict(body, identifier={"system": IDENTIFIER_SYSTEM_INTAKE, "value": business_id})
    assert post_qr(client, echoed).headers["Location"] == first.headers["Location"]
    assert counts(fhir_app)[:2] == (2, 2)


def _bad(label: str, body: Any, status: int, code: str, expression: str | None = None,
         headers: dict[str, str] | None = None) -> tuple[Any, ...]:
    return (label, body, status, code, expression, headers)


def _with_item(item: dict[str, Any], **changes: Any) -> dict[str, Any]:
    qr = qr_for("pub-02", **changes)
    qr["item"] = [*qr["item"], item]
    return qr


def _replace_answer(link_id: str, answer: list[dict[str, Any]]) -> dict[str, Any]:
    qr = qr_for("pub-02")

    def walk(items: list[dict[str, Any]]) -> None:
        for it in items:
            if it["linkId"] == link_id:
                it["answer"] = answer
            walk(it.get("item", []))

    walk(qr["item"])
    return qr


SECRET_TEXT = "2026-13-45T99:99"
BAD: list[tuple[Any, ...]] = [
    _bad("not json", "{not json", 400, "structure"),
    _bad("nested too deep", "[" * 100 + "]" * 100, 400, "structure"),
    _bad("array", "[]", 400, "structure"),
    _bad("wrong resource type", {"resourceType": "Patient", "id": "x"}, 400, "invalid"),
    _bad("no resource type", {"status": "completed"}, 400, "invalid"),
    _bad("unknown element", qr_for("pub-02", diagnosis="x"), 400, "structure",
         "QuestionnaireResponse.diagnosis"),
    _bad("wrong value type", _replace_answer("age_years", [{"valueInteger": "forty"}]), 400,
         "value", ".answer[0].valueInteger"),
    _bad("bad date", qr_for("pub-02", authored=SECRET_TEXT), 400, "value",
         "QuestionnaireResponse.authored"),
    _bad("status not a code", qr_for("pub-02", status="done"), 400, "code-invalid",
         "QuestionnaireResponse.status"),
    _bad("in progress", qr_for("pub-02", status="in-progress"), 422, "business-rule",
         "QuestionnaireResponse.status"),
    _bad("entered in error", qr_for("pub-02", status="entered-in-error"), 422,
         "business-rule", "QuestionnaireResponse.status"),
    _bad("unknown linkId", _with_item({"linkId": "shoe_size", "answer": [{"valueInteger": 42}]}),
         422, "structure", "where(linkId='shoe_size')"),
    _bad("wrong questionnaire", qr_for("pub-02", questionnaire="http://example.org/Q/other"),
         422, "business-rule", "QuestionnaireResponse.questionnaire"),
    _bad("unsupported version",
         qr_for("pub-02", questionnaire=qr_for("pub-02")["questionnaire"].split("|")[0]
                + "|9.9.9"), 422, "business-rule"),
    _bad("code outside options", _replace_answer("pain_side", [{"valueCoding": {
        "system": CS_ANSWER, "code": "UP"}}]), 422, "code-invalid", "where(linkId='pain_side')"),
    _bad("out of range", _replace_answer("pain_nrs", [{"valueInteger": 11}]), 422, "value",
         "where(linkId='pain_nrs')"),
    _bad("bool for a number", _replace_answer("age_years", [{"valueInteger": True}]), 422,
         "value", "where(linkId='age_years')"),
    _bad("boolean item as coding", _replace_answer("fever", [{"valueCoding": {
        "system": CS_ANSWER, "code": "Y"}}]),
         422, "value", "where(linkId='fever')"),
    _bad("no subject", {k: v for k, v in qr_for("pub-02").items() if k != "subject"}, 422,
         "required", "QuestionnaireResponse.subject"),
    _bad("literal patient reference", qr_for("pub-02", subject={"reference": "Patient/123"}),
         422, "business-rule", "QuestionnaireResponse.subject.reference"),
    _bad("other identifier system", qr_for("pub-02", subject={"identifier": {
        "system": "urn:oid:9.9", "value": "MRN-0042"}}), 422, "business-rule",
         "QuestionnaireResponse.subject.identifier"),
    _bad("malformed record number", qr_for("pub-02", subject={"identifier": {
        "system": MRN_SYSTEM, "value": "MRN 0042; drop"}}), 422, "value",
         "QuestionnaireResponse.subject"),
    _bad("subject parts disagree", qr_for("pub-02", subject={
        "reference": f"Patient?identifier={MRN_SYSTEM}|MRN-0042",
        "identifier": {"system": MRN_SYSTEM, "value": "MRN-0043"}}), 422, "business-rule"),
    _bad("modifier extension", qr_for("pub-02", modifierExtension=[{
        "url": "http://example.org/negated", "valueBoolean": True}]), 422, "not-supported",
         "QuestionnaireResponse.modifierExtension"),
    _bad("server identifier unknown", qr_for("pub-02", identifier=None) | {"identifier": {
        "system": IDENTIFIER_SYSTEM_INTAKE, "value": "20260101-0000000000"}}, 422,
         "business-rule", "QuestionnaireResponse.identifier"),
    _bad("text/plain", json.dumps(qr_for("pub-02")), 415, "not-supported", None,
         {**AUTH, "Content-Type": "text/plain"}),
    _bad("form post", "a=1", 415, "not-supported", None,
         {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}),
    _bad("xml", "<QuestionnaireResponse/>", 415, "not-supported", None,
         {**AUTH, "Content-Type": "application/fhir+xml"}),
    _bad("oversized", qr_for("pub-02") | {"text": {"status": "generated",
         "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + "x" * 70_000 + "</div>"}},
         413, "too-long"),
    _bad("If-None-Exist on another parameter", qr_for("pub-02"), 400, "not-supported",
         "If-None-Exist", {**HEADERS, "If-None-Exist": "name=smith"}),
    _bad("If-None-Exist without system", qr_for("pub-02"), 400, "invalid", "If-None-Exist",
         {**HEADERS, "If-None-Exist": "identifier=abc"}),
    _bad("If-None-Exist disagrees with identifier", qr_for("pub-02", identifier="a1"), 400,
         "invalid", "If-None-Exist",
         {**HEADERS, "If-None-Exist": f"identifier={CLIENT_SYSTEM}|b2"}),
    _bad("XML wanted", qr_for("pub-02"), 406, "not-supported", None,
         {**HEADERS, "Accept": "application/fhir+xml"}),
]


def test_malformed_requests_are_refused_and_nothing_stored(fhir_app: Any) -> None:
    """Each bad request: its 4xx, an OperationOutcome naming the element, no value
    echoed, and no intake, job or audit event written. (One test per database, so
    PostgreSQL is set up once for the whole list.)"""
    client = fhir_app.test_client()
    before = counts(fhir_app)
    for label, body, status, code, expression, headers in BAD:
        resp = post_qr(client, body, headers)
        assert resp.status_code == status, (label, resp.get_data(as_text=True))
        outcome = _outcome(resp)
        issue = outcome["issue"][0]
        assert issue["severity"] == "error", label
        assert issue["code"] == code, (label, issue)
        if expression is not None:
            assert any(expression in e for e in issue.get("expression", [])), (label, issue)
        text = resp.get_data(as_text=True)
        for secret in ("MRN-0042", "MRN-0043", "MRN 0042", SECRET_TEXT, "forty", "smith"):
            assert secret not in text, (label, secret)
        assert counts(fhir_app) == before, label


def test_unknown_paths_and_methods_are_operation_outcomes(sqlite_fhir_app: Any) -> None:
    client = sqlite_fhir_app.test_client()
    for path in ("/fhir/Patient/1", "/fhir/QuestionnaireResponse/not-a-uuid",
                 "/fhir/QuestionnaireResponse/00000000-0000-4000-8000-000000000000",
                 "/fhir/RiskAssessment/00000000-0000-4000-8000-000000000000",
                 "/fhir/Questionnaire/other", "/fhir"):
        resp = client.get(path, headers=AUTH)
        assert resp.status_code == 404, path
        assert _outcome(resp)["issue"][0]["code"] == "not-found"
    resp = client.delete("/fhir/QuestionnaireResponse", headers=AUTH)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    assert _outcome(resp)["issue"][0]["code"] == "not-supported"
    resp = client.put("/fhir/QuestionnaireResponse/00000000-0000-4000-8000-000000000000",
                      headers=HEADERS, data="{}")
    assert resp.status_code == 405
    assert client.get("/fhir/metadata?_format=xml").status_code == 406


@pytest.mark.parametrize("given", [None, "Bearer wrong-token", "Basic Zm9vOmJhcg==",
                                   "Bearer"])
def test_bearer_token_is_required(sqlite_fhir_app: Any, given: str | None) -> None:
    client = sqlite_fhir_app.test_client()
    headers = {"Content-Type": FHIR_JSON}
    if given is not None:
        headers["Authorization"] = given
    resp = post_qr(client, qr_for("pub-02"), headers)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert _outcome(resp)["issue"][0]["code"] == "login"
    assert client.get("/fhir/Questionnaire/posterior-knee", headers=headers).status_code == 401
    assert counts(sqlite_fhir_app) == (0, 0, 0)
    assert post_qr(client, qr_for("pub-02")).status_code == 202  # the right token works


def test_without_a_configured_token_only_metadata_answers(make_app: Any,
                                                          sqlite_url: str) -> None:
    client = make_app(sqlite_url).test_client()
    assert client.get("/fhir/metadata").status_code == 200
    resp = post_qr(client, qr_for("pub-02"))
    assert resp.status_code == 401
    assert "INTAKE_FHIR_API_TOKEN" in _outcome(resp)["issue"][0]["diagnostics"]
    assert client.get("/fhir/Questionnaire/posterior-knee", headers=AUTH).status_code == 401


def test_concurrent_repeats_make_one_intake(fhir_app: Any) -> None:
    """An EHR retrying in parallel: the unique key decides, the others get the winner."""
    body = qr_for("pub-04", identifier="retry-storm")
    barrier = threading.Barrier(6)
    results: list[tuple[int, str]] = []

    def send() -> None:
        client = fhir_app.test_client()
        barrier.wait()
        resp = post_qr(client, body)
        results.append((resp.status_code, resp.headers.get("Location", "")))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(code for code, _ in results) == [200] * 5 + [202], results
    assert len({loc for _, loc in results}) == 1
    assert counts(fhir_app)[:2] == (1, 1)
