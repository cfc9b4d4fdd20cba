"""The intake lifecycle: its moves, the guards on them, the time of each status, and
that nothing but ``intake.lifecycle`` moves an intake."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from intake import lifecycle
from intake.lifecycle import IllegalTransition, IntakeStatus
from intake.storage.models import Intake
from support import REPO

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _intake(status: IntakeStatus = IntakeStatus.RECEIVED) -> Intake:
    intake = Intake(id="00000000-0000-4000-8000-000000000001", business_id="B", source="api",
                    questionnaire_url="u", questionnaire_version="1", questionnaire_response={})
    lifecycle.received(intake, T0)
    intake.status = status  # the state under test (set directly, as a stored row would be)
    return intake


def test_a_first_result_moves_a_received_intake_and_a_later_one_keeps_the_delivery() -> None:
    intake = _intake()
    lifecycle.triaged(intake, T0 + timedelta(seconds=1))
    assert intake.status is IntakeStatus.TRIAGED and intake.triaged_at is not None
    lifecycle.delivered(intake, T0 + timedelta(seconds=2))
    assert intake.status is IntakeStatus.DELIVERED
    # Examination findings: revision 2's result does not undo the delivery.
    lifecycle.triaged(intake, T0 + timedelta(seconds=3))
    assert intake.status is IntakeStatus.DELIVERED
    assert intake.triaged_at == T0 + timedelta(seconds=3)


def test_a_failed_triage_keeps_its_reason_until_a_rerun_succeeds() -> None:
    intake = _intake()
    lifecycle.triage_failed(intake, T0, "triage failed: AnswerError")
    assert (intake.status, intake.status_reason) == (IntakeStatus.TRIAGE_FAILED,
                                                     "triage failed: AnswerError")
    lifecycle.triaged(intake, T0 + timedelta(seconds=1))
    assert (intake.status, intake.status_reason) == (IntakeStatus.TRIAGED, None)


def test_deliveries_never_move_an_acknowledged_intake_but_record_their_time() -> None:
    intake = _intake(IntakeStatus.ACKNOWLEDGED)
    lifecycle.delivery_failed(intake, T0, "HTTP 412" + "x" * 3000)
    assert intake.status is IntakeStatus.ACKNOWLEDGED
    assert intake.delivery_failed_at == T0 and len(intake.status_reason or "") == 2000
    lifecycle.delivered(intake, T0 + timedelta(seconds=1))
    assert intake.status is IntakeStatus.ACKNOWLEDGED and intake.status_reason is None
    assert intake.delivered_at == T0 + timedelta(seconds=1)


@pytest.mark.parametrize(("move", "status"), [
    ("delivered", IntakeStatus.RECEIVED),
    ("delivery_failed", IntakeStatus.RECEIVED),
    ("acknowledged", IntakeStatus.RECEIVED),
    ("acknowledged", IntakeStatus.TRIAGE_FAILED),
])
def test_moves_the_lifecycle_does_not_allow_are_refused_and_change_nothing(
        move: str, status: IntakeStatus) -> None:
    intake = _intake(status)
    with pytest.raises(IllegalTransition) as raised:
        if move == "delivered":
            lifecycle.delivered(intake, T0)
        elif move == "delivery_failed":
            lifecycle.delivery_failed(intake, T0, "x")
        else:
            lifecycle.acknowledged(intake, T0)
    assert raised.value.code == "illegal_transition"
    assert intake.status is status
    assert intake.delivered_at is None and intake.acknowledged_at is None
    assert intake.delivery_failed_at is None


def test_acknowledging_keeps_the_first_time_and_a_new_red_flag_reopens() -> None:
    intake = _intake(IntakeStatus.DELIVERED)
    intake.delivered_at = T0
    lifecycle.acknowledged(intake, T0 + timedelta(minutes=1))
    lifecycle.acknowledged(intake, T0 + timedelta(minutes=2))
    assert intake.acknowledged_at == T0 + timedelta(minutes=1)
    lifecycle.reviewed(intake, T0 + timedelta(minutes=3))
    lifecycle.reopened(intake)
    assert intake.status is IntakeStatus.DELIVERED
    assert intake.acknowledged_at is None and intake.reviewed_at is None
    undelivered = _intake(IntakeStatus.ACKNOWLEDGED)
    lifecycle.reopened(undelivered)
    assert undelivered.status is IntakeStatus.TRIAGED


def test_every_status_has_its_time_column(sqlite_url: str) -> None:
    from intake.storage import queries
    from intake.storage.db import session_factory

    assert set(lifecycle.STATUS_TIME) == set(IntakeStatus)
    columns = set(Intake.__table__.columns.keys())
    assert set(lifecycle.STATUS_TIME.values()) <= columns
    # The worklist's "since" is the time column of the status the intake is in.
    intake = _intake(IntakeStatus.RECEIVED)
    lifecycle.triaged(intake, T0 + timedelta(seconds=1))
    lifecycle.delivery_failed(intake, T0 + timedelta(seconds=5), "HTTP 503")
    sessions = session_factory(sqlite_url)
    with sessions.begin() as s:
        s.add(intake)
    with sessions() as s:
        since = s.execute(select(queries.status_since())).scalar_one()
    assert since == T0 + timedelta(seconds=5)


def test_the_stored_status_reads_back_typed(sqlite_url: str) -> None:
    from intake.storage.db import session_factory

    sessions = session_factory(sqlite_url)
    with sessions.begin() as s:
        s.add(_intake(IntakeStatus.DELIVERY_FAILED))
    with sessions() as s:
        status = s.execute(select(Intake.status)).scalar_one()
    assert status is IntakeStatus.DELIVERY_FAILED


def test_nothing_but_the_lifecycle_assigns_an_intake_status() -> None:
    """``intake.status = ...`` (or a tuple assignment to it) appears in
    ``intake/lifecycle.py`` only."""
    offenders = []
    for path in sorted((REPO / "intake").rglob("*.py")):
        if path.name == "lifecycle.py" or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    targets += target.elts if isinstance(target, ast.Tuple) else [target]
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if (isinstance(target, ast.Attribute) and target.attr == "status"
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "intake"):
                    offenders.append(f"{Path(path).relative_to(REPO)}:{node.lineno}")
    assert offenders == []
