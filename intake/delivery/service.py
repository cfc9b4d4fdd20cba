"""Choosing the delivery adapter and building what it sends, from the settings."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from intake.config import Settings
from intake.delivery.base import DeliveryAdapter
from intake.delivery.folder import FolderAdapter
from intake.storage.models import Intake, TriageResult


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


def build_bundle(intake: Intake, result: TriageResult, settings: Settings) -> dict[str, Any]:
    """The transaction Bundle for one intake revision (deterministic: a re-send is
    byte-identical, so conditional creates make it a no-op)."""
    from intake.fhir.bundle import BundleInput, build_transaction_bundle

    assert intake.triaged_at is not None
    return build_transaction_bundle(BundleInput(
        intake_id=intake.id,
        business_id=intake.business_id,
        questionnaire_response=intake.questionnaire_response,
        triage=result.result,
        patient_record_number=intake.patient_record_number,
        record_number_system=settings.record_number_system,
        patient_demographics=_demographics(intake.patient_demographics),
        received_at=intake.received_at,
        triaged_at=result.created_at,
        plugin_version=plugin_version(),
        create_patient_if_missing=settings.fhir_create_patients,
    ))
