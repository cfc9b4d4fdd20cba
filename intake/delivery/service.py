"""Choosing the delivery adapter and building what it sends, from the settings."""

from __future__ import annotations

from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from intake.config import Settings
from intake.delivery.base import DeliveryAdapter
from intake.delivery.folder import FolderAdapter
from intake.storage import queries
from intake.storage.models import Intake, ReviewAction, ReviewKind, TriageRecord

if TYPE_CHECKING:
    from intake.fhir.bundle import ReviewState


def plugin_version() -> str:
    try:
        return version("knee-intake")
    except PackageNotFoundError:  # running from a source tree
        return "0+source"


def make_adapter(settings: Settings) -> DeliveryAdapter:
    """The folder outbox when no record system is configured, else FHIR REST."""
    if not settings.fhir_base_url:
        return FolderAdapter(settings.outbox_dir)
    import requests

    from intake.delivery.auth import make_auth
    from intake.delivery.fhir_rest import FhirRestAdapter

    session = requests.Session()
    return FhirRestAdapter(
        base_url=settings.fhir_base_url,
        auth=make_auth(settings, session),
        session=session,
        timeout=settings.fhir_timeout,
    )


def _demographics(walk_in: dict[str, Any] | None) -> dict[str, Any] | None:
    """The API's walk-in fields, named as the bundle builder names them."""
    if not walk_in:
        return None
    names = {"family_name": "family", "given_name": "given", "family_name_kana": "family_kana",
             "given_name_kana": "given_kana", "birth_date": "birth_date", "sex": "sex"}
    return {names[k]: v for k, v in walk_in.items() if k in names}


def build_bundle(intake: Intake, result: TriageRecord, settings: Settings) -> dict[str, Any]:
    """The transaction Bundle of the intake's current state (deterministic: a re-send is
    byte-identical). The first delivery creates (``ifNoneExist``); once the intake has
    been re-triaged or a practitioner has acted on it, the bundle updates the same
    resources by identifier (see ``intake.fhir.bundle``)."""
    from intake.fhir.bundle import BundleInput, build_transaction_bundle

    assert intake.triaged_at is not None
    session = object_session(intake)
    review = review_state(session, intake, result) if session is not None else None
    return build_transaction_bundle(BundleInput(
        intake_id=intake.id,
        business_id=intake.business_id,
        questionnaire_response=intake.questionnaire_response,
        triage=result.triage,
        patient_record_number=intake.patient_record_number,
        record_number_system=settings.record_number_system,
        patient_demographics=_demographics(intake.patient_demographics),
        received_at=intake.received_at,
        triaged_at=result.created_at,
        plugin_version=plugin_version(),
        create_patient_if_missing=settings.fhir_create_patients,
        revision=result.revision,
        review=review,
        red_flag_since=red_flag_since(session, intake, result) if session is not None
        else {},
    ))


def _red(record: TriageRecord) -> list[str]:
    """The record's red flag codes, in rule-table order."""
    return [f.code for f in record.triage.flags if f.red_flag]


def red_flag_since(session: Session, intake: Intake,
                   result: TriageRecord) -> dict[str, datetime]:
    """Each current red flag -> when it first fired without a break (the Flag's
    ``period.start`` stays put across re-triage). Empty on the first revision."""
    if result.revision == 1:
        return {}
    tracking = set(_red(result))
    since: dict[str, datetime] = {}
    # Newest first: walk back while each stays red.
    for record in queries.records_newest_first(session, intake.id, up_to=result.revision):
        red = set(_red(record))
        for code in list(tracking):
            if code in red:
                since[code] = record.created_at
            else:
                tracking.discard(code)
    return since


def review_state(session: Session, intake: Intake, result: TriageRecord) -> ReviewState | None:
    """What practitioners did to the intake, for the write-back (None: nothing yet)."""
    from intake.fhir.bundle import ReviewState

    if intake.review_seq == 0:
        return None
    actions = list(session.execute(
        select(ReviewAction).where(ReviewAction.intake_id == intake.id)
        .order_by(ReviewAction.seq)
    ).scalars())
    if not actions:
        return None
    acknowledged: dict[str, datetime] = {}
    reason: str | None = None
    for action in actions:
        if action.kind == ReviewKind.ACKNOWLEDGE_FLAG and action.flag_code:
            acknowledged.setdefault(action.flag_code, action.at)
        elif action.kind == ReviewKind.CHANGE_DEPARTMENT:
            reason = action.reason
    current_red = set(_red(result))
    earlier_red: list[str] = []
    older = queries.records_newest_first(session, intake.id, up_to=result.revision - 1)
    for record in reversed(older):  # oldest first
        for code in _red(record):
            if code not in current_red and code not in earlier_red:
                earlier_red.append(code)
    return ReviewState(
        version=actions[-1].seq,
        updated_at=actions[-1].at,
        acknowledged={c: at for c, at in acknowledged.items() if c in current_red},
        withdrawn_flags=tuple(earlier_red),
        department=intake.department_override,
        department_reason=reason if intake.department_override else None,
        reviewed_at=intake.reviewed_at,
    )
