"""Each pipeline step run twice gives the same stored state; sweeper and lease claims
are exclusive; delivery failures end in a state a person sees. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake import audit, pipeline
from intake.clinical import parse_simple_answers
from intake.config import load_settings
from intake.delivery.base import Outcome
from intake.storage.db import session_factory
from intake.storage.models import Intake
from support import case, snapshot
from support.adapters import Scripted, attempt_result, deliver_once


@pytest.fixture
def sessions(migrated_url: str, settings: Any) -> sessionmaker[Session]:
    # As a worker makes them: the audit events are sealed with the settings' key.
    return session_factory(migrated_url, audit_key=audit.signing_key(settings))


@pytest.fixture
def settings(tmp_path: Path, migrated_url: str) -> Any:
    return load_settings({}, {"data_dir": str(tmp_path), "database_url": migrated_url,
                              "delivery_max_attempts": 3})


def _submit(sessions: sessionmaker[Session], case_id: str = "pub-03") -> str:
    with sessions.begin() as s:
        sub = pipeline.submit_intake(s, answers=parse_simple_answers(case(case_id)["answers"]),
                                     source="test", record_number="MRN-1")
        return sub.intake.id


def test_triage_twice_same_state(sessions: sessionmaker[Session]) -> None:
    intake_id = _submit(sessions)
    with sessions.begin() as s:
        first = pipeline.run_triage(s, intake_id)
    assert first.status == "triaged" and first.urgency == "emergency"
    before = snapshot(sessions)
    with sessions.begin() as s:
        second = pipeline.run_triage(s, intake_id)
    assert second.status == "already" and second.deliver_revision == 1
    assert snapshot(sessions) == before
    assert before["results"][0][2]["ruleset"].startswith("posterior-knee@")


def test_concurrent_triage_stores_one_result(sessions: sessionmaker[Session]) -> None:
    intake_id = _submit(sessions)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        with sessions.begin() as s:
            outcomes.append(pipeline.run_triage(s, intake_id).status)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("triaged") == 1, outcomes
    assert len(snapshot(sessions)["results"]) == 1


def test_deliver_twice_same_state(sessions: sessionmaker[Session], settings: Any) -> None:
    intake_id = _submit(sessions)
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    assert deliver_once(sessions, settings, intake_id).status == "delivered"
    before = snapshot(sessions)
    assert deliver_once(sessions, settings, intake_id).status == "already"
    assert snapshot(sessions) == before
    files = list(settings.outbox_dir.glob("*.json"))
    assert len(files) == 1 and before["attempts"] == [(1, "delivered")]


def test_only_one_delivery_holds_the_lease(sessions: sessionmaker[Session]) -> None:
    intake_id = _submit(sessions)
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    with sessions.begin() as s:
        assert pipeline.claim_delivery(s, intake_id, lease=60) is not None
    with sessions.begin() as s:
        assert pipeline.claim_delivery(s, intake_id, lease=60) is None
    later = datetime.now(UTC) + timedelta(seconds=61)
    with sessions.begin() as s:  # a holder that died loses the lease when it expires
        assert pipeline.claim_delivery(s, intake_id, lease=60, clock=lambda: later)


def test_transient_failures_retry_then_give_up(sessions: sessionmaker[Session],
                                               settings: Any) -> None:
    intake_id = _submit(sessions)
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    adapter = Scripted(attempt_result(Outcome.TRANSIENT, http_status=503, retry_after=7.0,
                                reason="HTTP 503"),
                       attempt_result(Outcome.TRANSIENT, ambiguous=True, reason="timeout"),
                       attempt_result(Outcome.TRANSIENT, http_status=500, reason="HTTP 500"))
    step = deliver_once(sessions, settings, intake_id, adapter)
    assert step.status == "retry" and step.retry_in is not None and step.retry_in >= 7.0
    assert deliver_once(sessions, settings, intake_id, adapter).status == "retry"
    assert deliver_once(sessions, settings, intake_id, adapter).status == "failed"
    assert adapter.calls == [False, False, True]  # searched first after the timeout
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "delivery_failed"
        assert intake.status_reason == "gave up after 3 attempts: HTTP 500"
        assert [a.outcome for a in intake.delivery_attempts] == ["transient"] * 3


def test_rejection_stops_and_keeps_the_outcome(sessions: sessionmaker[Session],
                                               settings: Any) -> None:
    intake_id = _submit(sessions)
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    oo = {"resourceType": "OperationOutcome",
          "issue": [{"severity": "error", "code": "invalid", "diagnostics": "bad"}]}
    adapter = Scripted(attempt_result(Outcome.REJECTED, http_status=422, response=oo,
                                reason="HTTP 422: bad"))
    assert deliver_once(sessions, settings, intake_id, adapter).status == "failed"
    assert deliver_once(sessions, settings, intake_id, adapter).status == "already"
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "delivery_failed"
        assert intake.status_reason == "HTTP 422: bad"
        assert intake.delivery_attempts[0].response == oo


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    delay = pipeline.default_backoff(cap=900)
    for attempt in range(1, 15):
        ceiling = min(900, 2.0 * 2 ** (attempt - 1))
        values = [delay(attempt, None) for _ in range(50)]
        assert all(0 <= v <= ceiling for v in values)
        assert len(set(values)) > 1  # jittered, so failures do not retry in step
    assert max(delay(12, None) for _ in range(200)) > 450  # it does grow
    assert all(delay(1, 30.0) >= 30.0 for _ in range(20))
    assert delay(1, 10_000.0) == 900  # capped below the visibility timeout


def test_sweeper_reenqueues_each_stuck_job_once(sessions: sessionmaker[Session]) -> None:
    ids = [_submit(sessions) for _ in range(6)]
    later = datetime.now(UTC) + timedelta(seconds=30)
    sent: list[tuple[str, str]] = []
    lock = threading.Lock()

    def send(kind: str, intake_id: str) -> bool:
        with lock:
            sent.append((kind, intake_id))
        return True

    barrier = threading.Barrier(3)

    def sweeper() -> None:
        barrier.wait()
        pipeline.sweep(sessions, send, stuck_after=10, clock=lambda: later)

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(sent) == sorted(("triage", i) for i in ids)
    # Within the same window nothing is stuck any more.
    assert pipeline.sweep(sessions, send, stuck_after=10, clock=lambda: later)["claimed"] == 0
    # Not before the threshold: a fresh job is not stuck.
    fresh = _submit(sessions)
    counts = pipeline.sweep(sessions, send, stuck_after=10)
    assert counts["claimed"] == 0 and ("triage", fresh) not in sent
