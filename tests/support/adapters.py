"""Record systems that answer from a script, for the pipeline's tests (the real FHIR
server is in tests/fhir), and one delivery step as a worker runs it.

Each has the delivery adapter's shape (``name`` and ``deliver``) and a name of its own,
which the delivery attempts record.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake import pipeline
from intake.delivery.base import AttemptResult, Outcome
from intake.delivery.folder import FolderAdapter
from intake.delivery.service import build_bundle


def attempt_result(outcome: Outcome, **kw: Any) -> AttemptResult:
    """An attempt that started and finished now, at the record system "ehr"."""
    now = datetime.now(UTC)
    return AttemptResult(outcome=outcome, started_at=now, finished_at=now, target="ehr", **kw)


class Scripted:
    """Answers from a script, in order; ``calls`` says for each call whether it came
    after an ambiguous attempt."""

    name = "scripted"

    def __init__(self, *outcomes: AttemptResult) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[bool] = []

    def deliver(self, bundle: dict[str, Any], *, business_id: str,
                after_ambiguous: bool) -> AttemptResult:
        self.calls.append(after_ambiguous)
        return self.outcomes.pop(0)


class Recording:
    """Accepts and keeps every bundle it is given; optionally runs a callback during the
    send (a practitioner acting while the record system is slow)."""

    name = "recording"

    def __init__(self, during: Callable[[], Any] | None = None) -> None:
        self.bundles: list[dict[str, Any]] = []
        self.during = during

    def deliver(self, bundle: dict[str, Any], *, business_id: str,
                after_ambiguous: bool) -> AttemptResult:
        self.bundles.append(bundle)
        if self.during is not None:
            during, self.during = self.during, None
            during()
        return attempt_result(Outcome.DELIVERED, http_status=200)


class Rejecting:
    """Refuses every bundle: by default with an OperationOutcome (a 422)."""

    name = "rejecting"

    def __init__(self, http_status: int = 422,
                 reason: str = "HTTP 422: Patient identifier unknown") -> None:
        self.http_status = http_status
        self.reason = reason

    def deliver(self, bundle: dict[str, Any], *, business_id: str,
                after_ambiguous: bool) -> AttemptResult:
        return attempt_result(Outcome.REJECTED, http_status=self.http_status, reason=self.reason)


class Unreachable:
    """Does not answer: every attempt is a transient failure."""

    name = "unreachable"

    def deliver(self, bundle: dict[str, Any], *, business_id: str,
                after_ambiguous: bool) -> AttemptResult:
        return attempt_result(Outcome.TRANSIENT, reason="connection refused")


def deliver_once(sessions: sessionmaker[Session], settings: Any, intake_id: str,
                 adapter: Any = None) -> pipeline.DeliveryStep:
    """One delivery attempt as the worker makes it (to the outbox folder unless another
    adapter is given)."""
    return pipeline.run_delivery(
        sessions, intake_id, settings=settings,
        adapter=adapter or FolderAdapter(settings.outbox_dir), build_bundle=build_bundle,
        backoff=pipeline.default_backoff(settings.retry_backoff_cap))
