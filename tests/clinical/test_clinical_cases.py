"""The worked cases of /work/shared/clinical/cases: every expectation must hold."""

from __future__ import annotations

from typing import Any

import pytest
from clinical_helpers import CASES_DIR, load_cases

from intake.clinical import (
    TriageResult,
    build_questionnaire_response,
    evaluate,
    parse_input,
    parse_questionnaire_response,
)

pytestmark = pytest.mark.skipif(
    not CASES_DIR.is_dir(), reason=f"clinical cases folder {CASES_DIR} not present"
)
CASES = load_cases() if CASES_DIR.is_dir() else []


def check(case: dict[str, Any], result: TriageResult) -> None:
    expect = case["expect"]
    fired = [f.code for f in result.flags]
    for code in expect["flags"]:
        assert code in fired, f"{case['id']}: {code} should fire; fired {fired}"
    for code in expect["not_flags"]:
        assert code not in fired, f"{case['id']}: {code} must not fire"
    assert result.urgency == expect["urgency"], case["id"]
    assert result.department == expect["department"], case["id"]
    assert result.red_flag is expect["red_flag"], case["id"]


def test_all_cases_found() -> None:
    assert len(CASES) >= 16


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_simple_format(case: dict[str, Any]) -> None:
    check(case, evaluate(parse_input(case)))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_as_questionnaire_response(case: dict[str, Any]) -> None:
    qr = build_questionnaire_response(parse_input(case), identifier=case["id"])
    answers = parse_questionnaire_response(qr)
    check(case, evaluate(answers))
    assert evaluate(answers) == evaluate(parse_input(case))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_result_shape(case: dict[str, Any]) -> None:
    d = evaluate(parse_input(case)).to_dict()
    assert list(d)[:7] == [
        "ruleset", "urgency", "department", "departments", "red_flag", "wells", "flags"
    ]
    assert d["ruleset"] == "posterior-knee@1.0.0"
    assert set(d["wells"]) == {"score", "likely", "exam_missing"}
    for flag in d["flags"]:
        assert {"code", "urgency", "department", "red_flag", "evidence"} <= set(flag)
        assert flag["evidence"], flag["code"]
        for item in flag["evidence"]:
            assert set(item) == {"linkId", "answer"}
    assert d["department"] == d["departments"][0]
    assert ("advice" in d) == (d["urgency"] == "self_care")
