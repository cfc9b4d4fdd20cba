"""The FHIR API's use cases: accept a QuestionnaireResponse, read it back, read and
search the RiskAssessments. Every read of patient data is audited (ids only).

Resource ids are the intake's id (a random UUID), so a URL carries no patient data:
``QuestionnaireResponse/<intake id>`` is what the client submitted (normalised) and
``RiskAssessment/<intake id>`` is the triage of its newest revision
(``meta.versionId`` = the revision). The RiskAssessment is built by the same code as
the one delivered to the record system (:func:`intake.fhir.bundle.build_risk_assessment`);
only its references change, from the bundle's to this server's.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake import audit, intakes, pipeline
from intake.config import Settings
from intake.constants import IDENTIFIER_SYSTEM_INTAKE
from intake.fhirapi.outcome import FhirError, Issue
from intake.fhirapi.validation import InboundResponse, Token
from intake.storage import queries
from intake.storage.models import Intake, TriageRecord

if TYPE_CHECKING:
    from celery import Celery

JsonDict = dict[str, Any]
SOURCE = "fhir"
RISK_SUFFIX = "/risk"  # RiskAssessment.identifier value = <business id>/risk (bundle.py)


def intake_id_or_none(text: str) -> str | None:
    """``text`` when it is an intake id (a UUID), so other ids are a plain 404."""
    try:
        return str(uuid.UUID(text)) if len(text) == 36 else None
    except ValueError:
        return None


# --- create -----------------------------------------------------------------


def idempotency_key(token: Token) -> str:
    """The intake's idempotency key for a client identifier: hashed, so any length and
    character fits the column and the identifier is not stored twice in clear."""
    digest = hashlib.sha256(f"{token.system or ''}|{token.value}".encode()).hexdigest()
    return f"fhir:{digest}"


def accept(sessions: sessionmaker[Session], celery: Celery | None,
           inbound: InboundResponse, condition: Token | None, *,
           actor: str) -> intakes.Accepted:
    """Store the response as an intake through the shared submission use case.

    Idempotency: the response's ``identifier`` and/or the ``If-None-Exist`` condition
    (which must agree) name the submission. A repeat with the same answers, patient and
    status returns the first intake (``created`` False); with different ones it is
    refused (409) rather than silently keeping either version. Identifiers of this
    server's own intake system name an existing intake by its business id.
    """
    if inbound.identifier is not None and condition is not None:
        if inbound.identifier != condition:
            raise FhirError(400, Issue(
                "invalid", "If-None-Exist must name the identifier the QuestionnaireResponse "
                "carries", "If-None-Exist"))
    token = inbound.identifier or condition
    if token is not None and token.system == IDENTIFIER_SYSTEM_INTAKE:
        return _existing_by_business_id(sessions, token.value, inbound.fingerprint)
    key = idempotency_key(token) if token is not None else None
    try:
        return intakes.submit_and_enqueue(
            sessions, celery, answers=inbound.answers, source=SOURCE, actor=actor,
            record_number=inbound.record_number, idempotency_key=key,
            fingerprint=inbound.fingerprint, status=inbound.status,
            authored=inbound.authored,
        )
    except pipeline.IdempotencyConflict:
        raise _conflict() from None


def _existing_by_business_id(sessions: sessionmaker[Session], business_id: str,
                             fingerprint: str) -> intakes.Accepted:
    with sessions() as session:
        intake = session.execute(
            select(Intake).where(Intake.business_id == business_id)).scalar_one_or_none()
        if intake is None:
            raise FhirError(422, Issue(
                "business-rule", f"identifiers of system {IDENTIFIER_SYSTEM_INTAKE} are "
                "assigned by this server and this one names no intake; leave the identifier "
                "out or use your own system", "QuestionnaireResponse.identifier"))
        if intake.request_fingerprint != fingerprint:
            raise _conflict()
        return intakes.Accepted(intake.id, intake.business_id, intake.status, False)


def _conflict() -> FhirError:
    return FhirError(409, Issue(
        "duplicate", "a QuestionnaireResponse with this identifier was already accepted with "
        "other answers, patient or status; nothing was stored (a submitted response cannot "
        "be changed through this API)", "QuestionnaireResponse.identifier"))


# --- reads ------------------------------------------------------------------


def subject_reference(intake: Intake, settings: Settings) -> JsonDict:
    """The patient as a logical reference: the record number, or for a walk-in the
    identifier its Patient got in the record system (``<business id>/patient``)."""
    if intake.patient_record_number is not None:
        return {"type": "Patient", "identifier": {
            "system": settings.record_number_system, "value": intake.patient_record_number}}
    return {"type": "Patient", "identifier": {
        "system": IDENTIFIER_SYSTEM_INTAKE, "value": f"{intake.business_id}/patient"}}


def _instant(value: datetime) -> str:
    return value.isoformat()


def read_questionnaire_response(sessions: sessionmaker[Session], settings: Settings,
                                intake_id: str, *, actor: str) -> JsonDict | None:
    """The stored response with its id, version and subject; None when there is none."""
    with sessions.begin() as session:
        intake = session.get(Intake, intake_id)
        if intake is None:
            return None
        stored = dict(intake.questionnaire_response)
        resource: JsonDict = {
            "resourceType": "QuestionnaireResponse",
            "id": intake.id,
            "meta": {"versionId": str(intake.revision),
                     "lastUpdated": _instant(intake.updated_at)},
            **{k: v for k, v in stored.items() if k not in ("resourceType", "id", "meta",
                                                           "subject")},
            "subject": subject_reference(intake, settings),
        }
        audit.record(session, actor=actor, action="fhir.questionnaire_response.read",
                     entity_type="intake", entity_id=intake.id,
                     detail={"revision": intake.revision})
    return resource


def risk_assessment(intake: Intake, result: TriageRecord, settings: Settings) -> JsonDict:
    """The RiskAssessment of one triage result, as this server serves it."""
    from fhir.resources.R4B.riskassessment import RiskAssessment

    from intake.delivery.service import plugin_version
    from intake.fhir.bundle import BundleInput, build_risk_assessment

    built = build_risk_assessment(BundleInput(
        intake_id=intake.id, business_id=intake.business_id,
        questionnaire_response=intake.questionnaire_response, triage=result.triage,
        received_at=intake.received_at, triaged_at=result.created_at,
        plugin_version=plugin_version(), patient_record_number=intake.patient_record_number,
        record_number_system=settings.record_number_system,
    ))
    resource: JsonDict = {
        "resourceType": "RiskAssessment",
        "id": intake.id,
        "meta": {**built.get("meta", {}), "versionId": str(result.revision),
                 "lastUpdated": _instant(result.created_at)},
        **{k: v for k, v in built.items() if k not in ("resourceType", "meta")},
        "subject": subject_reference(intake, settings),
        "basis": [{"reference": f"QuestionnaireResponse/{intake.id}"}],
    }
    out: JsonDict = RiskAssessment.model_validate(resource).model_dump(
        mode="json", exclude_none=True)
    return out


def read_risk_assessment(sessions: sessionmaker[Session], settings: Settings,
                         intake_id: str, *, actor: str) -> JsonDict | None:
    """None until the intake is triaged (the triage runs after the submission)."""
    with sessions.begin() as session:
        row = session.execute(
            queries.with_newest_record().where(Intake.id == intake_id)).first()
        if row is None:
            return None
        intake, result = row
        resource = risk_assessment(intake, result, settings)
        audit.record(session, actor=actor, action="fhir.risk_assessment.read",
                     entity_type="intake", entity_id=intake.id,
                     detail={"revision": result.revision})
    return resource


@dataclass(frozen=True)
class RiskSearch:
    """Criteria of a RiskAssessment search (all given criteria must match)."""

    subject: Token | None = None  # subject:identifier, the record number
    identifier: Token | None = None  # RiskAssessment.identifier (<business id>/risk)
    count: int = 50


def search_risk_assessments(sessions: sessionmaker[Session], settings: Settings,
                            search: RiskSearch, *, actor: str) -> tuple[int, list[JsonDict]]:
    """(total matches, the newest ``count`` RiskAssessments), newest first."""
    query = queries.with_newest_record()
    if search.subject is not None:
        if search.subject.system not in (None, settings.record_number_system):
            return 0, []
        query = query.where(Intake.patient_record_number == search.subject.value)
    if search.identifier is not None:
        ident = search.identifier
        if (ident.system not in (None, IDENTIFIER_SYSTEM_INTAKE)
                or not ident.value.endswith(RISK_SUFFIX)):
            return 0, []
        query = query.where(Intake.business_id == ident.value.removesuffix(RISK_SUFFIX))
    with sessions.begin() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows: Sequence[Any] = session.execute(
            query.order_by(TriageRecord.created_at.desc(), Intake.id)
            .limit(search.count)).all()
        resources = []
        for intake, result in rows:
            resources.append(risk_assessment(intake, result, settings))
            audit.record(session, actor=actor, action="fhir.risk_assessment.search",
                         entity_type="intake", entity_id=intake.id,
                         detail={"revision": result.revision})
    return int(total), resources
