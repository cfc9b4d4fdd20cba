"""The checks on a bundle's input: what :class:`~intake.fhir.inputs.BundleInput` must
hold before anything is built. Each failure is a :class:`~intake.fhir.inputs.BundleError`
whose message names fields and codes, never values a patient gave or staff typed."""

from __future__ import annotations

from datetime import datetime

from intake import constants
from intake.clinical.terminology import code_display, urgency_order
from intake.fhir.identifiers import SEARCH_SPECIAL
from intake.fhir.inputs import BundleError, BundleInput


def check_input(inp: BundleInput) -> None:
    """Raise :class:`BundleError` unless ``inp`` can make a valid bundle."""
    if not inp.business_id or any(ch.isspace() for ch in inp.business_id):
        raise BundleError("business_id must be a non-empty string without spaces")
    if any(ch in inp.business_id for ch in SEARCH_SPECIAL):
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
    # (The result's shape is its type's; its codes are checked against the CodeSystems.)
    urgency_code(inp.triage.urgency)
    for flag in inp.triage.flags:
        urgency_code(flag.urgency)
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
    red = {f.code for f in inp.triage.flags if f.red_flag}
    for code in review.withdrawn_flags:
        if code in red:
            raise BundleError(f"withdrawn flag {code!r} is a red flag of the current triage")
        if code_display(constants.CS_FLAG, code) is None:
            raise BundleError(f"withdrawn flag {code!r} is not a code of the flag CodeSystem")
    for code, at in review.acknowledged.items():
        if code not in red and code not in review.withdrawn_flags:
            raise BundleError(
                f"acknowledged flag {code!r} is neither a current red flag nor withdrawn"
            )
        if not _aware(at):
            raise BundleError(f"review.acknowledged[{code!r}] must be a timezone-aware datetime")
    if review.department is not None and (
        code_display(constants.CS_DEPARTMENT, review.department) is None
    ):
        raise BundleError(f"review.department {review.department!r} is not a department code")
    if review.department_reason is not None and not isinstance(review.department_reason, str):
        raise BundleError("review.department_reason must be text")


def urgency_code(code: object) -> str:
    """``code`` when it is a code of the urgency CodeSystem, else :class:`BundleError`."""
    if not isinstance(code, str) or code not in urgency_order():
        raise BundleError(f"unknown urgency code {code!r}")
    return code
