"""run_triage_cli: the `intake triage PATH...` contract of CASES.md."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from intake.clinical import build_questionnaire_response, evaluate, parse_simple_answers
from intake.clinical.cli import run_triage_cli
from support import case_files
from support.clinical import QUIET, answers_with


def run(paths: list[str], stdin: str = "") -> tuple[int, list[dict[str, Any]], str]:
    out = io.StringIO()
    status = run_triage_cli(paths, io.StringIO(stdin), out)
    text = out.getvalue()
    return status, [json.loads(line) for line in text.splitlines()], text


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content),
                    encoding="utf-8")
    return str(path)


def test_simple_and_qr_files(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {"answers": answers_with(chest_symptoms=True), "expect": 1})
    b = write(tmp_path, "b.json", build_questionnaire_response(answers_with(fever=True)))
    status, lines, text = run([a, b])
    assert status == 0
    assert [line["urgency"] for line in lines] == ["emergency", "same_day"]
    assert lines[0] == evaluate(parse_simple_answers(answers_with(chest_symptoms=True))).to_dict()
    assert text.count("\n") == 2
    assert "肺塞栓症" in text  # ensure_ascii=False: Japanese printed as is


def test_errors_are_reported_in_place_and_others_still_processed(tmp_path: Path) -> None:
    good = write(tmp_path, "good.json", {"answers": QUIET})
    paths = [
        good,
        write(tmp_path, "notjson.json", "{not json"),
        write(tmp_path, "shape.json", [1, 2]),
        write(tmp_path, "noanswers.json", {"questions": {}}),
        write(tmp_path, "unknown.json", {"answers": {"mystery": True}}),
        write(tmp_path, "type.json", {"answers": {"fever": "yes"}}),
        write(tmp_path, "code.json", {"answers": {"sex": "Z"}}),
        write(tmp_path, "range.json", {"answers": {"pain_nrs": 12}}),
        write(tmp_path, "otherq.json", {**build_questionnaire_response(QUIET),
                                        "questionnaire": "https://example.org/Questionnaire/x"}),
        str(tmp_path / "missing.json"),
        write(tmp_path, "latin1.json", "x"),
        good,
    ]
    (tmp_path / "latin1.json").write_bytes(b'{"answers": {"sex": "\xe9"}}')
    status, lines, _ = run(paths)
    assert status == 1
    assert len(lines) == len(paths)
    assert "ruleset" in lines[0] and "ruleset" in lines[-1]
    for line, path in zip(lines[1:-1], paths[1:-1], strict=True):
        assert set(line) == {"error", "path"}
        assert line["path"] == path
        assert line["error"]
    errors = [line["error"] for line in lines[1:-1]]
    assert "not valid JSON" in errors[0]
    assert "mystery" in errors[3]
    assert "fever" in errors[4]
    assert "sex" in errors[5]
    assert "pain_nrs" in errors[6]
    assert "another questionnaire" in errors[7]
    assert "cannot read file" in errors[8]
    assert "cannot read file" in errors[9]


def test_stdin_json_lines() -> None:
    lines_in = [
        json.dumps({"answers": answers_with(foot_ischaemia=True)}),
        "",
        "not json",
        json.dumps(build_questionnaire_response(QUIET)),
        json.dumps({"answers": {"fever": 1}}),
    ]
    status, lines, _ = run(["-"], "\n".join(lines_in) + "\n")
    assert status == 1
    assert len(lines) == 4  # the blank line is not an input
    assert lines[0]["urgency"] == "emergency"
    assert lines[1] == {"error": lines[1]["error"], "path": "-:3"}
    assert lines[2]["urgency"] == "routine"
    assert lines[3]["path"] == "-:5" and "fever" in lines[3]["error"]


def test_files_and_stdin_mixed_in_order(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {"answers": answers_with(tense_calf=True)})
    status, lines, _ = run([a, "-", a], json.dumps({"answers": QUIET}) + "\n")
    assert status == 0
    assert [line["urgency"] for line in lines] == ["emergency", "routine", "emergency"]


def test_no_error_exit_zero_and_deterministic(tmp_path: Path) -> None:
    a = write(tmp_path, "a.json", {"answers": QUIET})
    first = run([a, a])
    assert first[0] == 0
    assert first == run([a, a])


def test_all_cases_through_cli() -> None:
    files = [str(p) for p in case_files()]
    status, lines, _ = run(files)
    assert status == 0
    for path, line in zip(files, lines, strict=True):
        expect = json.loads(Path(path).read_text(encoding="utf-8"))["expect"]
        got = {f["code"] for f in line["flags"]}
        assert set(expect["flags"]) <= got
        assert not set(expect["not_flags"]) & got
        assert (line["urgency"], line["department"], line["red_flag"]) == (
            expect["urgency"], expect["department"], expect["red_flag"])
