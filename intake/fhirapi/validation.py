"""Checking an inbound QuestionnaireResponse before anything is stored.

Three layers, each answering with an OperationOutcome that names the element:

1. **JSON and structure** (400): the body parses, is not absurdly nested, is a
   QuestionnaireResponse, and validates against the R4 model (``fhir.resources.R4B``);
   ``status`` is a code of its value set. Elements the server would have to
   understand to read the response safely (``modifierExtension``, ``implicitRules``)
   are refused (422 ``not-supported``) rather than ignored.
2. **Clinical** (422): :func:`intake.clinical.parse_questionnaire_response`, the same
   parser the workers and the CLI use, checks the questionnaire, every linkId, value
   type, range and answer code. It reads the raw JSON, not the model's dump, because
   the model coerces (``valueInteger: true`` would silently become 1).
3. **Business rules** (422): the status is final (``completed``, ``amended`` or
   ``stopped``), and the subject is a patient named by the clinic's record number.

Nothing here touches the database; :mod:`intake.fhirapi.services` stores what passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError

from intake import pipeline
from intake.api.schemas import RECORD_NUMBER
from intake.clinical import AnswerError, Answers, parse_questionnaire_response
from intake.constants import QUESTIONNAIRE_URL
from intake.fhirapi.outcome import FhirError, Issue

QR = "QuestionnaireResponse"
# Final states a response is triaged in. ``in-progress`` is refused: this API has no
# update, so the answers still to come could never reach the intake (a silent loss).
# ``stopped`` (abandoned, no update coming) is triaged as it is: unanswered red-flag
# screening items make it INCOMPLETE_SCREENING (same day), so a partial form is safe.
ACCEPTED_STATUSES = ("completed", "amended", "stopped")
QR_STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")
MAX_DEPTH = 64  # the knee response nests about 8 levels; deeper is not a response
MAX_ISSUES = 20
_ESCAPED = {"\\", "|", ",", "$"}
_RN_PATTERN = RECORD_NUMBER.regex.pattern  # the JSON API's rule, defined once
assert isinstance(_RN_PATTERN, str)
_RECORD_NUMBER = re.compile(_RN_PATTERN)


@dataclass(frozen=True)
class Token:
    """A FHIR token search value ``system|value`` (system None: any system)."""

    system: str | None
    value: str


@dataclass(frozen=True)
class InboundResponse:
    """A QuestionnaireResponse that passed every check, reduced to what is stored."""

    answers: Answers
    status: str
    authored: str | None
    record_number: str
    identifier: Token | None
    fingerprint: str


def load_json(raw: bytes) -> Any:
    """Parse a request body; ValueError when it is not JSON or nests deeper than any
    resource (the parser would otherwise hit Python's recursion limit: a 500)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("the body is not valid JSON") from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise ValueError(f"the JSON nests deeper than {MAX_DEPTH} levels")
    return data


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or 400 with an OperationOutcome."""
    try:
        return load_json(raw)
    except ValueError as exc:
        raise FhirError(400, Issue("structure", str(exc))) from None


def _depth_exceeds(data: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def validate_questionnaire_response(body: Any, record_number_system: str) -> InboundResponse:
    """All three layers of checks; raise :class:`FhirError` at the first that fails."""
    check_resource(body)
    status = body["status"]
    if status not in ACCEPTED_STATUSES:
        reason = ("an in-progress response cannot be completed later through this API; "
                  "send it when it is completed" if status == "in-progress"
                  else "a response entered in error is not triaged")
        raise FhirError(422, Issue("business-rule", f"status {status} is not accepted: "
                                   f"{reason}", f"{QR}.status"))
    answers = parse_answers(body)
    record_number = _record_number(body.get("subject"), record_number_system)
    identifier = _identifier(body.get("identifier"))
    authored = body.get("authored")
    fingerprint = pipeline.request_fingerprint({
        "answers": answers.to_simple(), "record_number": record_number, "status": status})
    return InboundResponse(answers, status, authored if isinstance(authored, str) else None,
                           record_number, identifier, fingerprint)


def check_resource(body: Any) -> None:
    """A QuestionnaireResponse that is valid R4, with a valid status and nothing that
    changes its meaning unseen (400, or 422 for modifiers)."""
    if not isinstance(body, dict):
        raise FhirError(400, Issue("structure", "the body must be a JSON object (a FHIR "
                                                "resource)"))
    resource_type = body.get("resourceType")
    if resource_type != QR:
        what = "has no resourceType" if resource_type is None else "is another resource type"
        raise FhirError(400, Issue("invalid", f"the resource {what}; a QuestionnaireResponse "
                                              "is expected"))
    _check_structure(body)
    _refuse_modifiers(body)
    if body.get("status") not in QR_STATUSES:
        raise FhirError(400, Issue("code-invalid", "status must be one of "
                                   + ", ".join(QR_STATUSES), f"{QR}.status"))


def parse_answers(body: dict[str, Any]) -> Answers:
    """The answers, checked by the clinical parser against the knee questionnaire
    (the same parser as the workers'); 422 naming the item otherwise."""
    canonical = body.get("questionnaire")
    if not isinstance(canonical, str) or canonical.partition("|")[0] != QUESTIONNAIRE_URL:
        raise FhirError(422, Issue(
            "business-rule" if isinstance(canonical, str) else "required",
            f"questionnaire must be {QUESTIONNAIRE_URL} (this server triages that "
            "questionnaire only)", f"{QR}.questionnaire"))
    try:
        return parse_questionnaire_response(body)
    except AnswerError as exc:
        raise FhirError(422, _answer_issue(exc)) from None


# --- structure --------------------------------------------------------------


def _check_structure(body: dict[str, Any]) -> None:
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    try:
        QuestionnaireResponse.model_validate(body)
    except ValidationError as exc:
        issues = [_structure_issue(err) for err in exc.errors()[:MAX_ISSUES]]
        raise FhirError(400, *issues) from None
    except RecursionError:  # guarded by MAX_DEPTH; kept so it can never become a 500
        raise FhirError(400, Issue("structure", "the resource nests too deeply")) from None


_STRUCTURE_TYPES = frozenset({"extra_forbidden", "dict_type", "list_type", "model_type",
                              "model_attributes_type", "model_validation_format"})


def _structure_issue(err: Mapping[str, Any]) -> Issue:
    kind = str(err.get("type", ""))
    if kind in ("missing", "model_field_validation.missing"):
        code = "required"
    elif kind in _STRUCTURE_TYPES:
        code = "structure"
    else:
        code = "value"
    message = " ".join(str(err.get("msg", "invalid")).split()).removeprefix("Value error, ")
    given = err.get("input")
    if isinstance(given, str) and len(given) >= 3 and given in message:
        message = message.replace(given, "(the value)")  # never echo what was sent
    return Issue(code, message[:300], _fhirpath(err.get("loc", ())))


def _fhirpath(loc: Any) -> str:
    """A pydantic error location as a FHIRPath expression (``item[0].answer[1]``)."""
    path = QR
    for part in loc if isinstance(loc, tuple | list) else ():
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("resource_type", "root", "__root__"):
            path += f".{part}"
    return path


def _refuse_modifiers(body: Mapping[str, Any]) -> None:
    """modifierExtension and implicitRules change the meaning of what they sit on;
    FHIR requires a system that does not understand them to refuse the resource."""
    stack: list[tuple[Any, str]] = [(body, QR)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key in ("modifierExtension", "implicitRules"):
                if key in node:
                    raise FhirError(422, Issue(
                        "not-supported", f"{key} is not supported by this server: the "
                        "response cannot be read safely with it", f"{path}.{key}"))
            stack.extend((v, f"{path}.{k}") for k, v in node.items() if k != "contained")
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node))


# --- clinical ---------------------------------------------------------------


def _answer_issue(exc: AnswerError) -> Issue:
    text = str(exc)
    if exc.link_id is None:
        return Issue("business-rule", text, QR)
    if "code" in text:
        code = "code-invalid"
    elif any(s in text for s in ("unknown linkId", "more than once", "child items",
                                 "group cannot")):
        code = "structure"
    else:
        code = "value"
    return Issue(code, text, f"{QR}.repeat(item).where(linkId={_fhirpath_string(exc.link_id)})")


def _fhirpath_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped[:64]}'"


