"""The two shapes of "each intake's newest triage record" on the queries that pick a few
intakes first (run on demand; not part of the tests).

    python bench/bench_desk_query.py --database-url postgresql://... [--intakes 100000]

Seeds ``--intakes`` triaged intakes over 30 days (as ``bench_review.py`` does) into the
given, empty database, then times, over ``--n`` runs each, the desk's query (the last
24 hours, newest 200) and the FHIR API's RiskAssessment search by record number, once
joined through the correlated ``revision = max(...)`` (``queries.newest_revision``, what
they use) and once through the anti-join subquery (``queries.newest_records``, what the
worklist uses to filter and sort the whole history). Prints p50 and p99 in ms.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]

from bench_review import seed  # noqa: E402
from sqlalchemy import select, text  # noqa: E402

from intake.desk.services import RECENT  # noqa: E402
from intake.storage import queries  # noqa: E402
from intake.storage.db import session_factory  # noqa: E402
from intake.storage.migrate import upgrade  # noqa: E402
from intake.storage.models import Intake, TriageRecord, utcnow  # noqa: E402


def desk(shape: str) -> Any:
    now = utcnow()
    if shape == "correlated":
        query = (select(Intake.business_id, Intake.received_at, TriageRecord.urgency,
                        Intake.status)
                 .outerjoin(TriageRecord, queries.is_newest_record_of_intake()))
    else:
        newest = queries.newest_records()
        query = (select(Intake.business_id, Intake.received_at, newest.c.urgency,
                        Intake.status)
                 .outerjoin(newest, newest.c.intake_id == Intake.id))
    return (query.where(Intake.received_at >= now - RECENT)
            .order_by(Intake.received_at.desc()).limit(200))


def search(shape: str, record_number: str) -> Any:
    if shape == "correlated":
        query = queries.with_newest_record()
    else:
        newest = queries.newest_records()
        query = (select(Intake, TriageRecord)
                 .join(newest, newest.c.intake_id == Intake.id)
                 .join(TriageRecord, TriageRecord.id == newest.c.id))
    return (query.where(Intake.patient_record_number == record_number)
            .order_by(TriageRecord.created_at.desc(), Intake.id).limit(50))


def timed(sessions: Any, make: Callable[[], Any], n: int) -> tuple[float, float, int]:
    times = []
    with sessions() as s:
        rows = len(s.execute(make()).all())
        for _ in range(n):
            start = time.perf_counter()
            s.execute(make()).all()
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))], rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="an empty database")
    parser.add_argument("--intakes", type=int, default=100_000)
    parser.add_argument("--n", type=int, default=50)
    args = parser.parse_args()
    url = args.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
    upgrade(url)
    sessions = session_factory(url)
    start = time.perf_counter()
    seed(sessions, args.intakes, random.Random(1))
    print(f"seeded {args.intakes} intakes in {time.perf_counter() - start:.0f} s")
    if url.startswith("postgresql"):
        with sessions.begin() as s:
            s.execute(text("ANALYZE"))
    print(f"\n{'query':38} {'p50':>7} {'p99':>7} rows  (ms, {args.n} runs)")
    for shape in ("correlated", "anti-join", "correlated", "anti-join"):
        runs: list[tuple[str, Callable[[], Any]]] = [
            (f"desk, last 24 h ({shape})", lambda shape=shape: desk(shape)),
            (f"FHIR search by MRN ({shape})",
             lambda shape=shape: search(shape, "MRN-000301")),
        ]
        for name, make in runs:
            p50, p99, rows = timed(sessions, make, args.n)
            print(f"{name:38} {p50:7.1f} {p99:7.1f} {rows:4d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
