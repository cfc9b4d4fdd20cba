"""Fixtures of the front-desk alert tests (real SQLite and PostgreSQL; Flask test client).

Intakes are made with the pipeline's own functions (submit, then triage with a given
clock), no worker needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.storage.models import utcnow
from support import case


@pytest.fixture
def alerts_app(make_app: Callable[..., Any], database_url: str) -> Any:
    """The app on SQLite and on PostgreSQL, no broker (triage is run by the test)."""
    return make_app(database_url)


@pytest.fixture
def board_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    """The app on SQLite, no broker: for the web side (the database does not change it)."""
    return make_app(sqlite_url)


Submit = Callable[..., str]


@pytest.fixture
def submit() -> Submit:
    """Factory: an intake of a shared case (or of given answers) received at ``at``
    (default now) and, unless ``triage`` is False, triaged with the same clock.
    Returns the intake id."""

    def make(app: Any, answers: str | Mapping[str, Any], *,
             record_number: str | None = "MRN-A1",
             demographics: Mapping[str, Any] | None = None, at: datetime | None = None,
             device_id: int | None = None, triage: bool = True) -> str:
        values = case(answers)["answers"] if isinstance(answers, str) else dict(answers)
        when = at or utcnow()
        sessions = state(app).sessions
        with sessions.begin() as s:
            intake_id = str(pipeline.submit_intake(
                s, answers=parse_simple_answers(values), source="kiosk",
                record_number=record_number, demographics=demographics,
                device_id=device_id, clock=lambda: when).intake.id)
        if triage:
            with sessions.begin() as s:
                assert pipeline.run_triage(s, intake_id, clock=lambda: when).status \
                    == "triaged"
        return intake_id

    return make
