"""The outbound transaction Bundle: one per intake, safe to send any number of times.

What an intake becomes in the record system (DESIGN.md, "What goes to the
record system"), in entry order:

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
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypedDict
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from intake import constants
from intake.resources import fhir_profiles_dir

JsonDict = dict[str, Any]

# SPEC.md section 1: urgency -> FHIR request priority (request-priority).
URGENCY_TO_PRIORITY: Final[Mapping[str, str]] = {
    "emergency": "stat",
    "same_day": "asap",
    "soon": "urgent",
    "routine": "routine",
    "self_care": "routine",
}

# Urgency -> qualitative risk (risk-probability) of a prediction. The rules
# give an urgency of action, not a probability; this maps "act now / today"
# to high, "within days" to moderate and the rest to low, so an EHR sorting
# by risk sorts as the worklist does. It is not a calibrated likelihood.
URGENCY_TO_QUALITATIVE_RISK: Final[Mapping[str, str]] = {
    "emergency": "high",
    "same_day": "high",
    "soon": "moderate",
    "routine": "low",
    "self_care": "low",
}
_RISK_DISPLAY: Final[Mapping[str, str]] = {
    "high": "High likelihood",
    "moderate": "Moderate likelihood",
    "low": "Low likelihood",
}

# Characters with a meaning in FHIR search values; escaped with a backslash.
_SEARCH_SPECIAL = ("\\", ",", "$", "|")
_DEVICE_ID = "plugin"
_DEVICE_NAME = "knee-intake triage plugin"
_YES_NO = {True: ("はい", "yes"), False: ("いいえ", "no")}
_UNANSWERED = ("未回答", "unanswered")


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


_SEX_TO_GENDER: Final[Mapping[str, str]] = {
    "M": "male",
    "F": "female",
    "X": "other",
    "NA": "unknown",
    "male": "male",
    "female": "female",
    "other": "other",
    "unknown": "unknown",
}


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
    triage: Mapping[str, Any]
    """The triage result in the CASES.md shape (``TriageResult.to_dict()``)."""
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
    code gets the fallback of the module docstring."""

    @property
    def update_mode(self) -> bool:
        """True for a write-back: the owned resources are conditional updates."""
        return self.review is not None or self.revision > 1


class BundleError(ValueError):
    """The input cannot make a valid bundle. The message names fields and codes only."""


# ---------------------------------------------------------------------------
# Public API


def build_transaction_bundle(inp: BundleInput) -> JsonDict:
    """Build the intake's transaction Bundle as FHIR JSON (a plain dict).

    Each resource is validated by its ``fhir.resources.R4B`` model, and so is
    the Bundle's envelope. The result depends only on ``inp``: building twice gives
    equal dicts and equal JSON.
    """
    _check_input(inp)
    b = _Builder(inp)
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
    _check_input(inp)
    resource: JsonDict = _Builder(inp).risk_assessment_entry()["resource"]
    return resource


