"""The bundle builder: each entry of one intake's transaction Bundle, as described in
:mod:`intake.fhir.bundle` (first delivery and write-back). Every resource is checked
with its ``fhir.resources.R4B`` model; displays come from the plugin's CodeSystems
(Japanese, with the English as a translation extension)."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Final

from fhir.resources.R4B.flag import Flag
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.provenance import Provenance
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from intake import constants
from intake.clinical.terminology import code_display
from intake.fhir.checks import urgency_code
from intake.fhir.identifiers import full_url, identifier_query, intake_identifier
from intake.fhir.inputs import BundleError, BundleInput, JsonDict, PatientDemographics
from intake.fhir.narrative import advice_text, rationale, wells_text

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

_DEVICE_ID = "plugin"
_DEVICE_NAME = "knee-intake triage plugin"

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


def _coding(system: str, code: str, label: Mapping[str, Any] | None = None) -> JsonDict:
    """A Coding with the Japanese display and the English one as a translation."""
    text: tuple[str, Any] | None = (
        (str(label["ja"]), label.get("en")) if label and label.get("ja") else None
    )
    text = text or code_display(system, code)
    coding: JsonDict = {"system": system, "code": code}
    if text is not None:
        ja, en = text
        coding["display"] = ja
        if en:
            coding["_display"] = _translation_ext(en)
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


class Builder:
    """Builds the entries of one bundle; holds the references between them."""

    def __init__(self, inp: BundleInput) -> None:
        self.inp = inp
        # The result in its JSON form (the CASES.md shape), which the resources quote.
        self.triage = inp.triage.to_dict()
        self.urgency = urgency_code(inp.triage.urgency)
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
            assert inp.record_number_system is not None  # checked in check_input
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
        mitigation = advice_text(self.triage.get("advice"))
        if mitigation:
            resource["mitigation"] = mitigation
        wells = self.triage.get("wells")
        if isinstance(wells, Mapping) and "score" in wells:
            resource["note"] = [{"text": wells_text(wells)}]
        return self.owned_entry("risk", self.validated(RiskAssessment, resource))

    def _prediction(self, flag: Mapping[str, Any]) -> JsonDict:
        urgency = urgency_code(flag["urgency"])
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
            "rationale": rationale(flag),
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
