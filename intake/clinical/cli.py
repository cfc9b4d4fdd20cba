"""``intake triage PATH...``: triage JSON files or JSON Lines (CASES.md contract).

Pure glue over the engine, with the streams passed in, so the click command, tests and
benchmarks all drive exactly the same code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from intake.clinical.answers import AnswerError
from intake.clinical.engine import evaluate
from intake.clinical.inputs import parse_input
from intake.clinical.ruleset import load_ruleset

STDIN = "-"


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _triage_text(text: str) -> dict[str, Any]:
    """Result dict for one JSON document; raises ValueError with a readable message."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValueError(f"not valid JSON: {exc.msg} ({where})") from exc
    except RecursionError as exc:
        raise ValueError("not valid JSON: nested too deeply") from exc
    try:
        answers = parse_input(obj)
    except AnswerError as exc:
        raise ValueError(str(exc)) from exc
    return evaluate(answers, load_ruleset()).to_dict()


def _inputs(paths: Sequence[str], stdin: TextIO) -> Iterator[tuple[str, str | None, str]]:
    """(path label, document text or None, error) for every input, in order."""
    for path in paths:
        if path == STDIN:
            for number, line in enumerate(stdin, start=1):
                if line.strip():
                    yield f"{STDIN}:{number}", line, ""
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                yield path, handle.read(), ""
        except UnicodeDecodeError:
            yield path, None, "cannot read file: not UTF-8 text"
        except OSError as exc:
            yield path, None, f"cannot read file: {exc.strerror or exc.__class__.__name__}"


def run_triage_cli(paths: Sequence[str], stdin: TextIO, stdout: TextIO) -> int:
    """Triage each PATH (a JSON file; ``-`` = JSON Lines on stdin) and print JSON Lines.

    One output line per input, in input order: the result, or
    ``{"error": ..., "path": ...}`` for an input that cannot be read (for stdin lines the
    path is ``-:LINE``). Every other input is still processed. Returns 1 when any line
    was an error, else 0. Blank stdin lines are skipped.
    """
    load_ruleset()  # fail loudly before any output if the rule set itself is broken
    status = 0
    for label, text, error in _inputs(paths, stdin):
        if text is not None:
            try:
                stdout.write(_dump(_triage_text(text)) + "\n")
                continue
            except ValueError as exc:
                error = str(exc)
        status = 1
        stdout.write(_dump({"error": error, "path": label}) + "\n")
    stdout.flush()
    return status
