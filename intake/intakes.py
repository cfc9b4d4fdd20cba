"""Submitting an intake: the one use case behind the JSON API and the FHIR API.

Both web layers validate their own input format, then call :func:`submit_and_enqueue`,
so every intake takes the same path (README, "How an intake flows"):

1. the intake and its pending triage job are committed in **one** transaction;
2. only after the commit is the triage task handed to the broker (ids only, through
   :func:`intake.dispatch.dispatch`), and the job is marked as enqueued. A broker that
   is down or not configured leaves the job pending for the sweeper: the submission
   still succeeds, nothing is lost.

Idempotency: a submission with an ``idempotency_key`` already stored returns the
earlier intake (``created`` False), or raises
:class:`~intake.pipeline.IdempotencyConflict` when its fingerprint differs. Two
concurrent submissions with one new key race on the unique column; the loser finds
the winner's intake the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake import pipeline
from intake.clinical import Answers
from intake.dispatch import dispatch_triage
from intake.storage.models import Intake

if TYPE_CHECKING:
    from celery import Celery


@dataclass(frozen=True)
class Accepted:
    """What a web layer tells its client about a submission."""

    intake_id: str
    business_id: str
    status: str
    created: bool  # False: an earlier submission with the same idempotency key


def submit_and_enqueue(
    sessions: sessionmaker[Session],
    celery: Celery | None,
    *,
    answers: Answers,
    source: str,
    actor: str,
    record_number: str | None = None,
    demographics: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    status: str = "completed",
    authored: str | None = None,
) -> Accepted:
    """Store the intake with its pending triage job (one transaction), then enqueue.

    Raises :class:`~intake.pipeline.IdempotencyConflict` when ``idempotency_key`` was
    used before with another ``fingerprint``; nothing is stored then.
    """
    try:
        with sessions.begin() as session:
            submitted = pipeline.submit_intake(
                session, answers=answers, source=source, record_number=record_number,
                demographics=demographics, idempotency_key=idempotency_key,
                fingerprint=fingerprint, actor=actor, status=status, authored=authored,
            )
            accepted = Accepted(submitted.intake.id, submitted.intake.business_id,
                                submitted.intake.status, submitted.created)
    except IntegrityError:
        # Two requests with one new key raced; the other one stored it.
        if idempotency_key is None:
            raise
        accepted = find_by_key(sessions, idempotency_key, fingerprint)

    if accepted.created:
        dispatch_triage(celery, sessions, accepted.intake_id)
    return accepted


def find_by_key(sessions: sessionmaker[Session], idempotency_key: str,
                fingerprint: str | None) -> Accepted:
    """The intake stored under ``idempotency_key`` (which must exist)."""
    with sessions() as session:
        existing = session.execute(
            select(Intake).where(Intake.idempotency_key == idempotency_key)).scalar_one()
        if fingerprint is not None and existing.request_fingerprint != fingerprint:
            raise pipeline.IdempotencyConflict()
        return Accepted(existing.id, existing.business_id, existing.status, False)

