"""The read side shared by every screen and API: an intake's triage records and where
each intake stands with the record system (one vocabulary).

"The newest triage record" is written here only, in the two shapes its two uses need
(both answered from the (intake_id, revision) index):

* :func:`newest_records`, for a query that filters or sorts the whole history by the
  result (the worklist): the record no later revision of the same intake exists for, a
  NOT EXISTS (anti-join) that PostgreSQL plans as one join, about 5x faster at 10,000
  intakes than a per-row ``max()``;
* :func:`newest_revision` (``revision = (SELECT max(...))`` correlated to the outer
  intake), for a query that first picks a few intakes by their own columns (the desk's
  last 24 hours, the FHIR API's search by patient or identifier): it reads the index once
  per picked intake, where the anti-join would first be computed over every intake (at
  100,000 intakes on PostgreSQL the desk's query takes p50 2-5 ms this way, 7-13 ms with
  the anti-join: ``bench/bench_desk_query.py``).

One intake's records are read by :func:`newest_record`, :func:`record_at` and
:func:`records_newest_first`. Nothing here writes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from intake.lifecycle import STATUS_TIME
from intake.storage.models import DELIVERY_KINDS, Intake, Job, JobState, TriageRecord

# --- triage records -------------------------------------------------------------------


def newest_records() -> Any:
    """A subquery of each intake's newest triage record (columns ``id``, ``intake_id``,
    ``revision``, ``urgency``, ``department``, ``flag_codes``), to join on."""
    newer = aliased(TriageRecord)
    return (select(TriageRecord.id, TriageRecord.intake_id, TriageRecord.revision,
                   TriageRecord.urgency, TriageRecord.department, TriageRecord.flag_codes)
            .where(~exists().where(newer.intake_id == TriageRecord.intake_id,
                                   newer.revision > TriageRecord.revision))
            .subquery("newest"))


def newest_revision() -> Any:
    """The revision of the newest triage record of the outer query's intake (a
    correlated scalar subquery), to join :class:`TriageRecord` on."""
    return (select(func.max(TriageRecord.revision))
            .where(TriageRecord.intake_id == Intake.id).correlate(Intake)
            .scalar_subquery())


def is_newest_record_of_intake() -> ColumnElement[bool]:
    """The join condition: this :class:`TriageRecord` is the intake's newest."""
    return and_(TriageRecord.intake_id == Intake.id,
                TriageRecord.revision == newest_revision())


def with_newest_record() -> Any:
    """(intake, its newest triage record) for every triaged intake, as a select to add
    criteria on the intake to."""
    return select(Intake, TriageRecord).join(TriageRecord, is_newest_record_of_intake())


def newest_record(session: Session, intake_id: str) -> TriageRecord | None:
    """The intake's newest triage record (None before its first triage)."""
    return session.execute(
        select(TriageRecord).where(TriageRecord.intake_id == intake_id)
        .order_by(TriageRecord.revision.desc()).limit(1)
    ).scalar_one_or_none()


def newest_urgency(session: Session, intake_id: str) -> str | None:
    """The urgency of the intake's newest triage record (None before its first)."""
    return session.execute(
        select(TriageRecord.urgency).where(TriageRecord.intake_id == intake_id)
        .order_by(TriageRecord.revision.desc()).limit(1)
    ).scalar_one_or_none()


def record_at(session: Session, intake_id: str, revision: int) -> TriageRecord | None:
    """The triage record of one revision of the intake (None: not triaged (yet))."""
    return session.execute(
        select(TriageRecord).where(TriageRecord.intake_id == intake_id,
                                   TriageRecord.revision == revision)
    ).scalar_one_or_none()


def records_newest_first(session: Session, intake_id: str,
                         up_to: int | None = None) -> list[TriageRecord]:
    """Every triage record of the intake (up to revision ``up_to``), newest first."""
    query = select(TriageRecord).where(TriageRecord.intake_id == intake_id)
    if up_to is not None:
        query = query.where(TriageRecord.revision <= up_to)
    return list(session.execute(query.order_by(TriageRecord.revision.desc())).scalars())


def status_since() -> Any:
    """When the intake entered its current status (SQL: the status's time column, by
    ``lifecycle.STATUS_TIME``)."""
    return case({status.value: getattr(Intake, column)
                 for status, column in STATUS_TIME.items()}, value=Intake.status)


# --- delivery state ---------------------------------------------------------------------


class DeliveryState(enum.StrEnum):
    """Where an intake stands with the record system (the API's ``delivery.state``)."""

    NOT_STARTED = "not_started"  # nothing to send yet: not triaged
    PENDING = "pending"  # a delivery (first or write-back) is owed
    DELIVERED = "delivered"  # the newest delivery landed
    FAILED = "failed"  # the newest delivery was refused or ran out of attempts


@dataclass(frozen=True)
class Delivery:
    """An intake's delivery state with what staff see beside it: when it was delivered
    or failed (``at``), the record system's rejection or the last error (``reason``),
    and the attempts made by the newest delivery (``attempts``)."""

    state: DeliveryState
    at: datetime | None = None
    reason: str | None = None
    attempts: int = 0


# An intake's (delivered_at, delivery_failed_at, status_reason), as the caller has them.
Outcomes = tuple[datetime | None, datetime | None, str | None]


def delivery_states(session: Session,
                    intakes: Iterable[tuple[str, Outcomes]]) -> dict[str, Delivery]:
    """The delivery state of each intake, from its delivery jobs (one query for all).

    ``intakes``: (id, (delivered_at, delivery_failed_at, status_reason)). A pending job
    means a delivery is owed; otherwise the newest job says delivered or failed; no job
    means nothing was triaged yet. Superseded jobs were carried by a later delivery and
    say nothing of their own.
    """
    given: Sequence[tuple[str, Outcomes]] = list(intakes)
    ids = [i for i, _ in given]
    jobs: dict[str, list[tuple[int, str, int]]] = {i: [] for i in ids}
    if ids:
        for intake_id, job_id, job_state, attempts in session.execute(
            select(Job.intake_id, Job.id, Job.state, Job.attempts)
            .where(Job.intake_id.in_(ids), Job.kind.in_(DELIVERY_KINDS),
                   Job.state != JobState.SUPERSEDED)
        ).all():
            jobs[intake_id].append((int(job_id), str(job_state), int(attempts)))
    out: dict[str, Delivery] = {}
    for intake_id, (delivered_at, failed_at, reason) in given:
        own = sorted(jobs[intake_id])
        pending = [j for j in own if j[1] == JobState.PENDING]
        if pending:
            out[intake_id] = Delivery(DeliveryState.PENDING,
                                      attempts=max(j[2] for j in pending))
        elif not own:
            out[intake_id] = Delivery(DeliveryState.NOT_STARTED)
        elif own[-1][1] == JobState.FAILED:
            out[intake_id] = Delivery(DeliveryState.FAILED, failed_at, reason, own[-1][2])
        else:
            out[intake_id] = Delivery(DeliveryState.DELIVERED, delivered_at,
                                      attempts=own[-1][2])
    return out


def delivery_of(session: Session, intake: Intake) -> Delivery:
    """One intake's delivery state."""
    return delivery_states(session, [(intake.id, (intake.delivered_at,
                                                  intake.delivery_failed_at,
                                                  intake.status_reason))])[intake.id]
