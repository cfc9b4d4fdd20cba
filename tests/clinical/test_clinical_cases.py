"""The worked cases of /work/shared/clinical/cases: every expectation must hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from intake.clinical import (
    TriageResult,
    build_questionnaire_response,
    evaluate,
    parse_input,
    parse_questionnaire_response,
)
from support import CasesMissing, load_cases

CASES = load_cases()  # missing cases fail the collection: never a silent skip


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


def test_missing_cases_fail_the_tests(tmp_path: Path) -> None:
    """An empty or absent cases folder is an error (at collection), never a skip."""
    for folder in (tmp_path, tmp_path / "absent"):
        with pytest.raises(CasesMissing, match="worked clinical cases are missing"):
            load_cases(folder)


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
