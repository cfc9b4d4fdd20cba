"""FHIR R4 QuestionnaireResponse <-> :class:`Answers` for the knee questionnaire.

Plain dicts, no FHIR model classes: the engine stays light and fast, and the models are
used at the boundaries and in tests to check what is built here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from intake.clinical.answers import (
    AnswerError,
    Answers,
    AnswerValue,
    check_codes,
    check_value,
    ordered,
    parse_simple_answers,
)
from intake.clinical.questionnaire import FormIndex, ItemSpec, default_form_index
from intake.constants import (
    CS_ANSWER,
    IDENTIFIER_SYSTEM_INTAKE,
    QUESTIONNAIRE_URL,
    QUESTIONNAIRE_VERSION,
)

QR_STATUSES = frozenset({"in-progress", "completed", "amended", "entered-in-error", "stopped"})
_VALUE_KEY = {"bool": "valueBoolean", "int": "valueInteger"}


def questionnaire_canonical() -> str:
    """``url|version`` of the knee Questionnaire, as written in every response."""
    return f"{QUESTIONNAIRE_URL}|{QUESTIONNAIRE_VERSION}"


def parse_questionnaire_response(qr: object) -> Answers:
    """Validate a QuestionnaireResponse (JSON dict) for the knee form and return Answers.

    Accepts items flat or nested in their groups. Rejects, with an AnswerError naming the
    item: another questionnaire or an unsupported version, unknown or repeated linkIds,
    a value of the wrong type, codes outside the item's options or from another system,
    several answers to a single-answer item, and a response marked entered-in-error.
    """
    if not isinstance(qr, Mapping):
        raise AnswerError(None, "a QuestionnaireResponse must be a JSON object")
    if qr.get("resourceType") != "QuestionnaireResponse":
        raise AnswerError(None, "resourceType must be QuestionnaireResponse")
    canonical = qr.get("questionnaire")
    if not isinstance(canonical, str):
        raise AnswerError(None, "QuestionnaireResponse.questionnaire is missing")
    url, bar, version = canonical.partition("|")
    if url != QUESTIONNAIRE_URL:
        raise AnswerError(None, "the response is for another questionnaire")
    if bar and version != QUESTIONNAIRE_VERSION:
        raise AnswerError(
            None, f"questionnaire version is not supported (supported: {QUESTIONNAIRE_VERSION})"
        )
    status = qr.get("status")
    if status not in QR_STATUSES:
        raise AnswerError(None, "QuestionnaireResponse.status is missing or invalid")
    if status == "entered-in-error":
        raise AnswerError(None, "the response is marked entered-in-error")
    index = default_form_index()
    values: dict[str, AnswerValue] = {}
    _walk(qr.get("item", []), index, values, set(), "QuestionnaireResponse")
    return ordered(index, values)


def _walk(
    items: object, index: FormIndex, values: dict[str, AnswerValue], seen: set[str], parent: str
) -> None:
    if not isinstance(items, list):
        raise AnswerError(None, f"item of {parent} must be a list")
    groups = index.groups
    questions = index.questions
    for item in items:
        link_id = item.get("linkId") if isinstance(item, dict) else None
        if not isinstance(link_id, str):
            raise AnswerError(None, f"an item of {parent} has no linkId")
        if link_id in seen:
            raise AnswerError(link_id, "appears more than once")
        seen.add(link_id)
        spec = questions.get(link_id)
        if spec is None:
            if link_id not in groups:
                raise AnswerError(link_id, "unknown linkId")
            if "answer" in item:
                raise AnswerError(link_id, "a group cannot have answers")
            _walk(item.get("item", []), index, values, seen, link_id)
            continue
        if "item" in item:
            raise AnswerError(link_id, "this question has no child items")
        answers = item.get("answer")
        if answers is None:
            continue
        if not isinstance(answers, list):
            raise AnswerError(link_id, "answer must be a list")
        value = _answer_value(spec, answers)
        if value is not None:
            values[link_id] = value


def _single_value(spec: ItemSpec, answer: object) -> tuple[str, object]:
    """The one value[x] of an answer (FHIR allows exactly one per answer)."""
    if isinstance(answer, dict) and len(answer) == 1:
        ((key, value),) = answer.items()
        if key.startswith("value"):
            return key, value
    if not isinstance(answer, Mapping):
        raise AnswerError(spec.link_id, "each answer must be an object")
    if "item" in answer:
        raise AnswerError(spec.link_id, "this question has no child items")
    keys = [k for k in answer if isinstance(k, str) and k.startswith("value")]
    if len(keys) != 1:
        raise AnswerError(spec.link_id, "each answer needs exactly one value[x]")
    return keys[0], answer[keys[0]]


def _answer_value(spec: ItemSpec, answers: list[Any]) -> AnswerValue | None:
    if not answers:
        return None
    kind = spec.kind
    if kind != "multi" and len(answers) > 1:
        raise AnswerError(spec.link_id, "only one answer is allowed")
    if kind == "bool" or kind == "int":
        key, value = _single_value(spec, answers[0])
        if key != _VALUE_KEY[kind]:
            raise AnswerError(spec.link_id, f"expected {_VALUE_KEY[kind]}, got {key}")
        return check_value(spec, value)
    codes: list[str] = []
    for answer in answers:
        key, coding = _single_value(spec, answer)
        if key != "valueCoding" or not isinstance(coding, Mapping):
            raise AnswerError(spec.link_id, f"expected valueCoding, got {key}")
        if coding.get("system") != CS_ANSWER:
            raise AnswerError(spec.link_id, f"coding system must be {CS_ANSWER}")
        code = coding.get("code")
        if not isinstance(code, str):
            raise AnswerError(spec.link_id, "the coding has no code")
        codes.append(code)
    if kind == "choice":
        return check_value(spec, codes[0])
    return check_codes(spec, codes)


def _fhir_answers(spec: ItemSpec, value: AnswerValue) -> list[dict[str, Any]]:
    if spec.kind in _VALUE_KEY:
        return [{_VALUE_KEY[spec.kind]: value}]
    codes = value if isinstance(value, tuple) else (value,)
    assert spec.option_text is not None  # choice items always have option texts
    return [
        {
            "valueCoding": {
                "system": CS_ANSWER,
                "code": code,
                "display": spec.option_text[str(code)].ja,
            }
        }
        for code in codes
    ]


def build_questionnaire_response(
    answers: Answers | Mapping[str, object],
    *,
    identifier: str | None = None,
    subject_reference: str | None = None,
    authored: str | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    """A FHIR R4 QuestionnaireResponse (JSON dict) for the knee form from simple answers.

    Items are nested in the same groups as the Questionnaire, in its order; empty groups
    are left out. ``identifier`` becomes the business identifier (system
    IDENTIFIER_SYSTEM_INTAKE) that makes a repeated delivery recognisable.
    """
    if status not in QR_STATUSES:
        raise ValueError(f"invalid QuestionnaireResponse status {status!r}")
    if not isinstance(answers, Answers):
        answers = parse_simple_answers(answers)
    index = default_form_index()

    def items_of(link_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for link_id in link_ids:
            group = index.groups.get(link_id)
            if group is not None:
                children = items_of(group.children)
                if children:
                    out.append({"linkId": link_id, "text": group.text.ja, "item": children})
                continue
            if link_id not in answers:
                continue
            spec = index.questions[link_id]
            out.append(
                {
                    "linkId": link_id,
                    "text": spec.text.ja,
                    "answer": _fhir_answers(spec, answers[link_id]),
                }
            )
        return out

    qr: dict[str, Any] = {"resourceType": "QuestionnaireResponse"}
    if identifier is not None:
        qr["identifier"] = {"system": IDENTIFIER_SYSTEM_INTAKE, "value": identifier}
    qr["questionnaire"] = questionnaire_canonical()
    qr["status"] = status
    if subject_reference is not None:
        qr["subject"] = {"reference": subject_reference}
    if authored is not None:
        qr["authored"] = authored
    items = items_of(index.top_level)
    if items:
        qr["item"] = items
    return qr
