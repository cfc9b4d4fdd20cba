"""Helpers of the inbound FHIR API tests: responses built from the shared clinical cases."""

from __future__ import annotations

import copy
import json
from typing import Any

from sqlalchemy import func, select

from intake import state
from intake.clinical import build_questionnaire_response, parse_simple_answers
from intake.config import SETTINGS
from intake.storage.models import AuditEvent, Intake, Job
from support import case

TOKEN = "fhir-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FHIR_JSON = "application/fhir+json"
HEADERS = {**AUTH, "Content-Type": FHIR_JSON}
# The default record-number system of the settings (the tests do not change it).
MRN_SYSTEM: str = next(s.default for s in SETTINGS if s.name == "record_number_system") or ""
CLIENT_SYSTEM = "urn:oid:1.2.392.200119.6.102.99999"  # a portal's own identifier system
# The IssueType codes of FHIR R4 (required binding of OperationOutcome.issue.code, which
# neither the R4B models nor the Medplum validator check).
ISSUE_TYPES = frozenset({
    "invalid", "structure", "required", "value", "invariant", "security", "login", "unknown",
    "expired", "forbidden", "suppressed", "processing", "not-supported", "duplicate",
    "multiple-matches", "not-found", "deleted", "too-long", "code-invalid", "extension",
    "too-costly", "business-rule", "conflict", "transient", "lock-error", "no-store",
    "exception", "timeout", "incomplete", "throttled", "informational"})


def qr_for(case_id: str, *, mrn: str = "MRN-0042", identifier: str | None = None,
           authored: str | None = "2026-11-20T09:30:00+09:00",
           **changes: Any) -> dict[str, Any]:
    """The case's answers as a QuestionnaireResponse, as an EHR would send it."""
    qr = build_questionnaire_response(parse_simple_answers(case(case_id)["answers"]),
                                      authored=authored)
    qr["subject"] = {"reference": f"Patient?identifier={MRN_SYSTEM}|{mrn}"}
    if identifier is not None:
        qr["identifier"] = {"system": CLIENT_SYSTEM, "value": identifier}
    qr.update(changes)
    return copy.deepcopy(qr)


def post_qr(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body, ensure_ascii=False)
    return client.post("/fhir/QuestionnaireResponse", data=data, headers=headers or HEADERS)


def counts(app: Any) -> tuple[int, int, int]:
    """(intakes, jobs, audit events): what a refused request must leave unchanged."""
    with state(app).sessions() as s:
        return (s.scalar(select(func.count()).select_from(Intake)) or 0,
                s.scalar(select(func.count()).select_from(Job)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def intake_id_of(response: Any) -> str:
    location: str = response.headers["Location"]
    assert location.startswith("/fhir/QuestionnaireResponse/"), location
    return location.rsplit("/", 1)[1]