# --- subject and identifier -----------------------------------------------


def _record_number(subject: Any, system: str) -> str:
    """The clinic record number of the patient the response is about.

    Accepted: the conditional reference ``Patient?identifier=<system>|<number>`` or a
    logical reference ``subject.identifier`` with the clinic's record-number system
    (both may be given if they agree). Anything else is refused: an intake that cannot
    be tied to a patient of the clinic could raise an emergency nobody can act on, and
    the record system would receive it without a patient.
    """
    where = f"{QR}.subject"
    how = (f"identify the patient by the clinic record number: subject.reference "
           f"Patient?identifier={system}|<number>, or subject.identifier with that system")
    if not isinstance(subject, Mapping):
        raise FhirError(422, Issue("required", f"subject is required; {how}", where))
    if subject.get("type") not in (None, "Patient"):
        raise FhirError(422, Issue("business-rule", f"the subject must be a Patient; {how}",
                                   f"{where}.type"))
    found: list[str] = []
    reference = subject.get("reference")
    if reference is not None:
        token = _conditional_patient_reference(reference)
        if token is None or token.system != system:
            raise FhirError(422, Issue("business-rule", f"unsupported subject.reference; {how}",
                                       f"{where}.reference"))
        found.append(token.value)
    identifier = subject.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, Mapping) or identifier.get("system") != system:
            raise FhirError(422, Issue("business-rule", "subject.identifier must use the "
                                       f"record-number system {system}; {how}",
                                       f"{where}.identifier"))
        value = identifier.get("value")
        if not isinstance(value, str):
            raise FhirError(422, Issue("required", "subject.identifier.value is missing",
                                       f"{where}.identifier.value"))
        found.append(value)
    if not found:
        raise FhirError(422, Issue("required", f"the subject names no patient; {how}", where))
    if len(set(found)) > 1:
        raise FhirError(422, Issue("business-rule", "subject.reference and subject.identifier "
                                   "name different patients", where))
    number = found[0]
    if not _RECORD_NUMBER.match(number):
        raise FhirError(422, Issue("value", "the record number must be 1 to 32 letters, "
                                   "digits or hyphens", where))
    return number


