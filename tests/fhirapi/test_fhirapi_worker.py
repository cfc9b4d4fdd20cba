"""With a real worker over a real Redis, a response posted to /fhir becomes a
RiskAssessment that can be read and searched, and matches the clinical case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment
from sqlalchemy import select

from intake import state
from intake.constants import (
    CS_FLAG,
    CS_URGENCY,
    EXT_TRIAGE_URGENCY,
    IDENTIFIER_SYSTEM_INTAKE,
    PROFILE_RISK_ASSESSMENT,
)
from intake.storage.models import AuditEvent, Intake
from support import case, wait_for
from support.fhirapi import AUTH, MRN_SYSTEM, TOKEN, intake_id_of, post_qr, qr_for

CASES = {"pub-03": "MRN-A1", "pub-02": "MRN-A1", "pub-01": "MRN-B2"}


def _urgencies(ra: dict[str, Any]) -> set[str]:
    return {ext["valueCoding"]["code"] for p in ra.get("prediction", [])
            for ext in p["extension"] if ext["url"] == EXT_TRIAGE_URGENCY
            and ext["valueCoding"]["system"] == CS_URGENCY}


def test_risk_assessment_is_readable_and_searchable(
        make_app: Callable[..., Any], database_url: str, clean_redis: str,
        start_worker: Callable[..., Any]) -> None:
    app = make_app(database_url, redis_url=clean_redis, fhir_api_token=TOKEN)
    start_worker(database_url, clean_redis)
    client = app.test_client()
    ids = {}
    for case_id, mrn in CASES.items():
        resp = post_qr(client, qr_for(case_id, mrn=mrn))
        assert resp.status_code == 202, resp.get_data(as_text=True)
        ids[case_id] = intake_id_of(resp)

    def readable() -> dict[str, Any] | None:
        out = {}
        for case_id, intake_id in ids.items():
            resp = client.get(f"/fhir/RiskAssessment/{intake_id}", headers=AUTH)
            if resp.status_code != 200:
                assert resp.status_code == 404
                return None
            out[case_id] = resp.get_json(force=True)
        return out

    assessments = wait_for(readable, 60, 0.2, "RiskAssessments readable")
    for case_id, ra in assessments.items():
        RiskAssessment.model_validate(ra)
        expect = case(case_id)["expect"]
        assert ra["id"] == ids[case_id] and ra["meta"]["versionId"] == "1"
        assert PROFILE_RISK_ASSESSMENT in ra["meta"]["profile"]
        assert ra["basis"] == [{"reference": f"QuestionnaireResponse/{ids[case_id]}"}]
        assert ra["subject"]["identifier"] == {"system": MRN_SYSTEM, "value": CASES[case_id]}
        codes = {c["code"] for p in ra["prediction"] for c in p["outcome"]["coding"]
                 if c["system"] == CS_FLAG}
        assert codes >= set(expect["flags"]), case_id
        assert not codes & set(expect.get("not_flags", [])), case_id
        # The case's urgency is the most urgent of the predictions'.
        assert expect["urgency"] in _urgencies(ra), case_id
        with state(app).sessions() as s:
            intake = s.get(Intake, ids[case_id])
            assert intake is not None
            assert intake.triage_records[-1].urgency == expect["urgency"]
            business_id = intake.business_id
        assert ra["identifier"] == [{"system": IDENTIFIER_SYSTEM_INTAKE,
                                     "value": f"{business_id}/risk"}]

    # Search by the patient's record number: the two of MRN-A1, newest first.
    found = client.get(f"/fhir/RiskAssessment?subject:identifier={MRN_SYSTEM}|MRN-A1",
                       headers=AUTH)
    assert found.status_code == 200, found.get_data(as_text=True)
    bundle = found.get_json(force=True)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset" and bundle["total"] == 2
    assert {e["resource"]["id"] for e in bundle["entry"]} == {ids["pub-03"], ids["pub-02"]}
    assert all(e["fullUrl"].endswith(f"/fhir/RiskAssessment/{e['resource']['id']}")
               and e["fullUrl"].startswith("http") for e in bundle["entry"])
    assert "link" not in bundle  # no self link repeating the record number

    # The same search as a form body (the record number stays out of the URL).
    posted = client.post("/fhir/RiskAssessment/_search", headers=AUTH,
                         data={"subject:identifier": f"{MRN_SYSTEM}|MRN-A1", "_count": "1"})
    assert posted.status_code == 200
    page = posted.get_json(force=True)
    assert page["total"] == 2 and len(page["entry"]) == 1

    # By the RiskAssessment's business identifier.
    with state(app).sessions() as s:
        bid = s.get(Intake, ids["pub-01"]).business_id  # type: ignore[union-attr]
    one = client.get(f"/fhir/RiskAssessment?identifier={IDENTIFIER_SYSTEM_INTAKE}|{bid}/risk",
                     headers=AUTH).get_json(force=True)
    assert [e["resource"]["id"] for e in one["entry"]] == [ids["pub-01"]]
    both = client.get(f"/fhir/RiskAssessment?identifier={IDENTIFIER_SYSTEM_INTAKE}|{bid}/risk"
                      f"&subject:identifier={MRN_SYSTEM}|MRN-A1", headers=AUTH)
    assert both.get_json(force=True)["total"] == 0  # criteria combine with AND
    other = client.get("/fhir/RiskAssessment?subject:identifier=urn:other|MRN-A1",
                       headers=AUTH).get_json(force=True)
    assert other["total"] == 0 and other["entry"] == []

    # Every read of a RiskAssessment was audited, with ids only.
    with state(app).sessions() as s:
        events = s.execute(select(AuditEvent).where(
            AuditEvent.action.like("fhir.risk_assessment.%"))).scalars().all()
        assert {e.entity_id for e in events} == set(ids.values())
        assert all("MRN" not in str(e.detail) for e in events)


@pytest.mark.parametrize(("query", "problem"), [
    ("", "required"),
    ("patient=MRN-A1", "not-supported"),
    ("subject=Patient/1", "not-supported"),
    ("identifier=a|b&identifier=c|d", "not-supported"),
    ("identifier=a|b,c|d", "invalid"),
    ("identifier=a|b&_count=0", "value"),
    ("identifier=a|b&_count=" + "9" * 5000, "value"),
    ("identifier=a|b&_sort=date", "not-supported"),
])
def test_unsupported_searches_are_refused(sqlite_fhir_app: Any, query: str,
                                          problem: str) -> None:
    resp = sqlite_fhir_app.test_client().get(f"/fhir/RiskAssessment?{query}", headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json(force=True)["issue"][0]["code"] == problem
    assert "MRN-A1" not in resp.get_data(as_text=True)