def bundle_json(bundle: Mapping[str, Any]) -> bytes:
    """The bytes to send: compact UTF-8 JSON with a stable key order."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def intake_identifier(business_id: str, suffix: str = "") -> tuple[str, str]:
    """(system, value) of the intake's resource named by ``suffix`` ("" is the
    QuestionnaireResponse; "risk", "flag/<CODE>", "service-request", "task",
    "provenance", "patient")."""
    value = f"{business_id}/{suffix}" if suffix else business_id
    return constants.IDENTIFIER_SYSTEM_INTAKE, value


def identifier_query(system: str, value: str, param: str = "identifier") -> str:
    """``identifier=<system>|<value>`` for a search or ``ifNoneExist``.

    Search-special characters in the value are escaped with a backslash (FHIR
    search, "Escaping"), then each part is percent-encoded except for the
    characters a query allows; the ``|`` separator stays literal, as FHIR
    servers and the specification's examples expect.
    """
    escaped = value
    for ch in _SEARCH_SPECIAL:
        escaped = escaped.replace(ch, "\\" + ch)
    return f"{param}={quote(system, safe=':/')}|{quote(escaped, safe=':/@')}"


_URN_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, constants.IDENTIFIER_SYSTEM_INTAKE)


def full_url(system: str, value: str) -> str:
    """Deterministic ``urn:uuid:`` for the resource with this business identifier."""
    return f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{system}|{value}')}"


# ---------------------------------------------------------------------------
# Terminology (displays come from the plugin's own FHIR artefacts)


@dataclass(frozen=True)
class _Text:
    ja: str
    en: str | None = None


def _translation(node: Mapping[str, Any] | None) -> str | None:
    for ext in (node or {}).get("extension", []):
        if ext.get("url") != constants.EXT_TRANSLATION:
            continue
        parts = {p.get("url"): p for p in ext.get("extension", [])}
        if parts.get("lang", {}).get("valueCode") == "en":
            content = parts.get("content", {}).get("valueString")
            return str(content) if content is not None else None
    return None


@lru_cache(maxsize=1)
def _code_displays() -> Mapping[tuple[str, str], _Text]:
    """Displays of every concept in fhir_profiles/CodeSystem-*.json (ja display,
    en designation), read once. Missing files give no displays, not an error:
    a coding without display is valid FHIR."""
    out: dict[tuple[str, str], _Text] = {}
    folder = fhir_profiles_dir()
    for path in sorted(folder.glob("CodeSystem-*.json")):
        cs = json.loads(path.read_text(encoding="utf-8"))

        def walk(concepts: Sequence[Mapping[str, Any]], url: str = cs["url"]) -> None:
            for c in concepts:
                en = next(
                    (d["value"] for d in c.get("designation", []) if d.get("language") == "en"),
                    None,
                ) or _translation(c.get("_display"))
                if "display" in c:
                    out[(url, c["code"])] = _Text(c["display"], en)
                walk(c.get("concept", []))

        walk(cs.get("concept", []))
    return out


def code_display(system: str, code: str) -> tuple[str, str | None] | None:
    """(Japanese display, English display or None) of a concept of the plugin's own
    CodeSystems (urgency, department, flag, ...), or None for an unknown code."""
    text = _code_displays().get((system, code))
    return None if text is None else (text.ja, text.en)


@dataclass(frozen=True)
class _Item:
    text: _Text
    options: Mapping[str, _Text]


@lru_cache(maxsize=1)
def _questionnaire_items() -> Mapping[str, _Item]:
    """Question texts and answer displays by linkId, for readable rationales."""
    out: dict[str, _Item] = {}
    for path in sorted(Path(fhir_profiles_dir()).glob("Questionnaire-*.json")):
        q = json.loads(path.read_text(encoding="utf-8"))
        if q.get("url") != constants.QUESTIONNAIRE_URL:
            continue

        def walk(items: Sequence[Mapping[str, Any]]) -> None:
            for it in items:
                options = {
                    o["valueCoding"]["code"]: _Text(
                        o["valueCoding"].get("display", o["valueCoding"]["code"]),
                        _translation(o["valueCoding"].get("_display")),
                    )
                    for o in it.get("answerOption", [])
                    if "valueCoding" in o
                }
                if "text" in it:
                    out[it["linkId"]] = _Item(
                        _Text(it["text"], _translation(it.get("_text"))), options
                    )
                walk(it.get("item", []))

        walk(q.get("item", []))
    return out


def _coding(system: str, code: str, label: Mapping[str, Any] | None = None) -> JsonDict:
    """A Coding with the Japanese display and the English one as a translation."""
    text = _Text(str(label["ja"]), label.get("en")) if label and label.get("ja") else None
    text = text or _code_displays().get((system, code))
    coding: JsonDict = {"system": system, "code": code}
    if text is not None:
        coding["display"] = text.ja
        if text.en:
            coding["_display"] = _translation_ext(text.en)
    return coding


def _translation_ext(en: str) -> JsonDict:
    return {
        "extension": [
            {
                "url": constants.EXT_TRANSLATION,
                "extension": [
                    {"url": "lang", "valueCode": "en"},
                    {"url": "content", "valueString": en},
                ],
            }
        ]
    }


# ---------------------------------------------------------------------------
# Checks


def _check_input(inp: BundleInput) -> None:
    if not inp.business_id or any(ch.isspace() for ch in inp.business_id):
        raise BundleError("business_id must be a non-empty string without spaces")
    if any(ch in inp.business_id for ch in _SEARCH_SPECIAL):
        raise BundleError("business_id must not contain \\ , $ or |")
    for name in ("received_at", "triaged_at"):
        value = getattr(inp, name)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise BundleError(f"{name} must be a timezone-aware datetime")
    if inp.patient_record_number is not None:
        if not inp.patient_record_number.strip():
            raise BundleError("patient_record_number is empty")
        if not inp.record_number_system:
            raise BundleError("record_number_system is required with a record number")
    triage = inp.triage
    for key in ("ruleset", "urgency", "department", "flags"):
        if key not in triage:
            raise BundleError(f"triage result lacks {key!r}")
    _urgency(triage["urgency"])
    for flag in triage["flags"]:
        for key in ("code", "urgency", "department", "red_flag", "evidence"):
            if key not in flag:
                raise BundleError(f"triage flag lacks {key!r}")
        _urgency(flag["urgency"])
    _check_write_back(inp)


def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def _count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _check_write_back(inp: BundleInput) -> None:
    """The revision and review state: consistent with the triage and the CodeSystems."""
    if not _count(inp.revision, 1):
        raise BundleError("revision must be an integer >= 1")
    for code, since in inp.red_flag_since.items():
        if not _aware(since):
            raise BundleError(f"red_flag_since[{code!r}] must be a timezone-aware datetime")
    review = inp.review
    if review is None:
        return
    if not _count(review.version, 0):
        raise BundleError("review.version must be an integer >= 0")
    if not _aware(review.updated_at):
        raise BundleError("review.updated_at must be a timezone-aware datetime")
    if review.reviewed_at is not None and not _aware(review.reviewed_at):
        raise BundleError("review.reviewed_at must be a timezone-aware datetime")
    if isinstance(review.withdrawn_flags, str):
        raise BundleError("review.withdrawn_flags must be a sequence of flag codes")
    red = {str(f["code"]) for f in inp.triage["flags"] if f["red_flag"]}
    for code in review.withdrawn_flags:
        if code in red:
            raise BundleError(f"withdrawn flag {code!r} is a red flag of the current triage")
        if _code_displays().get((constants.CS_FLAG, code)) is None:
            raise BundleError(f"withdrawn flag {code!r} is not a code of the flag CodeSystem")
    for code, at in review.acknowledged.items():
        if code not in red and code not in review.withdrawn_flags:
            raise BundleError(
                f"acknowledged flag {code!r} is neither a current red flag nor withdrawn"
            )
        if not _aware(at):
            raise BundleError(f"review.acknowledged[{code!r}] must be a timezone-aware datetime")
    if review.department is not None and (
        _code_displays().get((constants.CS_DEPARTMENT, review.department)) is None
    ):
        raise BundleError(f"review.department {review.department!r} is not a department code")
    if review.department_reason is not None and not isinstance(review.department_reason, str):
        raise BundleError("review.department_reason must be text")


def _urgency(code: object) -> str:
    if not isinstance(code, str) or code not in URGENCY_TO_PRIORITY:
        raise BundleError(f"unknown urgency code {code!r}")
    return code


def _fhir_datetime(value: datetime) -> str:
    # The form fhir.resources emits (microseconds only when non-zero), so the
    # model's canonical dump and this text agree.
    return value.isoformat()


def _parse_ruleset(ruleset: str) -> tuple[str, str | None]:
    rid, sep, version = ruleset.partition("@")
    return rid, (version if sep else None)


def _period(start: datetime, end: datetime | None) -> dict[str, datetime]:
    """A Flag's period; the start is never after the end (a flag can only be
    acknowledged or withdrawn once it fired, so an end before the best-known
    start means the flag fired by then)."""
    if end is None:
        return {"start": start}
    return {"start": min(start, end), "end": end}


# ---------------------------------------------------------------------------
# The builder


class _Builder:
    """Builds the entries of one bundle; holds the references between them."""

    def __init__(self, inp: BundleInput) -> None:
        self.inp = inp
        self.triage = inp.triage
        self.urgency = _urgency(inp.triage["urgency"])
        self.system = constants.IDENTIFIER_SYSTEM_INTAKE
        self.qr_url = self.url("")
        self.risk_url = self.url("risk")
        self.patient_ref = self._patient_reference()
        self.update = inp.update_mode
        self.review = inp.review
        # The time of the state a write-back sends: the newest review action, or
        # the re-triage when that came later (exam findings are saved, then triaged).
        self.state_at = inp.triaged_at
        if inp.review is not None and inp.review.updated_at > inp.triaged_at:
            self.state_at = inp.review.updated_at

    # identifiers and entries ------------------------------------------------

    def ident(self, suffix: str) -> JsonDict:
        system, value = intake_identifier(self.inp.business_id, suffix)
        return {"system": system, "value": value}

    def url(self, suffix: str) -> str:
        return full_url(*intake_identifier(self.inp.business_id, suffix))

    def entry(
        self, suffix: str, resource: JsonDict, *, if_none_exist: str | None = None
    ) -> JsonDict:
        system, value = intake_identifier(self.inp.business_id, suffix)
        return {
            "fullUrl": full_url(system, value),
            "resource": resource,
            "request": {
                "method": "POST",
                "url": resource["resourceType"],
                "ifNoneExist": if_none_exist or identifier_query(system, value),
            },
        }

    def owned_entry(self, suffix: str, resource: JsonDict) -> JsonDict:
        """An entry for a resource the plugin owns: a conditional create on the first
        delivery, a conditional update (create or replace) in a write-back."""
        if not self.update:
            return self.entry(suffix, resource)
        system, value = intake_identifier(self.inp.business_id, suffix)
        return {
            "fullUrl": full_url(system, value),
            "resource": resource,
            "request": {
                "method": "PUT",
                "url": f"{resource['resourceType']}?{identifier_query(system, value)}",
            },
        }

    @staticmethod
    def validated(model: Any, resource: JsonDict) -> JsonDict:
        """Check with the R4B model and return its canonical JSON form."""
        out: JsonDict = model.model_validate(resource).model_dump(mode="json", exclude_none=True)
        return out

    # patient ------------------------------------------------------------------

    def _patient_reference(self) -> JsonDict:
        inp = self.inp
        if inp.patient_record_number is not None and not inp.create_patient_if_missing:
            assert inp.record_number_system is not None  # checked in _check_input
            query = identifier_query(inp.record_number_system, inp.patient_record_number)
            return {"reference": f"Patient?{query}"}
        return {"reference": self.url("patient")}

    def patient_entry(self) -> JsonDict | None:
        inp = self.inp
        if inp.patient_record_number is not None:
            if not inp.create_patient_if_missing:
                return None
            assert inp.record_number_system is not None
            mrn = {"system": inp.record_number_system, "value": inp.patient_record_number}
            resource = self.validated(Patient, {"resourceType": "Patient", "identifier": [mrn]})
            return self.entry(
                "patient",
                resource,
                if_none_exist=identifier_query(inp.record_number_system, inp.patient_record_number),
            )
        resource = {
            "resourceType": "Patient",
            "meta": {"profile": [constants.PROFILE_PATIENT]},
            "identifier": [self.ident("patient")],
            **_demographics(inp.patient_demographics or {}),
        }
        return self.entry("patient", self.validated(Patient, resource))

    # resources ----------------------------------------------------------------

    def questionnaire_response_entry(self) -> JsonDict:
        qr = copy.deepcopy(dict(self.inp.questionnaire_response))
        if qr.get("resourceType") != "QuestionnaireResponse":
            raise BundleError("questionnaire_response is not a QuestionnaireResponse")
        qr.pop("id", None)
        qr.pop("text", None)
        meta = dict(qr.pop("meta", None) or {})
        meta.pop("versionId", None)
        meta.pop("lastUpdated", None)
        meta["profile"] = [constants.PROFILE_QUESTIONNAIRE_RESPONSE]
        qr = {
            "resourceType": "QuestionnaireResponse",
            "meta": meta,
            "identifier": self.ident(""),
            **{k: v for k, v in qr.items() if k not in ("resourceType", "identifier", "subject")},
            "subject": self.patient_ref,
        }
        qr.setdefault("authored", _fhir_datetime(self.inp.received_at))
        if self.inp.revision > 1:
            # The staff examination items were added after the patient completed it.
            qr["status"] = "amended"
        return self.owned_entry("", self.validated(QuestionnaireResponse, qr))

    def risk_assessment_entry(self) -> JsonDict:
        rid, version = _parse_ruleset(str(self.triage["ruleset"]))
        method_coding: JsonDict = {"system": constants.CS_RULESET, "code": rid}
        if version:
            method_coding["version"] = version
        resource: JsonDict = {
            "resourceType": "RiskAssessment",
            "meta": {"profile": [constants.PROFILE_RISK_ASSESSMENT]},
            "identifier": [self.ident("risk")],
            "status": "amended" if self.inp.revision > 1 else "final",
            "method": {"coding": [method_coding], "text": str(self.triage["ruleset"])},
            "subject": self.patient_ref,
            "occurrenceDateTime": _fhir_datetime(self.inp.triaged_at),
            "basis": [{"reference": self.qr_url}],
        }
        predictions = [self._prediction(f) for f in self.triage["flags"]]
        if predictions:
            resource["prediction"] = predictions
        mitigation = _advice_text(self.triage.get("advice"))
        if mitigation:
            resource["mitigation"] = mitigation
        wells = self.triage.get("wells")
        if isinstance(wells, Mapping) and "score" in wells:
            resource["note"] = [{"text": _wells_text(wells)}]
        return self.owned_entry("risk", self.validated(RiskAssessment, resource))

    def _prediction(self, flag: Mapping[str, Any]) -> JsonDict:
        urgency = _urgency(flag["urgency"])
        risk = URGENCY_TO_QUALITATIVE_RISK[urgency]
        return {
            "extension": [self._urgency_extension(urgency)],
            "outcome": {"coding": [_coding(constants.CS_FLAG, flag["code"], flag.get("label"))]},
            "qualitativeRisk": {
                "coding": [
                    {
                        "system": constants.CS_RISK_PROBABILITY,
                        "code": risk,
                        "display": _RISK_DISPLAY[risk],
                    }
                ]
            },
            "rationale": _rationale(flag),
        }

    def _urgency_extension(self, urgency: str) -> JsonDict:
        return {
            "url": constants.EXT_TRIAGE_URGENCY,
            "valueCoding": _coding(constants.CS_URGENCY, urgency),
        }

    def flag_entries(self) -> list[JsonDict]:
        out = []
        acknowledged = self.review.acknowledged if self.review is not None else {}
        for flag in self.triage["flags"]:
            if not flag["red_flag"]:
                continue
            code = str(flag["code"])
            if not self.update:
                out.append(self._flag(code, flag.get("label"), {"start": self.inp.triaged_at}))
                continue
            # Still firing: active since it first fired (or this triage), until a
            # practitioner acknowledged it.
            start = self.inp.red_flag_since.get(code, self.inp.triaged_at)
            end = acknowledged.get(code)
            out.append(self._flag(code, flag.get("label"), _period(start, end)))
        withdrawn = self.review.withdrawn_flags if self.review is not None else ()
        for code in sorted(set(withdrawn)):
            # Fired by an earlier revision, not by this one: it ended with this
            # triage, or when it was acknowledged if that came first.
            end = self.inp.triaged_at
            ack = acknowledged.get(code)
            if ack is not None and ack < end:
                end = ack
            start = self.inp.red_flag_since.get(code, self.inp.received_at)
            out.append(self._flag(code, None, _period(start, end)))
        return out

    def _flag(
        self, code: str, label: Mapping[str, Any] | None, period: Mapping[str, datetime]
    ) -> JsonDict:
        suffix = f"flag/{code}"
        resource = {
            "resourceType": "Flag",
            "meta": {"profile": [constants.PROFILE_FLAG]},
            "identifier": [self.ident(suffix)],
            "status": "inactive" if "end" in period else "active",
            "category": [
                {
                    "coding": [
                        {
                            "system": constants.CS_FLAG_CATEGORY,
                            "code": "clinical",
                            "display": "Clinical",
                        }
                    ]
                }
            ],
            "code": {"coding": [_coding(constants.CS_FLAG, code, label)]},
            "subject": self.patient_ref,
            "period": {k: _fhir_datetime(v) for k, v in period.items()},
        }
        return self.owned_entry(suffix, self.validated(Flag, resource))

    def service_request_entry(self) -> JsonDict:
        department = str(self.triage["department"])
        chosen = self.review.department if self.review is not None else None
        resource: JsonDict = {
            "resourceType": "ServiceRequest",
            "meta": {"profile": [constants.PROFILE_SERVICE_REQUEST]},
            "extension": [self._urgency_extension(self.urgency)],
            "identifier": [self.ident("service-request")],
            "status": "active",
            "intent": "proposal",
            "priority": URGENCY_TO_PRIORITY[self.urgency],
            "code": {
                "text": "受診先の診療科の提案",
                "_text": _translation_ext("Suggested department"),
            },
            "subject": self.patient_ref,
            "authoredOn": _fhir_datetime(self.inp.triaged_at),
            "performerType": {"coding": [_coding(constants.CS_DEPARTMENT, chosen or department)]},
            "reasonReference": [{"reference": self.risk_url}],
        }
        if chosen is not None:
            assert self.review is not None
            reason = (self.review.department_reason or "").strip() or "(記載なし / not given)"
            resource["note"] = [
                {"text": f"受診先の変更理由 / Reason for the department change:\n{reason}"}
            ]
        return self.owned_entry("service-request", self.validated(ServiceRequest, resource))

    def task_entry(self) -> JsonDict:
        review = self.review
        status = "requested"
        if review is not None and review.reviewed_at is not None:
            status = "completed"
        elif review is not None and review.version > 0:
            status = "in-progress"
        resource: JsonDict = {
            "resourceType": "Task",
            "meta": {"profile": [constants.PROFILE_TASK]},
            "identifier": [self.ident("task")],
            "status": status,
            "intent": "order",
            "priority": URGENCY_TO_PRIORITY[self.urgency],
            "code": {
                "coding": [
                    {
                        "system": constants.CS_INTAKE_TASK,
                        "code": constants.TASK_CODE_REVIEW,
                        "display": "問診・トリアージ結果の確認",
                        "_display": _translation_ext("Review the intake and its triage"),
                    }
                ]
            },
            "description": (
                "問診とトリアージ結果(診断ではありません)を確認し、受診先を確定してください。"
                " / Review the intake and its triage support (not a diagnosis) and confirm"
                " the department."
            ),
            "focus": {"reference": self.risk_url},
            "for": self.patient_ref,
            "authoredOn": _fhir_datetime(self.inp.triaged_at),
        }
        if review is not None:
            resource["lastModified"] = _fhir_datetime(self.state_at)
            if review.reviewed_at is not None:
                resource["executionPeriod"] = {"end": _fhir_datetime(review.reviewed_at)}
        return self.owned_entry("task", self.validated(Task, resource))

    def provenance_entry(self, entries: Sequence[JsonDict]) -> JsonDict:
        suffix = "provenance"
        if self.update:
            # One Provenance per state: r<revision>-v<newest review action>.
            version = self.review.version if self.review is not None else 0
            suffix = f"provenance/r{self.inp.revision}-v{version}"
            # What this state sets: the conditional updates (never the Patient).
            targets = [
                {"reference": e["fullUrl"]} for e in entries if e["request"]["method"] == "PUT"
            ]
        else:
            # The plugin created every entry except a record-number patient, which
            # may be the record system's own.
            targets = [
                {"reference": e["fullUrl"]}
                for e in entries
                if not (
                    e["resource"]["resourceType"] == "Patient" and self.inp.patient_record_number
                )
            ]
        system, value = intake_identifier(self.inp.business_id, suffix)
        device = {
            "resourceType": "Device",
            "id": _DEVICE_ID,
            "deviceName": [{"name": _DEVICE_NAME, "type": "user-friendly-name"}],
            "version": [
                {"type": {"text": "plugin"}, "value": self.inp.plugin_version},
                {"type": {"text": "rule set"}, "value": str(self.triage["ruleset"])},
            ],
        }
        occurred: JsonDict
        if self.update:
            occurred = {"occurredDateTime": _fhir_datetime(self.state_at)}
            recorded, activity = self.state_at, ("UPDATE", "revise")
        else:
            occurred = {
                "occurredPeriod": {
                    "start": _fhir_datetime(self.inp.received_at),
                    "end": _fhir_datetime(self.inp.triaged_at),
                }
            }
            recorded, activity = self.inp.triaged_at, ("CREATE", "create")
        resource = {
            "resourceType": "Provenance",
            "meta": {
                "profile": [constants.PROFILE_PROVENANCE],
                "tag": [{"system": system, "code": value}],
            },
            "contained": [device],
            "target": targets,
            **occurred,
            "recorded": _fhir_datetime(recorded),
            "activity": {
                "coding": [
                    {
                        "system": constants.CS_DATA_OPERATION,
                        "code": activity[0],
                        "display": activity[1],
                    }
                ]
            },
            "agent": [
                {
                    "type": {
                        "coding": [
                            {
                                "system": constants.CS_PROVENANCE_PARTICIPANT,
                                "code": "author",
                                "display": "Author",
                            }
                        ]
                    },
                    "who": {
                        "reference": f"#{_DEVICE_ID}",
                        "display": f"{_DEVICE_NAME} {self.inp.plugin_version}",
                    },
                }
            ],
        }
        return self.entry(
            suffix,
            self.validated(Provenance, resource),
            if_none_exist=identifier_query(system, value, param="_tag"),
        )


# ---------------------------------------------------------------------------
# Text helpers


def _demographics(d: Mapping[str, Any]) -> JsonDict:
    unknown = set(d) - set(PatientDemographics.__annotations__)
    if unknown:
        raise BundleError(f"unknown demographics keys: {sorted(unknown)}")
    out: JsonDict = {}
    names = []
    for fam, giv, rep in (("family", "given", "IDE"), ("family_kana", "given_kana", "SYL")):
        name: JsonDict = {}
        if d.get(fam):
            name["family"] = str(d[fam])
        if d.get(giv):
            name["given"] = [str(d[giv])]
        if name:
            names.append(
                {
                    "extension": [{"url": constants.EXT_EN_REPRESENTATION, "valueCode": rep}],
                    "use": "official",
                    **name,
                }
            )
    if names:
        out["name"] = names
    if d.get("sex") is not None:
        gender = _SEX_TO_GENDER.get(str(d["sex"]))
        if gender is None:
            raise BundleError("demographics 'sex' is not a known code")
        out["gender"] = gender
    birth = d.get("birth_date")
    if birth is not None:
        if isinstance(birth, datetime):
            raise BundleError("demographics 'birth_date' must be a date, not a datetime")
        if isinstance(birth, date):
            out["birthDate"] = birth.isoformat()
        else:
            try:
                out["birthDate"] = date.fromisoformat(str(birth)).isoformat()
            except ValueError:
                raise BundleError("demographics 'birth_date' is not an ISO date") from None
    return out


def _answer_text(link_id: str, answer: object) -> tuple[str, str]:
    if answer is None:
        return _UNANSWERED
    if isinstance(answer, bool):
        return _YES_NO[answer]
    if isinstance(answer, list | tuple):
        parts = [_answer_text(link_id, a) for a in answer]
        return "、".join(p[0] for p in parts), ", ".join(p[1] for p in parts)
    if isinstance(answer, str):
        item = _questionnaire_items().get(link_id)
        option = item.options.get(answer) if item else None
        if option is not None:
            return option.ja, option.en or answer
        return answer, answer
    return str(answer), str(answer)


def _rationale(flag: Mapping[str, Any]) -> str:
    """Readable text: the answers that made the flag fire, Japanese then English."""
    ja_lines = ["根拠となった回答:"]
    en_lines = ["Answers that fired this flag:"]
    for ev in flag["evidence"]:
        link_id = str(ev["linkId"])
        item = _questionnaire_items().get(link_id)
        q_ja = item.text.ja if item else link_id
        q_en = (item.text.en or link_id) if item else link_id
        a_ja, a_en = _answer_text(link_id, ev.get("answer"))
        ja_lines.append(f"- {q_ja} [{link_id}]: {a_ja}")
        en_lines.append(f"- {q_en} [{link_id}]: {a_en}")
    note = flag.get("note")
    if isinstance(note, Mapping):
        if note.get("ja"):
            ja_lines.append(str(note["ja"]))
        if note.get("en"):
            en_lines.append(str(note["en"]))
    return "\n".join(ja_lines + [""] + en_lines)


def _wells_text(wells: Mapping[str, Any]) -> str:
    score = wells["score"]
    likely = bool(wells.get("likely"))
    partial = bool(wells.get("exam_missing"))
    ja = f"Wells スコア(2段階): {score}、DVT{'の可能性が高い' if likely else 'の可能性は低い'}"
    en = f"Wells score (two-level): {score}, DVT {'likely' if likely else 'unlikely'}"
    if partial:
        ja += "(部分的: 診察項目が未入力のため、問診の回答のみから算出)"
        en += " (partial: examination items not entered; computed from the answers only)"
    return f"{ja}\n{en}"


def _advice_text(advice: object) -> str | None:
    if isinstance(advice, Mapping):
        parts = []
        for lang in ("ja", "en"):
            v = advice.get(lang)
            if isinstance(v, str) and v:
                parts.append(v)
            elif isinstance(v, list | tuple) and v:
                parts.append("\n".join(f"- {x}" for x in v))
        return "\n\n".join(parts) or None
    if isinstance(advice, str) and advice:
        return advice
    return None
