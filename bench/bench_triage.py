"""Triage benchmark (run on demand; not part of the tests).

    python bench/bench_triage.py [--n 10000] [--cli-n 1000] [--seed 1]

Prints:
1. triage evaluations per second on one core over N random answer sets generated from
   the Questionnaire's items with a seeded generator: evaluate only, parse (simple
   format) + evaluate, and parse (QuestionnaireResponse) + evaluate;
2. the wall time of one ``intake triage`` call over CLI_N input files (the installed
   ``intake`` command when it is on PATH and ``intake.cli:main`` imports, otherwise
   ``run_triage_cli`` in a ``python -c`` subprocess; the output says which).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from intake.clinical import (
    build_questionnaire_response,
    evaluate,
    load_ruleset,
    parse_questionnaire_response,
    parse_simple_answers,
)
from intake.clinical.questionnaire import ItemSpec, default_form_index

ANSWER_RATE = 0.85  # share of items answered in a random set (the rest are omitted)


def random_value(spec: ItemSpec, rnd: random.Random) -> Any:
    if spec.kind == "bool":
        return rnd.random() < 0.3  # mostly "no", as on a real form
    if spec.kind == "int":
        assert spec.min_value is not None and spec.max_value is not None
        return rnd.randint(spec.min_value, spec.max_value)
    if spec.kind == "choice":
        return rnd.choice(spec.options)
    return rnd.sample(spec.options, rnd.randint(1, min(3, len(spec.options))))


def random_answer_sets(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    items = list(default_form_index().questions.values())
    return [
        {s.link_id: random_value(s, rnd) for s in items if rnd.random() < ANSWER_RATE}
        for _ in range(n)
    ]


def pin_to_one_core() -> str:
    if hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    return "not pinned (no sched_setaffinity)"


REPEATS = 3


def rate(label: str, n: int, fn: Callable[[], None]) -> None:
    # Best of a few runs, as timeit does: other processes only ever make a run slower.
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"  {label:<42} {n / best:>10,.0f} /s   ({best * 1e6 / n:,.1f} µs each; "
          f"best of {REPEATS}, worst {n / max(times):,.0f} /s)")


def bench_engine(n: int, seed: int) -> None:
    rs = load_ruleset()
    raw = random_answer_sets(n, seed)
    parsed = [parse_simple_answers(d) for d in raw]
    qrs = [build_questionnaire_response(a) for a in parsed]
    for a in parsed[:200]:  # warm-up
        evaluate(a, rs)
    print(f"1. triage evaluations, {n:,} random answer sets (seed {seed}), {pin_to_one_core()}")

    def evaluate_only() -> None:
        for a in parsed:
            evaluate(a, rs)

    def parse_and_evaluate() -> None:
        for d in raw:
            evaluate(parse_simple_answers(d), rs)

    def qr_parse_and_evaluate() -> None:
        for q in qrs:
            evaluate(parse_questionnaire_response(q), rs)

    def full_json_line() -> None:
        for d in raw:
            json.dumps(evaluate(parse_simple_answers(d), rs).to_dict(), ensure_ascii=False)

    rate("evaluate only", n, evaluate_only)
    rate("parse (simple format) + evaluate", n, parse_and_evaluate)
    rate("parse (QuestionnaireResponse) + evaluate", n, qr_parse_and_evaluate)
    rate("parse + evaluate + JSON line", n, full_json_line)


def cli_command() -> tuple[list[str], str]:
    exe = shutil.which("intake")
    if exe:
        probe = subprocess.run(
            [sys.executable, "-c", "from intake.cli import main"], capture_output=True
        )
        if probe.returncode == 0:
            return [exe, "triage"], f"installed command: {exe} triage"
    code = (
        "import sys; from intake.clinical.cli import run_triage_cli; "
        "sys.exit(run_triage_cli(sys.argv[1:], sys.stdin, sys.stdout))"
    )
    how = "fallback: python -c run_triage_cli (intake CLI unavailable)"
    return [sys.executable, "-c", code], how


def bench_cli(n: int, seed: int) -> None:
    raw = random_answer_sets(n, seed + 1)
    with tempfile.TemporaryDirectory(prefix="bench-triage-") as tmp:
        paths = []
        for i, answers in enumerate(raw):
            path = Path(tmp) / f"in-{i:05d}.json"
            doc: dict[str, Any] = (
                build_questionnaire_response(answers) if i % 2 else {"answers": answers}
            )
            path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
            paths.append(str(path))
        argv, how = cli_command()
        start = time.perf_counter()
        proc = subprocess.run(argv + paths, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    errors = sum(1 for line in lines if '"error"' in line[:10])
    print(f"2. one `intake triage` call over {n:,} files (half simple format, half QR)")
    print(f"  {how}")
    print(f"  wall time {elapsed:.2f} s, exit status {proc.returncode}, "
          f"{len(lines):,} lines, {errors} errors")
    if proc.returncode not in (0, 1) or len(lines) != n:
        print(f"  stderr: {proc.stderr[-500:]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=10_000, help="answer sets for the engine bench")
    ap.add_argument("--cli-n", type=int, default=1_000, help="input files for the CLI bench")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(f"rule set {load_ruleset().key}, Python {sys.version.split()[0]}")
    bench_engine(args.n, args.seed)
    bench_cli(args.cli_n, args.seed)


if __name__ == "__main__":
    main()
