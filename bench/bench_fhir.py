"""Record-system benchmark (run on demand; not part of the tests).

    python bench/bench_fhir.py [--builds 1000] [--deliveries 200] [--threads 4]

Prints:
1. bundle build time per intake (mean / p50 / p99 over BUILDS builds, cycling
   through the shared clinical cases, walk-in patient) and bundle size in bytes
   (min / mean / max over the cases, compact UTF-8 JSON as sent);
2. deliveries per second to the local test FHIR server (tests/fhir_server:
   Medplum's engine with validation of every resource against R4 and the
   plugin's profiles), started the same way the tests start it: DELIVERIES
   distinct intakes sent one after another, then DELIVERIES more with THREADS
   threads (one HTTP session each), then the first batch again (re-sends that
   the conditional creates turn into no-ops).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests

_TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(_TESTS))  # the tests' support package

from intake.delivery.auth import NoAuth  # noqa: E402
from intake.delivery.base import Outcome  # noqa: E402
from intake.delivery.fhir_rest import FhirRestAdapter  # noqa: E402
from intake.fhir.bundle import build_transaction_bundle, bundle_json  # noqa: E402
from support.fhir import cases_with_results, make_input, start_server  # noqa: E402


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bench_build(cases: list[dict[str, Any]], n: int) -> None:
    inputs = [make_input(c, business_id=f"KI-BENCH-{c['id']}") for c in cases]
    for inp in inputs:  # warm the caches (CodeSystem displays, question texts)
        build_transaction_bundle(inp)
    times = []
    for i in range(n):
        inp = inputs[i % len(inputs)]
        t0 = time.perf_counter()
        build_transaction_bundle(inp)
        times.append((time.perf_counter() - t0) * 1000)
    sizes = [len(bundle_json(build_transaction_bundle(inp))) for inp in inputs]
    entries = [len(build_transaction_bundle(inp)["entry"]) for inp in inputs]
    print(f"bundle build ({n} builds over {len(inputs)} cases):")
    print(
        f"  mean {statistics.fmean(times):.2f} ms  p50 {percentile(times, 50):.2f} ms  "
        f"p99 {percentile(times, 99):.2f} ms"
    )
    print(
        f"bundle size: min {min(sizes)} B  mean {statistics.fmean(sizes):.0f} B  "
        f"max {max(sizes)} B  ({min(entries)}-{max(entries)} entries)"
    )


def deliver_all(base_url: str, bundles: list[dict[str, Any]], threads: int) -> tuple[float, int]:
    """Deliver every bundle; returns (seconds, failures)."""
    chunks = [bundles[i::threads] for i in range(threads)]
    failures = [0] * threads

    def worker(k: int) -> None:
        with requests.Session() as session:
            adapter = FhirRestAdapter(base_url, NoAuth(), session, timeout=30)
            for b in chunks[k]:
                bid = b["entry"][1]["resource"]["identifier"]["value"]
                result = adapter.deliver(b, business_id=bid, after_ambiguous=False)
                if result.outcome is not Outcome.DELIVERED:
                    failures[k] += 1

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - t0, sum(failures)


def bench_deliver(cases: list[dict[str, Any]], n: int, threads: int) -> None:
    def batch(prefix: str) -> list[dict[str, Any]]:
        return [
            build_transaction_bundle(
                make_input(cases[i % len(cases)], business_id=f"KI-{prefix}-{i:05d}")
            )
            for i in range(n)
        ]

    server = start_server()
    try:
        sequential, concurrent = batch("SEQ"), batch("PAR")
        for label, bundles, k in (
            ("sequential, new intakes", sequential, 1),
            (f"{threads} threads, new intakes", concurrent, threads),
            ("sequential, re-sends", sequential, 1),
        ):
            seconds, failures = deliver_all(server.base_url, bundles, k)
            print(
                f"deliveries ({label}): {n} in {seconds:.2f} s = {n / seconds:.1f}/s"
                f"{f'  FAILURES {failures}' if failures else ''}"
            )
        print(f"server holds {server.count('QuestionnaireResponse')} QuestionnaireResponses")
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--builds", type=int, default=1000)
    ap.add_argument("--deliveries", type=int, default=200)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    cases = cases_with_results()
    bench_build(cases, args.builds)
    bench_deliver(cases, args.deliveries, args.threads)


if __name__ == "__main__":
    main()
