"""The pipeline with real processes: HTTP submission, a real Celery worker over a real
Redis, delivery to the outbox; Redis stopped mid-way; a worker killed mid-task."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from intake import state
from intake.queue import TASK_DELIVER, TASK_TRIAGE, make_celery
from intake.storage.models import DeliveryAttempt, Intake, TriageRecord
from support import case, load_cases, snapshot, wait_for

pytestmark = pytest.mark.slow


def _status(client: Any, intake_id: str) -> dict[str, Any]:
    data: dict[str, Any] = client.get(f"/api/intakes/{intake_id}").get_json()
    return data


def _delivered(client: Any, ids: list[str]) -> bool:
    return all(_status(client, i)["status"] == "delivered" for i in ids)


def _rows(app: Any, intake_id: str) -> tuple[int, int]:
    """(triage results, successful delivery attempts) stored for the intake."""
    with state(app).sessions() as s:
        results = s.scalar(select(func.count()).select_from(TriageRecord)
                           .where(TriageRecord.intake_id == intake_id)) or 0
        ok = s.scalar(select(func.count()).select_from(DeliveryAttempt)
                      .where(DeliveryAttempt.intake_id == intake_id,
                             DeliveryAttempt.outcome == "delivered")) or 0
    return results, ok


def _outbox(app: Any) -> Path:
    out: Path = state(app).settings.outbox_dir
    return out


def test_http_submission_is_triaged_and_delivered_by_a_worker(
        make_app: Callable[..., Any], database_url: str, clean_redis: str,
        start_worker: Callable[..., Any]) -> None:
    app = make_app(database_url, redis_url=clean_redis)
    start_worker(database_url, clean_redis)
    client = app.test_client()
    cases = [case("pub-03"), case("pub-01"), case("pub-15")]
    ids = []
    for c in cases:
        resp = client.post("/api/intakes", json={"answers": c["answers"]})
        assert resp.status_code == 202
        ids.append(resp.get_json()["id"])
    wait_for(lambda: _delivered(client, ids), 60, 0.2, "three intakes delivered")
    for c, intake_id in zip(cases, ids, strict=True):
        status = _status(client, intake_id)
        assert status["triage"]["urgency"] == c["expect"]["urgency"]
        assert status["triage"]["department"] == c["expect"]["department"]
        assert {f["code"] for f in status["triage"]["flags"]} >= set(c["expect"]["flags"])
        assert status["delivery"]["state"] == "delivered"
        assert status["times"]["delivered"] >= status["times"]["triaged"] \
            >= status["times"]["received"]
        bundle = json.loads((_outbox(app) / f"{status['business_id']}.json").read_text())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        assert _rows(app, intake_id) == (1, 1)


def test_each_task_run_twice_through_the_worker_changes_nothing(
        make_app: Callable[..., Any], sqlite_url: str, clean_redis: str,
        start_worker: Callable[..., Any]) -> None:
    app = make_app(sqlite_url, redis_url=clean_redis)
    worker = start_worker(sqlite_url, clean_redis, beat=False)
    client = app.test_client()
    intake_id = client.post("/api/intakes", json={"answers": case("pub-04")["answers"]}
                            ).get_json()["id"]
    wait_for(lambda: _delivered(client, [intake_id]), 60, 0.2, "delivered")
    before = snapshot(state(app).sessions)
    celery = make_celery(state(app).settings)
    for name in (TASK_TRIAGE, TASK_DELIVER, TASK_TRIAGE, TASK_DELIVER):
        celery.send_task(name, args=[intake_id])
    wait_for(lambda: worker.log().count(f"[{intake_id}]") >= 0 and
             len(re.findall(r"Task intake\.(triage|deliver)\[[^\]]+\] succeeded",
                            worker.log())) >= 6, 30, 0.2, "the repeated tasks to run")
    after = snapshot(state(app).sessions)
    # Reads through the API are audited; nothing else may change.
    assert {k: v for k, v in after.items() if k != "audit"} == \
        {k: v for k, v in before.items() if k != "audit"}
    assert [a for a in after["audit"] if a[0] != "intake.read"] == \
        [a for a in before["audit"] if a[0] != "intake.read"]


def test_redis_down_during_20_submissions(make_app: Callable[..., Any], database_url: str,
                                          private_redis: Any,
                                          start_worker: Callable[..., Any]) -> None:
    app = make_app(database_url, redis_url=private_redis.url)
    start_worker(database_url, private_redis.url)
    client = app.test_client()
    wait_for(lambda: client.get("/readyz").status_code == 200, 10, 0.1, "ready")
    private_redis.stop()
    answers = [c["answers"] for c in load_cases()]
    ids = []
    slowest = 0.0
    for n in range(20):
        started = time.monotonic()
        resp = client.post("/api/intakes", json={"answers": answers[n % len(answers)]})
        slowest = max(slowest, time.monotonic() - started)
        assert resp.status_code == 202
        ids.append(resp.get_json()["id"])
    assert client.get("/readyz").status_code == 503
    assert not any(_status(client, i)["status"] != "received" for i in ids)
    private_redis.start()
    wait_for(lambda: _delivered(client, ids), 120, 0.5, "all 20 delivered after restart")
    for intake_id in ids:
        assert _rows(app, intake_id) == (1, 1)
    assert len(list(_outbox(app).glob("*.json"))) == 20
    print(f"\nredis-down: 20/20 accepted (slowest submission {slowest:.2f}s), "
          "20/20 delivered once after restart")


RECEIVED = re.compile(r"Task intake\.triage\[[0-9a-f-]+\] received")


@pytest.mark.parametrize("victim", ["whole worker", "pool process"])
def test_worker_killed_mid_triage(make_app: Callable[..., Any], database_url: str,
                                  clean_redis: str, start_worker: Callable[..., Any],
                                  victim: str) -> None:
    """SIGKILL in the middle of a triage task: still triaged and delivered exactly once.

    Whole worker: the message stays unacknowledged in Redis and the sweeper (or, after
    the visibility timeout, Redis itself) hands the job to a new worker. Pool process:
    the main process sees the child die and, with reject_on_worker_lost, requeues it."""
    import psutil

    app = make_app(database_url, redis_url=clean_redis)
    delay = "30" if victim == "whole worker" else "6"
    # Pool variant: no embedded beat, so the only child is the pool process and the
    # only way back is reject_on_worker_lost (no sweeper to rescue it).
    worker = start_worker(database_url, clean_redis, fault_triage_delay=delay,
                          beat=victim == "whole worker")
    client = app.test_client()
    intake_id = client.post("/api/intakes", json={"answers": case("pub-06")["answers"]}
                            ).get_json()["id"]
    wait_for(lambda: RECEIVED.search(worker.log()), 30, 0.1, "the triage task to start")
    time.sleep(1.0)  # inside the triage window
    assert _status(client, intake_id)["status"] == "received"
    if victim == "whole worker":
        worker.kill(signal.SIGKILL)
        start_worker(database_url, clean_redis)
    else:
        assert worker.proc is not None
        children = psutil.Process(worker.proc.pid).children()
        assert len(children) == 1
        children[0].send_signal(signal.SIGKILL)
    wait_for(lambda: _delivered(client, [intake_id]), 90, 0.2, "delivered after the kill")
    if victim == "pool process":
        assert "WorkerLostError" in worker.log() or "SIGKILL" in worker.log()
    time.sleep(3)  # let any duplicate message run; it must change nothing
    assert _rows(app, intake_id) == (1, 1)
    assert len(list(_outbox(app).glob("*.json"))) == 1
    with state(app).sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "delivered"
