"""The contract between the delivery task and a record-system adapter.

An adapter makes **one** delivery attempt and classifies what happened; the
Celery task decides whether and when to retry (so a waiting retry never holds
a worker), records every attempt, and moves the intake to its final state.
Adapters take their side effects (HTTP session, clock, folder) as arguments so
tests can hand them a real local server.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Outcome(enum.StrEnum):
    """How one attempt ended."""

    DELIVERED = "delivered"  # the record system accepted the bundle
    TRANSIENT = "transient"  # try again later (connection error, 5xx, 429, timeout)
    REJECTED = "rejected"  # a 4xx with an OperationOutcome: stop, a person must look


@dataclass(frozen=True)
class AttemptResult:
    """One delivery attempt, as recorded in the delivery_attempts table."""

    outcome: Outcome
    started_at: datetime
    finished_at: datetime
    target: str  # folder path or base URL; never contains patient data
    http_status: int | None = None
    # What the record system answered: the transaction-response Bundle or the
    # OperationOutcome (JSON), or a short error text for connection failures.
    response: dict[str, Any] | str | None = None
    # A one-line reason a person can read on the worklist ("HTTP 422: ...").
    reason: str | None = None
    # Seconds the server asked us to wait (Retry-After), if any.
    retry_after: float | None = None
    # True when we cannot know whether the server applied the bundle
    # (timeout, dropped connection): the next attempt must search first.
    ambiguous: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class DeliveryAdapter(Protocol):
    """Sends one intake's transaction Bundle to a record system."""

    name: str

    def deliver(
        self, bundle: dict[str, Any], *, business_id: str, after_ambiguous: bool
    ) -> AttemptResult:
        """Make one attempt. ``after_ambiguous`` asks the adapter to check the
        server for an earlier, possibly applied attempt before re-sending."""
        ...
