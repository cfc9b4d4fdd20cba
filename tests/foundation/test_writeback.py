"""A practitioner's actions and their write-back through the delivery pipeline:
each action is stored once, with its job; one delivery at a time sends the intake's
current state and serves every job pending on it; examination findings re-triage into a
new revision. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake import audit, pipeline
from intake.auth.users import create_user
from intake.clinical import parse_questionnaire_response, parse_simple_answers
from intake.config import load_settings
from intake.review import actions
from intake.storage import queries
from intake.storage.db import session_factory
from intake.storage.models import (
    AuditEvent,
    Intake,
    Job,
    JobKind,
    JobState,
    ReviewAction,
    TriageRecord,
    utcnow,
)
from support import case
from support.adapters import Recording, Rejecting, deliver_once
from support.databases import sqlite_only


@pytest.fixture
def sessions(migrated_url: str, settings: Any) -> sessionmaker[Session]:
    # As a worker makes them: the audit events are sealed with the settings' key.
    return session_factory(migrated_url, audit_key=audit.signing_key(settings))


@pytest.fixture
def settings(tmp_path: Path, migrated_url: str) -> Any:
    return load_settings({}, {"data_dir": str(tmp_path), "database_url": migrated_url})


@pytest.fixture
def doctor(sessions: sessionmaker[Session]) -> actions.Actor:
    with sessions.begin() as s:
        user = create_user(s, "dr.test", "practitioner", "a long test password",
                           actor="test", now=utcnow())
        s.flush()
        return actions.Actor(user.id, user.name)


def _triaged(sessions: sessionmaker[Session], answers: dict[str, Any]) -> str:
    with sessions.begin() as s:
        intake_id = pipeline.submit_intake(s, answers=parse_simple_answers(answers),
                                           source="test", record_number="MRN-1").intake.id
    with sessions.begin() as s:
        assert pipeline.run_triage(s, intake_id).status == "triaged"
    return intake_id


def _resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _jobs(sessions: sessionmaker[Session], intake_id: str) -> list[tuple[str, int, str]]:
    with sessions() as s:
        return [(j.kind, j.revision, j.state) for j in s.execute(
            select(Job).where(Job.intake_id == intake_id).order_by(Job.id)).scalars()]


def test_acknowledge_then_deliver_sends_the_flag_inactive(
        sessions: sessionmaker[Session], settings: Any, doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-03")["answers"])  # PE + DVT, emergency
    first = Recording()
    assert deliver_once(sessions, settings, intake_id, first).status == "delivered"
    assert all(e["request"]["method"] == "POST" for e in first.bundles[0]["entry"])

    with sessions.begin() as s:
        done = actions.acknowledge_flag(s, intake_id, "PE_SUSPECT", actor=doctor,
                                        revision=1, now=utcnow())
    assert done.created and done.job_kind is JobKind.WRITEBACK and done.job_revision == 1
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "delivered"  # DVT not yet seen
    with sessions.begin() as s:
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "acknowledged"
        assert intake.acknowledged_at is not None

    second = Recording()
    assert deliver_once(sessions, settings, intake_id, second).status == "delivered"
    assert len(second.bundles) == 1  # one delivery served both write-back jobs
    assert _jobs(sessions, intake_id) == [
        ("triage", 1, "done"), ("deliver", 1, "done"), ("writeback", 1, "superseded"),
        ("writeback", 2, "done")]
    flags = {e["resource"]["code"]["coding"][0]["code"]: e
             for e in _resources(second.bundles[0], "Flag")}
    assert set(flags) == {"PE_SUSPECT", "DVT_SUSPECT"}
    for entry in flags.values():
        assert entry["request"]["method"] == "PUT"
        assert entry["resource"]["status"] == "inactive"
        assert "end" in entry["resource"]["period"]
    task = _resources(second.bundles[0], "Task")[0]["resource"]
    assert task["status"] == "in-progress"
    with sessions() as s:  # the status survives the write-back's delivery
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status == "acknowledged"


def test_double_acknowledge_is_one_action(sessions: sessionmaker[Session],
                                          doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    with sessions.begin() as s:
        one = actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor,
                                       revision=1, now=utcnow())
    with sessions.begin() as s:
        two = actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor,
                                       revision=1, now=utcnow())
    assert one.created and not two.created
    with sessions() as s:
        assert len(s.execute(select(ReviewAction)).scalars().all()) == 1
        assert [j.kind for j in s.execute(select(Job).where(
            Job.kind == JobKind.WRITEBACK)).scalars()] == ["writeback"]


def test_department_change_and_review(sessions: sessionmaker[Session], settings: Any,
                                      doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])  # DVT, vascular surgery
    reason = "院内に血管外科医が不在のため循環器内科へ"
    with sessions.begin() as s:
        actions.change_department(s, intake_id, "cardiology", f"  {reason} ", actor=doctor,
                                  revision=1, now=utcnow())
    with sessions.begin() as s, pytest.raises(actions.ReviewError, match="red flag"):
        actions.mark_reviewed(s, intake_id, actor=doctor, revision=1, now=utcnow())
    with sessions.begin() as s:
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())
    with sessions.begin() as s:
        actions.mark_reviewed(s, intake_id, actor=doctor, revision=1, now=utcnow())
    adapter = Recording()
    assert deliver_once(sessions, settings, intake_id, adapter).status == "delivered"
    bundle = adapter.bundles[0]  # never delivered before: the whole state at once
    request = _resources(bundle, "ServiceRequest")[0]
    assert request["request"]["method"] == "PUT"
    coding = request["resource"]["performerType"]["coding"][0]
    assert coding["code"] == "cardiology"
    assert reason in json.dumps(request["resource"], ensure_ascii=False)
    assert _resources(bundle, "Task")[0]["resource"]["status"] == "completed"
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.department_override == "cardiology"
        assert intake.reviewed_at is not None
        events = s.execute(select(AuditEvent).where(
            AuditEvent.action.like("review.%")).order_by(AuditEvent.id)).scalars().all()
        assert [e.action for e in events] == [
            "review.change_department", "review.acknowledge_flag", "review.reviewed"]
        assert all(e.actor == "dr.test" for e in events)
        # The typed reason is in the action row and the bundle, never in the audit trail.
        assert all(reason not in json.dumps(e.detail, ensure_ascii=False) for e in events)


def test_exam_findings_retriage_and_withdraw(sessions: sessionmaker[Session], settings: Any,
                                             doctor: actions.Actor) -> None:
    answers = dict(case("pub-13")["answers"], age_years=40)  # injury, no Ottawa criterion
    intake_id = _triaged(sessions, answers)
    assert deliver_once(sessions, settings, intake_id, Recording()).status == "delivered"

    with sessions.begin() as s:
        done = actions.add_exam_findings(s, intake_id, {"staff_patella_tenderness": True},
                                         actor=doctor, revision=1, now=utcnow())
    assert done.job_kind is JobKind.TRIAGE and done.job_revision == 2
    with sessions.begin() as s:  # the page the practitioner had open is now stale
        with pytest.raises(actions.StaleRevision):
            actions.mark_reviewed(s, intake_id, actor=doctor, revision=1, now=utcnow())
    with sessions.begin() as s:
        assert pipeline.run_triage(s, intake_id).status == "triaged"
    with sessions() as s:
        results = s.execute(select(TriageRecord).where(TriageRecord.intake_id == intake_id)
                            .order_by(TriageRecord.revision)).scalars().all()
        assert [r.revision for r in results] == [1, 2]  # the earlier result stays
        assert results[1].flag_codes == ",FRACTURE_XRAY,"
        intake = s.get(Intake, intake_id)
        assert intake is not None
        qr_answers = parse_questionnaire_response(intake.questionnaire_response)
        assert qr_answers["staff_patella_tenderness"] is True
    adapter = Recording()
    assert deliver_once(sessions, settings, intake_id, adapter).status == "delivered"
    bundle = adapter.bundles[0]
    qr = _resources(bundle, "QuestionnaireResponse")[0]
    assert qr["request"]["method"] == "PUT" and qr["resource"]["status"] == "amended"
    flags = _resources(bundle, "Flag")
    assert [(f["resource"]["code"]["coding"][0]["code"], f["resource"]["status"])
            for f in flags] == [("FRACTURE_XRAY", "active")]

    # The finding was wrong: corrected, the flag is withdrawn and sent inactive.
    with sessions.begin() as s:
        actions.add_exam_findings(s, intake_id, {"staff_patella_tenderness": False},
                                  actor=doctor, revision=2, now=utcnow())
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    adapter = Recording()
    assert deliver_once(sessions, settings, intake_id, adapter).status == "delivered"
    flags = _resources(adapter.bundles[0], "Flag")
    assert [(f["resource"]["code"]["coding"][0]["code"], f["resource"]["status"])
            for f in flags] == [("FRACTURE_XRAY", "inactive")]


def test_new_red_flag_reopens_an_acknowledged_intake(
        sessions: sessionmaker[Session], doctor: actions.Actor) -> None:
    answers = dict(case("pub-13")["answers"], age_years=40)
    answers["swelling_after_injury"] = "LE_2H"  # HAEMARTHROSIS, red
    intake_id = _triaged(sessions, answers)
    with sessions() as s:
        codes = s.execute(select(TriageRecord.flag_codes)).scalar_one()
    assert "HAEMARTHROSIS" in codes and "FRACTURE_XRAY" not in codes
    with sessions.begin() as s:
        actions.acknowledge_flag(s, intake_id, "HAEMARTHROSIS", actor=doctor, revision=1,
                                 now=utcnow())
        actions.mark_reviewed(s, intake_id, actor=doctor, revision=1, now=utcnow())
    with sessions.begin() as s:
        actions.add_exam_findings(s, intake_id, {"staff_fibular_head_tenderness": True},
                                  actor=doctor, revision=1, now=utcnow())
    with sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    with sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        assert intake.status != "acknowledged" and intake.acknowledged_at is None
        assert intake.reviewed_at is None  # FRACTURE_XRAY is new and unseen


@sqlite_only
@pytest.mark.parametrize("call, message", [
    (lambda s, i, a: actions.acknowledge_flag(s, i, "PE_SUSPECT", actor=a, revision=1,
                                              now=utcnow()), "did not fire"),
    (lambda s, i, a: actions.acknowledge_flag(s, i, "DVT_SUSPECT", actor=a, revision=3,
                                              now=utcnow()), "re-triaged"),
    (lambda s, i, a: actions.change_department(s, i, "dermatology", "x", actor=a,
                                               revision=1, now=utcnow()), "unknown department"),
    (lambda s, i, a: actions.change_department(s, i, "cardiology", "   ", actor=a,
                                               revision=1, now=utcnow()), "reason"),
    (lambda s, i, a: actions.change_department(s, i, "cardiology", "x" * 501, actor=a,
                                               revision=1, now=utcnow()), "longer"),
    (lambda s, i, a: actions.change_department(s, i, "vascular_surgery", "same", actor=a,
                                               revision=1, now=utcnow()), "already"),
    (lambda s, i, a: actions.add_exam_findings(s, i, {}, actor=a, revision=1,
                                               now=utcnow()), "at least one"),
    (lambda s, i, a: actions.add_exam_findings(s, i, {"pain_nrs": True}, actor=a,
                                               revision=1, now=utcnow()), "not an exam"),
    (lambda s, i, a: actions.add_exam_findings(s, i, {"staff_collateral_veins": 1},
                                               actor=a, revision=1, now=utcnow()), "yes or no"),
    (lambda s, i, a: actions.acknowledge_flag(s, "00000000-0000-0000-0000-000000000000",
                                              "DVT_SUSPECT", actor=a, revision=1,
                                              now=utcnow()), "no such intake"),
])
def test_refused_actions_change_nothing(sessions: sessionmaker[Session],
                                        doctor: actions.Actor, call: Any,
                                        message: str) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    before = _jobs(sessions, intake_id)
    with pytest.raises(actions.ReviewError, match=message):
        with sessions.begin() as s:
            call(s, intake_id, doctor)
    assert _jobs(sessions, intake_id) == before
    with sessions() as s:
        assert s.execute(select(ReviewAction)).first() is None
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.revision == 1 and intake.review_seq == 0


def test_untriaged_intake_cannot_be_acted_on(sessions: sessionmaker[Session],
                                             doctor: actions.Actor) -> None:
    with sessions.begin() as s:
        intake_id = pipeline.submit_intake(
            s, answers=parse_simple_answers(case("pub-02")["answers"]), source="test").intake.id
    with sessions.begin() as s, pytest.raises(actions.ReviewError, match="not been triaged"):
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())


def test_change_during_a_delivery_is_sent_after_it(
        sessions: sessionmaker[Session], settings: Any, doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    busy: list[str] = []

    def practitioner_acts() -> None:
        with sessions.begin() as s:
            actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                     now=utcnow())
        # The action's own delivery finds the intake busy and leaves it to the holder.
        busy.append(deliver_once(sessions, settings, intake_id, Recording()).status)

    adapter = Recording(during=practitioner_acts)
    step = deliver_once(sessions, settings, intake_id, adapter)
    assert step.status == "delivered" and step.again
    assert busy == ["busy"]
    follow_up = Recording()
    assert deliver_once(sessions, settings, intake_id, follow_up).status == "delivered"
    flag = _resources(follow_up.bundles[0], "Flag")[0]["resource"]
    assert flag["status"] == "inactive"
    assert _jobs(sessions, intake_id)[-1] == ("writeback", 1, "done")


def test_concurrent_deliveries_of_one_intake_send_once(
        sessions: sessionmaker[Session], settings: Any, doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    with sessions.begin() as s:
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())
    adapter = Recording()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def run() -> None:
        barrier.wait()
        outcomes.append(deliver_once(sessions, settings, intake_id, adapter).status)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("delivered") == 1, outcomes
    assert len(adapter.bundles) == 1
    assert set(outcomes) <= {"delivered", "busy", "already"}


def test_failed_writeback_shows_and_the_next_change_retries(
        sessions: sessionmaker[Session], settings: Any, doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    assert deliver_once(sessions, settings, intake_id, Recording()).status == "delivered"
    with sessions.begin() as s:
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())

    assert deliver_once(sessions, settings, intake_id,
                    Rejecting(412, "HTTP 412")).status == "failed"
    with sessions() as s:
        assert _delivery_state(s, intake_id) == "failed"
        intake = s.get(Intake, intake_id)
        assert intake is not None and intake.status_reason == "HTTP 412"
    with sessions.begin() as s:
        actions.mark_reviewed(s, intake_id, actor=doctor, revision=1, now=utcnow())
    with sessions() as s:
        assert _delivery_state(s, intake_id) == "pending"
    assert deliver_once(sessions, settings, intake_id, Recording()).status == "delivered"
    with sessions() as s:
        assert _delivery_state(s, intake_id) == "delivered"


def test_sweeper_sends_a_stuck_writeback(sessions: sessionmaker[Session],
                                         doctor: actions.Actor) -> None:
    intake_id = _triaged(sessions, case("pub-02")["answers"])
    with sessions.begin() as s:
        s.execute(Job.__table__.update().where(Job.kind == JobKind.DELIVER)
                  .values(state=JobState.DONE))
        actions.acknowledge_flag(s, intake_id, "DVT_SUSPECT", actor=doctor, revision=1,
                                 now=utcnow())
    sent: list[tuple[str, str]] = []
    later = datetime.now(UTC) + timedelta(seconds=120)
    counts = pipeline.sweep(sessions, lambda k, i: sent.append((k, i)) or True,
                            stuck_after=60, clock=lambda: later)
    assert counts["sent"] == 1 and sent == [("writeback", intake_id)]


def _delivery_state(session: Any, intake_id: str) -> str:
    """The delivery state the API shows for the intake."""
    intake = session.get(Intake, intake_id)
    assert intake is not None
    return str(queries.delivery_of(session, intake).state)
