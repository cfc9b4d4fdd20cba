"""The outbound transaction Bundle: one per intake, safe to send any number of times.

What an intake becomes in the record system (README, "The record system (FHIR R4)"),
in entry order:

====================  =====================================  =============================
resource              business identifier (value)            notes
====================  =====================================  =============================
Patient (walk-in)     ``<business_id>/patient``              only without a record number
QuestionnaireResponse ``<business_id>``                      the answers, as built by the
                                                             clinical module
RiskAssessment        ``<business_id>/risk``                 method = rule set + version,
                                                             one prediction per flag
Flag (per red flag)   ``<business_id>/flag/<FLAG_CODE>``     for the EHR's alert banner;
                                                             inactive once acknowledged
                                                             or withdrawn (write-back)
ServiceRequest        ``<business_id>/service-request``      intent proposal, department,
                                                             priority from the urgency
Task                  ``<business_id>/task``                 "review this intake"
Provenance            ``<business_id>/provenance``           in ``meta.tag`` (see below)
                      write-back: ``<business_id>/``         one per state written back
                      ``provenance/r<rev>-v<version>``
====================  =====================================  =============================

Every identifier uses the system ``constants.IDENTIFIER_SYSTEM_INTAKE``. On the
first delivery every entry is ``POST <Type>`` with
``ifNoneExist=identifier=<system>|<value>``, so a repeat of the same bundle
creates nothing new: the server finds each resource by its identifier and
keeps the one it has. R4 Provenance has no ``identifier`` element, so its
business identifier is carried as a ``meta.tag`` with the same system and
code = value, and its condition is ``_tag=<system>|<value>`` (``_tag`` is a
standard search parameter of every resource).

References between entries use ``urn:uuid:`` full URLs that are uuid5 of
``<system>|<value>``: the same intake always gives a byte-identical bundle
(nothing depends on the clock or on randomness), so a re-send is the same
request and its hash can be compared.

The patient:

* with a clinic record number (``patient_record_number``), every reference
  is the conditional reference ``Patient?identifier=<mrn system>|<mrn>``. The
  record system owns its patients: an unknown number makes the transaction
  fail (HTTP 4xx, "delivery failed", a person checks the number) instead of
  creating a ghost patient. Clinics whose record system should create the
  patient when missing set ``create_patient_if_missing``: the bundle then
  carries a Patient holding only the record number, created with
  ``ifNoneExist`` on it, and references it by its ``urn:uuid``; the server
  resolves that to the existing patient when there is one. Demographics are
  never sent when a record number is given (the record system has them).
* without one (a walk-in), a Patient with the demographics the desk collected
  (see :class:`PatientDemographics`) and the identifier
  ``<business_id>/patient``; an empty dict or ``None`` gives a Patient with
  that identifier only.

The RiskAssessment's ``method`` is the coding ``constants.CS_RULESET`` with
code = the rule set id and ``version`` = its version (``posterior-knee`` /
``1.0.0``), text ``posterior-knee@1.0.0``. Each prediction carries the flag
(``constants.CS_FLAG``), a qualitative risk derived from the flag's urgency
(:data:`URGENCY_TO_QUALITATIVE_RISK`), the exact urgency in the
``constants.EXT_TRIAGE_URGENCY`` extension, and a rationale listing the answers
that fired it (question text and answer, Japanese then English). No
``probability`` is invented. The Wells score goes in ``note``, marked partial
when the examination items are missing. Displays come from the plugin's
CodeSystems (Japanese, with the English as a translation extension).

Write-back (DESIGN step 6). After the first delivery practitioners change the
intake: they acknowledge a red flag, change the department (with a reason),
enter examination findings (a re-triage: a new revision whose flags may
differ) and mark it reviewed. ``ifNoneExist`` would absorb all of that, so a
bundle with a :class:`ReviewState` or a revision above 1 is built in *update
mode*: it carries the intake's whole current state, not a diff, and every
resource the plugin owns (QuestionnaireResponse, RiskAssessment, Flags,
ServiceRequest, Task) is a conditional update, ``PUT
<Type>?identifier=<system>|<value>`` with the full resource. The server
creates it when nothing matches and replaces the one that matches, so sending
the same state any number of times leaves one resource per identifier with
that state, and a write-back is complete even when the first delivery never
landed. The Patient entry is the same as on the first delivery (the plugin
never changes a patient). What the state changes:

* QuestionnaireResponse and RiskAssessment: ``status`` ``amended`` from
  revision 2 on (the answers then include the staff examination items; the
  assessment is the current triage's, built as on the first delivery).
* Flag, one per red flag of the current triage: ``active``, or ``inactive``
  with ``period.end`` = the acknowledgement once a practitioner acknowledged
  it. The Flag exists to make the EHR's banner get a clinician to look; once
  one has looked, that job is done and a banner that stays up only trains
  people to ignore banners. The finding is not lost: the RiskAssessment keeps
  its prediction. A red flag an earlier revision fired and this one does not
  (``withdrawn_flags``) gets an ``inactive`` Flag that ends at the new triage
  (or at its acknowledgement, if that came first), so it leaves the banner
  instead of staying active forever. ``period.start`` is when the flag first
  fired without a break (``BundleInput.red_flag_since``); without that it is
  the current triage (for a withdrawn flag the intake's receipt), never later
  than the flag's end.
* ServiceRequest: ``performerType`` is the practitioner's department when one
  was chosen, with a ``note`` holding their reason; ``priority`` still follows
  the current urgency.
* Task: ``requested`` before any review action, ``in-progress`` once there is
  one, ``completed`` (with ``executionPeriod.end``) once the intake is marked
  reviewed; ``lastModified`` is the state's time (the newest action, or the
  re-triage it caused when that came later, so it is never before
  ``authoredOn``).
* Provenance: one per state, ``POST`` with ``ifNoneExist`` on the tag
  ``<business_id>/provenance/r<revision>-v<review version>``, activity
  ``UPDATE``, targets the resources the state sets (not the Patient),
  ``occurredDateTime`` and ``recorded`` = the state's time.

Resending an older state after a newer one would write the older one back;
the delivery code sends one state per intake at a time, newest last.

Privacy: the bundle carries the answers, the triage result, the review state
(times, codes and a department change's reason) and the patient link or the
collected demographics, nothing else: no narrative, no internal database id,
no staff names (the plugin's audit trail keeps who did what). Error messages
raised here name fields and codes, never values a patient gave or staff typed.

The code: :mod:`~intake.fhir.inputs` (what a bundle is built from),
:mod:`~intake.fhir.checks` (what the input must hold), :mod:`~intake.fhir.identifiers`
(business identifiers, conditions and references), :mod:`~intake.fhir.builder` (the
entries), :mod:`~intake.fhir.narrative` (the readable texts); codes and displays come
from :mod:`intake.clinical.terminology` and answers are worded by
:mod:`intake.clinical.answer_display`. This module is the entry point.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from intake.clinical.terminology import code_display
from intake.fhir.builder import URGENCY_TO_PRIORITY, URGENCY_TO_QUALITATIVE_RISK, Builder
from intake.fhir.checks import check_input
from intake.fhir.identifiers import full_url, identifier_query, intake_identifier
from intake.fhir.inputs import (
    BundleError,
    BundleInput,
    JsonDict,
    PatientDemographics,
    ReviewState,
)

__all__ = [
    "URGENCY_TO_PRIORITY",
    "URGENCY_TO_QUALITATIVE_RISK",
    "BundleError",
    "BundleInput",
    "JsonDict",
    "PatientDemographics",
    "ReviewState",
    "build_risk_assessment",
    "build_transaction_bundle",
    "bundle_json",
    "code_display",
    "full_url",
    "identifier_query",
    "intake_identifier",
]


def build_transaction_bundle(inp: BundleInput) -> JsonDict:
    """Build the intake's transaction Bundle as FHIR JSON (a plain dict).

    Each resource is validated by its ``fhir.resources.R4B`` model, and so is
    the Bundle's envelope. The result depends only on ``inp``: building twice gives
    equal dicts and equal JSON.
    """
    check_input(inp)
    b = Builder(inp)
    entries: list[JsonDict] = []

    patient_entry = b.patient_entry()
    if patient_entry is not None:
        entries.append(patient_entry)
    entries.append(b.questionnaire_response_entry())
    entries.append(b.risk_assessment_entry())
    entries.extend(b.flag_entries())
    entries.append(b.service_request_entry())
    entries.append(b.task_entry())
    entries.append(b.provenance_entry(entries))

    bundle: JsonDict = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    # Each resource was validated by its model above; validating the envelope
    # (full URLs, requests) without them again keeps a build at half the cost.
    Bundle.model_validate(
        {**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]}
    )
    return bundle


def build_risk_assessment(inp: BundleInput) -> JsonDict:
    """The intake's RiskAssessment exactly as its transaction Bundle carries it.

    Validated by the R4B model; its ``subject`` and ``basis`` are the bundle's
    references (conditional or ``urn:uuid:``). The inbound FHIR API serves this same
    resource with its own references, so there is one RiskAssessment builder.
    """
    check_input(inp)
    resource: JsonDict = Builder(inp).risk_assessment_entry()["resource"]
    return resource


def bundle_json(bundle: Mapping[str, Any]) -> bytes:
    """The bytes to send: compact UTF-8 JSON with a stable key order."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

