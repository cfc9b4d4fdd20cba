"""The CapabilityStatement at ``/fhir/metadata``: what this server supports, exactly.

It is the contract an EHR integrator reads first, so every interaction, search
parameter and rule of the views is stated here, and the tests check the two agree.
"""

from __future__ import annotations

from typing import Any

from intake.constants import (
    FHIR_VERSION,
    IDENTIFIER_SYSTEM_INTAKE,
    QUESTIONNAIRE_URL,
)
from intake.fhirapi.validation import ACCEPTED_STATUSES

# Date of this statement's content (change it when the supported interactions change).
STATEMENT_DATE = "2026-11-22"
MAX_COUNT = 100
DEFAULT_COUNT = 50

_SECURITY = (
    "Every request except GET /fhir/metadata needs `Authorization: Bearer <token>` with "
    "the token configured in INTAKE_FHIR_API_TOKEN; without it the answer is 401 with an "
    "OperationOutcome. When no token is configured the API refuses every request but "
    "metadata (it serves patient data, so it fails closed). Use TLS."
)

_QR_DOC = (
    "create: POST a QuestionnaireResponse to the knee questionnaire "
    f"({QUESTIONNAIRE_URL}) with status {', '.join(ACCEPTED_STATUSES)} "
    "(in-progress is refused: this API has no update, so later answers could not be "
    "added). The subject must name the patient by the clinic record number: "
    "subject.reference `Patient?identifier=<record-number system>|<number>` or "
    "subject.identifier with that system; other subjects are refused (422). The answers "
    "are checked against the questionnaire (linkIds, types, ranges, codes: 422 naming "
    "the item) and triaged asynchronously: the answer is 202 Accepted with "
    "`Location: QuestionnaireResponse/<id>` and an informational OperationOutcome; the "
    "triage appears as RiskAssessment/<same id>. The stored response is the normalised "
    "form (answers, questionnaire, status, authored, subject, and this server's business "
    f"identifier in system {IDENTIFIER_SYSTEM_INTAKE}); narrative, extensions, contained "
    "resources and other elements are not kept; modifierExtension and implicitRules are "
    "refused. Idempotency: the response's identifier and/or `If-None-Exist: "
    "identifier=<system>|<value>` (they must agree) name the submission; a repeat with "
    "the same answers, patient and status answers 200 with the first Location and "
    "creates nothing; with different content it is refused with 409. Malformed input "
    "gets 400 (structure) or 422 (content) with an OperationOutcome and nothing is stored."
)

_RA_DOC = (
    "read: RiskAssessment/<id>, where <id> is the id in the Location of the submission; "
    "404 until the triage has run (usually within seconds). meta.versionId is the intake "
    "revision (it increases when staff add examination findings). search: by "
    "subject:identifier=<record-number system>|<number> (the patient) and/or "
    "identifier=<system>|<value> (the RiskAssessment's business identifier, "
    "<intake business id>/risk); at least one is required, _count (1-100, default 50) "
    "limits the entries, newest first, and Bundle.total counts all matches. Any other "
    "parameter is refused with 400 (strict handling). Prefer POST "
    "RiskAssessment/_search with a form body: record numbers then stay out of URLs and "
    "access logs."
)


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    """The statement for a server reachable at ``base_url`` (…/fhir)."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": "knee-intake project",
        "kind": "instance",
        "software": {"name": "knee-intake triage plugin", "version": software_version},
        "implementation": {
            "description": "Knee intake and triage: inbound FHIR R4 API",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": (
                "Triage support for staff and clinicians; it does not diagnose. Errors are "
                "OperationOutcome resources with a 4xx status and never echo patient data. "
                "Bodies: application/fhir+json or application/json (others: 415)."
            ),
            "security": {"cors": False, "description": _SECURITY},
            "resource": [
                {
                    "type": "Questionnaire",
                    "documentation": "The knee questionnaire this server triages.",
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "versioning": "no-version",
                    "searchParam": [
                        {"name": "url", "type": "uri",
                         "documentation": "Canonical URL, optionally with |version."},
                        {"name": "version", "type": "token"},
                    ],
                },
                {
                    "type": "QuestionnaireResponse",
                    "documentation": _QR_DOC,
                    "interaction": [{"code": "create"}, {"code": "read"}],
                    "versioning": "versioned",
                    "readHistory": False,
                    "updateCreate": False,
                    "conditionalCreate": True,
                    "conditionalRead": "not-supported",
                    "conditionalUpdate": False,
                    "conditionalDelete": "not-supported",
                },
                {
                    "type": "RiskAssessment",
                    "documentation": _RA_DOC,
                    "interaction": [{"code": "read"}, {"code": "search-type"}],
                    "versioning": "versioned",
                    "readHistory": False,
                    "searchParam": [
                        {"name": "subject", "type": "reference",
                         "documentation": "Only with the :identifier modifier: "
                                          "subject:identifier=<record-number system>|"
                                          "<number> (the patient's clinic record number)."},
                        {"name": "identifier", "type": "token",
                         "documentation": f"{IDENTIFIER_SYSTEM_INTAKE}|<business id>/risk"},
                        {"name": "_count", "type": "number",
                         "documentation": f"1 to {MAX_COUNT}, default {DEFAULT_COUNT}."},
                    ],
                },
            ],
        }],
    }
