"""Models and migrations on SQLite and PostgreSQL; the audit chain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect, select, update

from intake import audit
from intake.storage.db import get_engine, session_factory
from intake.storage.migrate import current_revision, downgrade, head_revision, upgrade
from intake.storage.models import (
    AuditEvent,
    DeliveryAttempt,
    Intake,
    Job,
    JobKind,
    TriageRecord,
)

TABLES = {"intakes", "jobs", "triage_results", "delivery_attempts", "audit_events"}


def test_migrations_up_down_up(empty_database_url: str) -> None:
    database_url = empty_database_url
    upgrade(database_url)
    assert current_revision(database_url) == head_revision()
    assert TABLES <= set(inspect(get_engine(database_url)).get_table_names())
    downgrade(database_url, "base")
    assert current_revision(database_url) is None
    assert not TABLES & set(inspect(get_engine(database_url)).get_table_names())
    upgrade(database_url)
    upgrade(database_url)  # idempotent
    assert current_revision(database_url) == head_revision()


def test_migrated_schema_matches_models(migrated_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from intake.storage.models import Base

    with get_engine(migrated_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _intake(i: str = "00000000-0000-4000-8000-000000000001") -> Intake:
    return Intake(id=i, business_id="20261121-0000000000", source="api",
                  questionnaire_url="q", questionnaire_version="1",
                  questionnaire_response={"resourceType": "QuestionnaireResponse", "ja": "膝"},
                  status="received", received_at=datetime(2026, 11, 21, 9, 30, tzinfo=UTC))


def test_models_round_trip(migrated_url: str) -> None:
    sessions = session_factory(migrated_url)
    with sessions.begin() as s:
        s.add(_intake())
        s.flush()
        s.add(Job(intake_id=_intake().id, kind=JobKind.TRIAGE, revision=1))
        s.add(TriageRecord(intake_id=_intake().id, revision=1, ruleset="r@1", urgency="soon",
                           department="orthopedics", red_flag=False, result={"flags": []}))
        s.add(DeliveryAttempt(intake_id=_intake().id, revision=1, attempt_no=1,
                              adapter="folder", target="/x", outcome="delivered",
                              response={"ok": True},
                              started_at=datetime.now(UTC), finished_at=datetime.now(UTC)))
    with sessions() as s:
        got = s.get(Intake, _intake().id)
        assert got is not None
        assert got.received_at == datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
        assert got.questionnaire_response["ja"] == "膝"
        assert [j.kind for j in got.jobs] == ["triage"]
        assert got.triage_records[0].urgency == "soon"
        assert got.delivery_attempts[0].response == {"ok": True}


def test_one_triage_result_per_revision(migrated_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    sessions = session_factory(migrated_url)
    with sessions.begin() as s:
        s.add(_intake())
        s.flush()
        s.add(TriageRecord(intake_id=_intake().id, revision=1, ruleset="r@1", urgency="soon",
                           department="orthopedics", red_flag=False, result={}))
    with pytest.raises(IntegrityError), sessions.begin() as s:
        s.add(TriageRecord(intake_id=_intake().id, revision=1, ruleset="r@1",
                           urgency="routine", department="orthopedics", red_flag=False,
                           result={}))


def test_naive_datetimes_are_refused(migrated_url: str) -> None:
    from sqlalchemy.exc import StatementError

    bad = _intake()
    bad.received_at = datetime(2026, 11, 21, 9, 30)
    with pytest.raises(StatementError), session_factory(migrated_url).begin() as s:
        s.add(bad)


def test_audit_chain_detects_tampering(migrated_url: str) -> None:
    sessions = session_factory(migrated_url, audit_key=audit.derive_key("a test secret"))
    for i in range(5):
        with sessions.begin() as s:
            audit.record(s, actor="system", action="intake.read", entity_type="intake",
                         entity_id=str(i), detail={"n": i})
    with sessions() as s:
        report = audit.verify(s)
    assert report.ok and report.checked == 5
    with sessions.begin() as s:
        s.execute(update(AuditEvent).where(AuditEvent.entity_id == "2")
                  .values(detail={"n": 99}))
    with sessions() as s:
        report = audit.verify(s)
    assert report.checked == 5 and report.first is not None
    assert (report.first.event_id, report.first.kind) == (3, audit.BreakKind.CONTENT)
    assert report.problems == [report.first.message] and report.further == 0
    with sessions.begin() as s:
        ev = s.execute(select(AuditEvent).where(AuditEvent.entity_id == "2")).scalar_one()
        s.delete(ev)
    with sessions() as s:
        report = audit.verify(s)
    assert any("link broken" in p for p in report.problems)
