"""Clinical core: the knee questionnaire, answer parsing and the triage rules engine.

Framework-free on purpose (stdlib and PyYAML only): the web app, the API, the Celery
workers and the CLI all call these functions, so there is one rules engine.

Typical use::

    answers = parse_input(json_object)        # QuestionnaireResponse or {"answers": ...}
    result = evaluate(answers)                # TriageResult
    result.to_dict()                          # the `intake triage` JSON line
"""

from __future__ import annotations

from intake.clinical.answers import AnswerError, Answers, AnswerValue, parse_simple_answers
from intake.clinical.cli import run_triage_cli
from intake.clinical.conditions import RuleSetError
from intake.clinical.engine import evaluate
from intake.clinical.fhir_qr import (
    build_questionnaire_response,
    parse_questionnaire_response,
    questionnaire_canonical,
)
from intake.clinical.inputs import parse_input
from intake.clinical.questionnaire import (
    Text,
    load_questionnaire,
    screening_link_ids,
    staff_only_link_ids,
)
from intake.clinical.result import Advice, EvidenceItem, FlagResult, TriageResult, WellsResult
from intake.clinical.ruleset import RuleSet, load_ruleset, load_ruleset_file

__all__ = [
    "Advice",
    "AnswerError",
    "AnswerValue",
    "Answers",
    "EvidenceItem",
    "FlagResult",
    "RuleSet",
    "RuleSetError",
    "Text",
    "TriageResult",
    "WellsResult",
    "build_questionnaire_response",
    "evaluate",
    "load_questionnaire",
    "load_ruleset",
    "load_ruleset_file",
    "parse_input",
    "parse_questionnaire_response",
    "parse_simple_answers",
    "questionnaire_canonical",
    "run_triage_cli",
    "screening_link_ids",
    "staff_only_link_ids",
]
