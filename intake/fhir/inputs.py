"""What one intake's bundle is built from: plain values, no I/O (see
:mod:`intake.fhir.bundle` for what they become)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypedDict

from intake.clinical.result import TriageResult

JsonDict = dict[str, Any]


class PatientDemographics(TypedDict, total=False):
    """What the front desk collects for a walk-in (all keys optional).

    ``family``/``given`` are the name as written (kanji), ``family_kana``/
    ``given_kana`` its reading in katakana. As in JP Core they become two
    HumanName entries marked with the ``iso21090-EN-representation``
    extension: ``IDE`` (ideographic) and ``SYL`` (syllabic, kana).
    ``birth_date`` is an ISO date (``YYYY-MM-DD``) or a ``datetime.date``.
    ``sex`` is a FHIR administrative gender (``male``, ``female``, ``other``,
    ``unknown``) or the questionnaire's code (``M``, ``F``, ``X``, ``NA``).
    """

    family: str
    given: str
    family_kana: str
    given_kana: str
    birth_date: str | date
    sex: str



@dataclass(frozen=True, kw_only=True)
class ReviewState:
    """What practitioners did to the intake, as the write-back sends it."""

    version: int
    """Sequence number of the newest review action (>= 0; 0: none yet)."""
    updated_at: datetime
    """When the newest action was taken (timezone-aware)."""
    acknowledged: Mapping[str, datetime] = field(default_factory=dict)
    """Flag code -> when it was acknowledged (timezone-aware). Every code is a red
    flag of the current triage or one of ``withdrawn_flags``."""
    withdrawn_flags: Sequence[str] = ()
    """Red flag codes an earlier revision fired and the current one does not."""
    department: str | None = None
    """The practitioner's department (a code of ``constants.CS_DEPARTMENT``);
    overrides the triage's."""
    department_reason: str | None = None
    """Free text typed by the practitioner for the department change (sent, never
    logged or put in an error message)."""
    reviewed_at: datetime | None = None
    """When the intake was marked reviewed (timezone-aware)."""


@dataclass(frozen=True, kw_only=True)
class BundleInput:
    """Everything one intake's bundle is built from (plain values, no I/O)."""

    intake_id: str
    """The intake's database id (uuid). Not sent: it only names the intake in errors."""
    business_id: str
    """The intake's business identifier value (system IDENTIFIER_SYSTEM_INTAKE)."""
    questionnaire_response: Mapping[str, Any]
    """FHIR QuestionnaireResponse JSON from ``intake.clinical.build_questionnaire_response``."""
    triage: TriageResult
    """The triage result (its JSON form, ``to_dict()``, is the CASES.md shape)."""
    received_at: datetime
    """When the intake was received (timezone-aware)."""
    triaged_at: datetime
    """When the triage result was produced (timezone-aware)."""
    plugin_version: str
    """The plugin's version, recorded in the Provenance."""
    patient_record_number: str | None = None
    """The clinic's record number (MRN) when staff gave one."""
    record_number_system: str | None = None
    """The identifier system of the clinic's record numbers (configured per clinic)."""
    patient_demographics: Mapping[str, Any] | None = None
    """A walk-in's demographics, keys as in :class:`PatientDemographics`;
    ignored when a record number is given."""
    create_patient_if_missing: bool = False
    """With a record number: also create a Patient holding only that number when
    the record system has none (instead of failing the delivery)."""
    revision: int = 1
    """The triage revision ``triage`` is (1: the first; each re-triage after
    examination findings adds one). Above 1 the bundle is a write-back."""
    review: ReviewState | None = None
    """The practitioners' actions so far; set, the bundle is a write-back."""
    red_flag_since: Mapping[str, datetime] = field(default_factory=dict)
    """Write-back only: red flag code -> the triage time of the earliest revision
    since which it has fired without a break (current flags) or of the revision
    that first fired it (withdrawn flags): the Flag's ``period.start``. A missing
    code gets the fallback described in :mod:`intake.fhir.bundle`."""

    @property
    def update_mode(self) -> bool:
        """True for a write-back: the owned resources are conditional updates."""
        return self.review is not None or self.revision > 1


class BundleError(ValueError):
    """The input cannot make a valid bundle. The message names fields and codes only."""
