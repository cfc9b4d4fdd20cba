"""Practitioner worklist benchmark (run on demand; not part of the tests).

    python bench/bench_review.py [--intakes 10000] [--n 200] [--database-url URL]

Stores ``--intakes`` triaged intakes (the 16 shared cases over the last 30 days, a mix
of record numbers and walk-ins, delivered, failed, pending and acknowledged), signs in
as a practitioner and prints the server time of the worklist page, p50 and p99 over N
requests, for the default view and for each filter, plus the case view, measured around
Flask's test client (the whole WSGI app: routing, sign-in check, the database, the
audit write, templates; no network). SQLite in a temporary folder unless
``--database-url`` names another (empty) database.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sqlalchemy import insert, text  # noqa: E402

from intake import create_app, state  # noqa: E402
from intake.auth.users import create_user  # noqa: E402
from intake.clinical import (  # noqa: E402
    build_questionnaire_response,
    evaluate,
    load_ruleset,
    parse_simple_answers,
)
from intake.constants import QUESTIONNAIRE_URL, QUESTIONNAIRE_VERSION  # noqa: E402
from intake.pipeline import flag_codes, new_business_id  # noqa: E402
from intake.storage.migrate import upgrade  # noqa: E402
from intake.storage.models import Intake, Job, TriageRecord, utcnow  # noqa: E402
from support import case  # noqa: E402

PASSWORD = "benchmark password 1"  # noqa: S105 - a throwaway database
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def seed(sessions: Any, count: int, rng: random.Random) -> str:
    """Bulk-insert ``count`` intakes with their triage results and delivery jobs; returns
    the id of one emergency intake (for the case view)."""
    templates = []
    for n in range(1, 17):
        answers = parse_simple_answers(case(f"pub-{n:02d}")["answers"])
        templates.append((answers, evaluate(answers, load_ruleset())))
    now = utcnow()
    intakes, results, jobs = [], [], []
    emergency_id = ""
    for i in range(count):
        answers, typed = templates[i % len(templates)]
        result = typed.to_dict()
        received = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
        intake_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        bid = new_business_id(intake_id, received)
        walk_in = i % 3 == 0
        status = rng.choice(["delivered"] * 6 + ["delivery_failed", "acknowledged",
                                                 "triaged"])
        intakes.append({
            "id": intake_id, "business_id": bid, "source": "bench",
            "questionnaire_url": QUESTIONNAIRE_URL,
            "questionnaire_version": QUESTIONNAIRE_VERSION,
            "questionnaire_response": build_questionnaire_response(
                answers, identifier=bid, authored=received.isoformat(timespec="seconds")),
            "patient_record_number": None if walk_in else f"MRN-{i:06d}",
            "patient_demographics": {"family_name": "山田", "given_name": "花子",
                                     "family_name_kana": "ヤマダ", "given_name_kana": "ハナコ",
                                     "birth_date": "1950-01-02", "sex": "female"}
            if walk_in else None,
            "revision": 1, "review_seq": 0, "status": status, "received_at": received,
            "triaged_at": received + timedelta(seconds=1),
            "delivered_at": received + timedelta(seconds=2)
            if status in ("delivered", "acknowledged") else None,
            "delivery_failed_at": received + timedelta(seconds=2)
            if status == "delivery_failed" else None,
            "status_reason": "HTTP 422: unknown record number"
            if status == "delivery_failed" else None,
            "updated_at": received,
        })
        results.append({"intake_id": intake_id, "revision": 1, "ruleset": result["ruleset"],
                        "urgency": result["urgency"], "department": result["department"],
                        "red_flag": bool(result["red_flag"]), "flag_codes": flag_codes(typed),
                        "result": result, "created_at": received + timedelta(seconds=1)})
        job_state = {"delivered": "done", "acknowledged": "done",
                     "delivery_failed": "failed"}.get(status, "pending")
        jobs.append({"intake_id": intake_id, "kind": "triage", "revision": 1,
                     "state": "done", "attempts": 1, "created_at": received,
                     "ambiguous": False})
        jobs.append({"intake_id": intake_id, "kind": "deliver", "revision": 1,
                     "state": job_state, "attempts": 1, "created_at": received,
                     "ambiguous": False})
        if result["urgency"] == "emergency" and not emergency_id:
            emergency_id = intake_id
    with sessions.begin() as s:
        for start in range(0, count, 1000):
            s.execute(insert(Intake), intakes[start:start + 1000])
            s.execute(insert(TriageRecord), results[start:start + 1000])
            s.execute(insert(Job), jobs[2 * start:2 * start + 2000])
    return emergency_id


def timed(n: int, call: Callable[[], Any]) -> list[float]:
    call()  # warm: templates compiled, connections open
    out = []
    for _ in range(n):
        start = time.perf_counter()
        resp = call()
        out.append((time.perf_counter() - start) * 1000)
        assert resp.status_code == 200, resp.status_code
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intakes", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--database-url")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-review-"))
    url = args.database_url or f"sqlite:///{tmp / 'intake.db'}"
    upgrade(url)
    app = create_app({"data_dir": str(tmp), "database_url": url, "log_level": "warning"})
    sessions = state(app).sessions
    t0 = time.perf_counter()
    emergency_id = seed(sessions, args.intakes, random.Random(6))
    backend = url.split(":")[0]
    print(f"seeded {args.intakes} intakes in {time.perf_counter() - t0:.1f} s ({backend})")
    # Statistics as the database would have them in use (autovacuum / ANALYZE).
    engine = sessions.kw["bind"]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if backend.startswith("postgresql")
                          else "ANALYZE"))
    with sessions.begin() as s:
        create_user(s, "bench.doctor", "practitioner", PASSWORD, actor="bench", now=utcnow())

    client = app.test_client()
    token = CSRF.search(client.get("/auth/signin").get_data(as_text=True))
    assert token is not None
    resp = client.post("/auth/signin", data={"csrf_token": token.group(1),
                                             "name": "bench.doctor", "password": PASSWORD})
    assert resp.status_code == 303, resp.status_code

    today = datetime.now(UTC).date()
    views = {
        "worklist (default)": "/review",
        "worklist page 5": "/review?page=5",
        "filter urgency=emergency": "/review?urgency=emergency",
        "filter flag=DVT_SUSPECT": "/review?flag=DVT_SUSPECT",
        "filter department=orthopedics": "/review?department=orthopedics",
        "filter state=delivery_failed": "/review?state=delivery_failed",
        "filter date=last 7 days": f"/review?date_from={today - timedelta(days=7)}",
        "case view": f"/review/{emergency_id}",
    }
    print(f"\nserver time over {args.n} requests each (ms):")
    print(f"{'view':34} {'p50':>7} {'p99':>7} {'mean':>7}  bytes")
    for name, path in views.items():
        size = len(client.get(path).data)
        values = timed(args.n, lambda p=path: client.get(p))
        print(f"{name:34} {percentile(values, 0.5):7.1f} {percentile(values, 0.99):7.1f} "
              f"{statistics.fmean(values):7.1f}  {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
