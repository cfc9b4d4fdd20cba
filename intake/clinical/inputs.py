"""One entry point for every accepted input shape (CLI files, API bodies, JSON Lines)."""

from __future__ import annotations

from collections.abc import Mapping

from intake.clinical.answers import AnswerError, Answers, parse_simple_answers
from intake.clinical.fhir_qr import parse_questionnaire_response


def parse_input(obj: object) -> Answers:
    """Answers from a QuestionnaireResponse or from ``{"answers": {...}}``.

    A dict whose ``resourceType`` is QuestionnaireResponse is read as FHIR; any other dict
    must carry an ``answers`` key in the simple format (other keys, such as a test case's
    ``expect``, are ignored). Anything else is an AnswerError.
    """
    if not isinstance(obj, Mapping):
        raise AnswerError(None, "expected a JSON object")
    resource_type = obj.get("resourceType")
    if resource_type == "QuestionnaireResponse":
        return parse_questionnaire_response(obj)
    if resource_type is not None:
        raise AnswerError(None, "only a QuestionnaireResponse can be triaged")
    if "answers" not in obj:
        raise AnswerError(
            None, "expected a QuestionnaireResponse or an object with an 'answers' key"
        )
    return parse_simple_answers(obj["answers"])