def _conditional_patient_reference(reference: Any) -> Token | None:
    if not isinstance(reference, str) or not reference.startswith("Patient?"):
        return None
    try:
        pairs = parse_qsl(reference.removeprefix("Patient?"), keep_blank_values=True,
                          strict_parsing=True)
    except ValueError:
        return None
    if len(pairs) != 1 or pairs[0][0] != "identifier":
        return None
    try:
        return parse_token(pairs[0][1], require_system=True)
    except ValueError:
        return None


def _identifier(identifier: Any) -> Token | None:
    """The response's own business identifier (used for idempotency), if it has a value."""
    if not isinstance(identifier, Mapping) or not isinstance(identifier.get("value"), str):
        return None
    system = identifier.get("system")
    return Token(system if isinstance(system, str) else None, identifier["value"])


def parse_token(text: str, *, require_system: bool = False) -> Token:
    """``system|value`` of a token search parameter, with FHIR's backslash escapes.

    Raise ValueError (a message without the value) for what this server does not
    support: several values (``a,b``) or a missing system when one is required.
    """
    system: str | None = None
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPED:
            current.append(text[i + 1])
            i += 2
            continue
        if ch == ",":
            raise ValueError("several values (a comma) are not supported")
        if ch == "|" and system is None:
            system = "".join(current)
            current = []
        else:
            current.append(ch)
        i += 1
    value = "".join(current)
    if require_system and not system:
        raise ValueError("give the value as <system>|<value>")
    if not value:
        raise ValueError("the value is empty")
    return Token(system if system else None, value)


def parse_if_none_exist(header: str) -> Token:
    """The condition of a conditional create: only ``identifier=<system>|<value>``."""
    try:
        pairs = parse_qsl(header.strip(), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        pairs = []
    if len(pairs) != 1 or pairs[0][0] != "identifier":
        raise FhirError(400, Issue("not-supported", "If-None-Exist supports only "
                                   "identifier=<system>|<value>", "If-None-Exist"))
    try:
        return parse_token(pairs[0][1], require_system=True)
    except ValueError as exc:
        raise FhirError(400, Issue("invalid", f"If-None-Exist: {exc}", "If-None-Exist")) from None
