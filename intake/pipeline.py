"""The life of an intake, one function per step, shared by the web app and the workers.

Every step is safe to run twice: triage writes on the natural key
(intake, revision) and refuses a second result; delivery takes the intake's delivery
lease (``intakes.delivery_lease_until``: one delivery of an intake at a time, whichever
job it serves) and checks its jobs' state before sending; the sweeper claims each
re-enqueue with a compare-and-set on the job row and leaves the delivery jobs of a
leased intake alone. That is what makes ``acks_late`` and the sweeper's re-enqueues
harmless. Status changes go through ``intake.lifecycle``; handing a committed job to
the broker through ``intake.dispatch``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake import audit, lifecycle
from intake.alerts.services import raise_for_failure as raise_alert_for_failure
from intake.alerts.services import raise_for_result as raise_alert
from intake.clinical import (
    AnswerError,
    Answers,
    RuleSetError,
    TriageResult,
    build_questionnaire_response,
    evaluate,
    load_ruleset,
    parse_questionnaire_response,
)
from intake.clinical.questionnaire import QuestionnaireError
from intake.config import Settings
from intake.constants import QUESTIONNAIRE_URL, QUESTIONNAIRE_VERSION
from intake.delivery.base import AttemptResult, DeliveryAdapter, Outcome
from intake.storage import queries
from intake.storage.models import (
    DELIVERY_KINDS,
    DeliveryAttempt,
    Intake,
    Job,
    JobKind,
    JobState,
    TriageRecord,
    utcnow,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SYSTEM = "system"


class IdempotencyConflict(Exception):
    """An Idempotency-Key was reused with a different request body."""


@dataclass(frozen=True)
class Submitted:
    intake: Intake
    created: bool  # False when an earlier submission with the same key was found
    job_revision: int


def request_fingerprint(payload: Mapping[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()


def new_business_id(intake_id: str, received_at: datetime) -> str:
    """Readable and derived from the intake: date of receipt and 10 hex digits of its id."""
    return f"{received_at:%Y%m%d}-{uuid.UUID(intake_id).hex[:10].upper()}"


def submit_intake(
    session: Session,
    *,
    answers: Answers,
    source: str,
    record_number: str | None = None,
    demographics: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    actor: str = "api",
    clock: Clock = utcnow,
    status: str = "completed",
    authored: str | None = None,
    device_id: int | None = None,
) -> Submitted:
    """Store a new intake and its pending triage job in the caller's transaction.

    The caller commits, then enqueues the triage task (``intake.intakes`` does both for
    the web layers). With an ``idempotency_key`` already used, the earlier intake is
    returned (or :class:`IdempotencyConflict` when the body differs). ``status`` and
    ``authored`` carry what a FHIR client said about its QuestionnaireResponse
    (``authored`` defaults to the time of receipt); ``device_id`` is the enrolled tablet
    it was answered on (named on the front desk's alerts).
    """
    if idempotency_key is not None:
        existing = session.execute(
            select(Intake).where(Intake.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        if existing is not None:
            if fingerprint is not None and existing.request_fingerprint != fingerprint:
                raise IdempotencyConflict()
            return Submitted(existing, False, existing.revision)

    now = clock()
    intake_id = str(uuid.uuid4())
    business_id = new_business_id(intake_id, now)
    qr = build_questionnaire_response(
        answers,
        identifier=business_id,
        subject_reference=None,
        authored=authored or now.isoformat(timespec="seconds"),
        status=status,
    )
    intake = Intake(
        id=intake_id,
        business_id=business_id,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        source=source,
        questionnaire_url=QUESTIONNAIRE_URL,
        questionnaire_version=QUESTIONNAIRE_VERSION,
        questionnaire_response=qr,
        patient_record_number=record_number,
        patient_demographics=dict(demographics) if demographics else None,
        revision=1,
        device_id=device_id,
    )
    lifecycle.received(intake, now)
    session.add(intake)
    session.add(Job(intake_id=intake_id, kind=JobKind.TRIAGE, revision=1,
                    state=JobState.PENDING, created_at=now))
    session.flush()
    audit.record(session, actor=actor, action="intake.received", entity_type="intake",
                 entity_id=intake_id, detail={"source": source})
    return Submitted(intake, True, 1)


def mark_enqueued(session: Session, intake_id: str, kind: JobKind, revision: int,
                  clock: Clock = utcnow) -> None:
    session.execute(
        update(Job)
        .where(Job.intake_id == intake_id, Job.kind == kind, Job.revision == revision,
               Job.state == JobState.PENDING)
        .values(enqueued_at=clock())
    )


# --- triage -----------------------------------------------------------------


@dataclass(frozen=True)
class TriageOutcome:
    """What the triage step did; ``deliver_revision`` is set when a delivery is owed.
    An alert it raised (emergency or same day) is in the same transaction."""

    status: str  # "triaged", "already", "failed", "missing"
    deliver_revision: int | None = None
    urgency: str | None = None


def run_triage(session: Session, intake_id: str, *, clock: Clock = utcnow) -> TriageOutcome:
    """Triage the intake's current revision once; a second run changes nothing."""
    intake = session.get(Intake, intake_id)
    if intake is None:
        return TriageOutcome("missing")
    revision = intake.revision
    existing = queries.record_at(session, intake_id, revision)
    if existing is not None:
        _finish_job(session, intake_id, JobKind.TRIAGE, revision, clock())
        _ensure_job(session, intake_id, JobKind.DELIVER, revision, clock())
        return TriageOutcome("already", revision, existing.urgency)

    try:
        answers = parse_questionnaire_response(intake.questionnaire_response)
        result = evaluate(answers, load_ruleset())
    except (AnswerError, QuestionnaireError, RuleSetError) as exc:
        # The stored answers cannot be read by this rule set, or the questionnaire or
        # the rule set does not load: a defect (answers were validated at submission).
        # Keep the intake visible on the worklist and tell the desk, instead of
        # dropping it. (Any other error is a bug of another kind: the task fails, the
        # job stays pending and the sweeper sends it again.)
        now = clock()
        lifecycle.triage_failed(intake, now, f"triage failed: {type(exc).__name__}")
        _finish_job(session, intake_id, JobKind.TRIAGE, revision, now, JobState.FAILED)
        # The tablet tells the patient a staff member will speak with them: the desk
        # must know.
        raise_alert_for_failure(session, intake, revision, now)
        audit.record(session, actor=SYSTEM, action="intake.triage_failed",
                     entity_type="intake", entity_id=intake_id,
                     detail={"revision": revision, "error": type(exc).__name__})
        log.error("triage failed for intake %s (%s)", intake_id, type(exc).__name__)
        return TriageOutcome("failed")

    now = clock()
    try:
        with session.begin_nested():
            session.add(TriageRecord(
                intake_id=intake_id, revision=revision, ruleset=result.ruleset,
                urgency=result.urgency, department=result.department,
                red_flag=result.red_flag, flag_codes=flag_codes(result),
                result=result.to_dict(), created_at=now,
            ))
    except IntegrityError:
        # A concurrent run stored this revision first; its result stands.
        return TriageOutcome("already", revision, result.urgency)
    lifecycle.triaged(intake, now)
    if revision > 1:
        _reopen_if_new_red_flags(session, intake, result)
    raise_alert(session, intake, revision, result, now)
    _finish_job(session, intake_id, JobKind.TRIAGE, revision, now)
    _ensure_job(session, intake_id, JobKind.DELIVER, revision, now)
    audit.record(session, actor=SYSTEM, action="intake.triaged", entity_type="intake",
                 entity_id=intake_id,
                 detail={"revision": revision, "ruleset": result.ruleset,
                         "urgency": result.urgency, "red_flag": result.red_flag})
    return TriageOutcome("triaged", revision, result.urgency)


def flag_codes(result: TriageResult) -> str:
    """",CODE1,CODE2," for the worklist's flag filter (a LIKE on ',CODE,')."""
    return ("," + "".join(f"{code}," for code in result.flag_codes))[:400]


def _reopen_if_new_red_flags(session: Session, intake: Intake,
                             result: TriageResult) -> None:
    """Examination findings fired a red flag nobody has acknowledged: the intake is
    open again (the desk alerts, the review Task goes back to in progress)."""
    from intake.storage.models import ReviewAction, ReviewKind

    acked = set(session.execute(
        select(ReviewAction.flag_code).where(ReviewAction.intake_id == intake.id,
                                             ReviewAction.kind == ReviewKind.ACKNOWLEDGE_FLAG)
    ).scalars())
    new_red = [f.code for f in result.flags if f.red_flag and f.code not in acked]
    if new_red:
        lifecycle.reopened(intake)


def _finish_job(session: Session, intake_id: str, kind: JobKind, revision: int,
                now: datetime, state: JobState = JobState.DONE) -> None:
    session.execute(
        update(Job)
        .where(Job.intake_id == intake_id, Job.kind == kind, Job.revision == revision,
               Job.state == JobState.PENDING)
        .values(state=state, finished_at=now)
    )


def _ensure_job(session: Session, intake_id: str, kind: JobKind, revision: int,
                now: datetime) -> None:
    found = session.execute(
        select(Job.id).where(Job.intake_id == intake_id, Job.kind == kind,
                             Job.revision == revision)
    ).scalar_one_or_none()
    if found is None:
        session.add(Job(intake_id=intake_id, kind=kind, revision=revision,
                        state=JobState.PENDING, created_at=now))
        session.flush()


# --- delivery ---------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryStep:
    """What the delivery step did; ``retry_in`` is set when another attempt is owed."""

    status: str  # "delivered", "retry", "failed", "already", "busy", "missing", "not_ready"
    retry_in: float | None = None
    # Another change of the intake arrived during this attempt: deliver again now.
    again: bool = False


BundleBuilder = Callable[[Intake, TriageRecord, Settings], dict[str, Any]]
Backoff = Callable[[int, float | None], float]


def default_backoff(cap: float) -> Backoff:
    """Exponential backoff with full jitter, never sooner than Retry-After, never
    longer than ``cap``: the broker's visibility timeout is set well above ``cap``,
    so a waiting retry is never handed to a second worker. (A server asking for
    more than ``cap`` is asked again at ``cap``.)"""
    from intake.delivery.fhir_rest import backoff_delay

    rng = random.SystemRandom()

    def delay(attempt: int, retry_after: float | None) -> float:
        return min(cap, backoff_delay(max(attempt, 1), retry_after, cap=cap, rng=rng))

    return delay


def _rowcount(result: Any) -> int:
    """Rows matched by an UPDATE: how a compare-and-set learns whether it won."""
    count: int = result.rowcount
    return count


def claim_delivery(session: Session, intake_id: str, lease: float,
                   clock: Clock = utcnow) -> Job | None:
    """Take the intake's delivery lease and return the job this delivery serves: the
    newest pending delivery job (a triage result or a practitioner's change). None when
    another delivery of the intake holds the lease, or nothing is owed.

    The lease is on the intake row, not the job, because every delivery sends the
    intake's whole current state: two deliveries of different jobs of one intake running
    together could land in the wrong order and leave an older state in the record
    system. Older pending jobs are marked superseded: the state sent now carries them.
    """
    now = clock()
    pending = list(session.execute(
        select(Job).where(Job.intake_id == intake_id, Job.kind.in_(DELIVERY_KINDS),
                          Job.state == JobState.PENDING).order_by(Job.id)
    ).scalars())
    if not pending:
        return None
    claimed = _rowcount(session.execute(
        update(Intake)
        .where(Intake.id == intake_id,
               or_(Intake.delivery_lease_until.is_(None),
                   Intake.delivery_lease_until < now))
        .values(delivery_lease_until=now + timedelta(seconds=lease))
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        return None
    # Re-read under the lease: another delivery may have finished jobs meanwhile.
    pending = list(session.execute(
        select(Job).where(Job.intake_id == intake_id, Job.kind.in_(DELIVERY_KINDS),
                          Job.state == JobState.PENDING).order_by(Job.id)
        .execution_options(populate_existing=True)
    ).scalars())
    if not pending:
        _release(session, intake_id)
        return None
    job = pending[-1]
    for older in pending[:-1]:
        older.state, older.finished_at = JobState.SUPERSEDED, now
        job.ambiguous = job.ambiguous or older.ambiguous
    job.attempts += 1
    session.flush()
    return job


def _release(session: Session, intake_id: str) -> None:
    session.execute(update(Intake).where(Intake.id == intake_id)
                    .values(delivery_lease_until=None)
                    .execution_options(synchronize_session=False))


def run_delivery(
    sessions: sessionmaker[Session],
    intake_id: str,
    *,
    settings: Settings,
    adapter: DeliveryAdapter,
    build_bundle: BundleBuilder,
    backoff: Backoff,
    clock: Clock = utcnow,
) -> DeliveryStep:
    """One delivery attempt of the intake's current state (newest triage result and
    the practitioners' changes), serving every delivery job pending on it.

    Three short transactions: claim the lease; make the attempt (no
    transaction open while the record system is slow); record the attempt and
    the new state together.
    """
    with sessions.begin() as session:
        intake = session.get(Intake, intake_id)
        if intake is None:
            return DeliveryStep("missing")
        result = queries.newest_record(session, intake_id)
        if result is None:
            return DeliveryStep("not_ready")
        owed = session.execute(
            select(func.count()).select_from(Job)
            .where(Job.intake_id == intake_id, Job.kind.in_(DELIVERY_KINDS),
                   Job.state == JobState.PENDING)
        ).scalar_one()
        if not owed:
            return DeliveryStep("already")
        job = claim_delivery(session, intake_id, settings.delivery_lease, clock)
        if job is None:
            return DeliveryStep("busy")
        job_id, attempt_no, after_ambiguous = job.id, job.attempts, job.ambiguous
        revision = result.revision
        bundle = build_bundle(intake, result, settings)
        business_id = intake.business_id

    try:
        attempt = adapter.deliver(bundle, business_id=business_id,
                                  after_ambiguous=after_ambiguous)
    except Exception as exc:  # an adapter defect must not strand the lease
        now = clock()
        attempt = AttemptResult(outcome=Outcome.TRANSIENT, started_at=now, finished_at=now,
                                target=adapter.name, reason=f"adapter error: {type(exc).__name__}")
        log.exception("delivery adapter raised for intake %s", intake_id)

    with sessions.begin() as session:
        return _record_attempt(session, intake_id, revision, job_id, attempt_no, attempt,
                               adapter, settings, backoff, clock)


def _more_owed(session: Session, intake_id: str) -> bool:
    """A change made while this delivery was under way is still to be sent."""
    return bool(session.execute(
        select(func.count()).select_from(Job)
        .where(Job.intake_id == intake_id, Job.kind.in_(DELIVERY_KINDS),
               Job.state == JobState.PENDING)
    ).scalar_one())


def _record_attempt(session: Session, intake_id: str, revision: int, job_id: int,
                    attempt_no: int, attempt: AttemptResult, adapter: DeliveryAdapter,
                    settings: Settings, backoff: Backoff, clock: Clock) -> DeliveryStep:
    now = clock()
    session.add(DeliveryAttempt(
        intake_id=intake_id, revision=revision, attempt_no=attempt_no, adapter=adapter.name,
        target=attempt.target[:300], outcome=attempt.outcome, http_status=attempt.http_status,
        response=attempt.response, reason=attempt.reason, started_at=attempt.started_at,
        finished_at=attempt.finished_at,
    ))
    intake = session.get(Intake, intake_id)
    job = session.get(Job, job_id)
    assert intake is not None and job is not None
    _release(session, intake_id)
    if attempt.outcome == Outcome.DELIVERED:
        job.state, job.finished_at = JobState.DONE, now
        lifecycle.delivered(intake, now)
        audit.record(session, actor=SYSTEM, action="intake.delivered", entity_type="intake",
                     entity_id=intake_id,
                     detail={"revision": revision, "job": job.kind, "adapter": adapter.name,
                             "attempt": attempt_no})
        session.flush()
        return DeliveryStep("delivered", again=_more_owed(session, intake_id))

    give_up = (attempt.outcome == Outcome.REJECTED
               or job.attempts >= settings.delivery_max_attempts)
    if give_up:
        reason = attempt.reason or attempt.outcome.value
        if attempt.outcome != Outcome.REJECTED:
            reason = f"gave up after {job.attempts} attempts: {reason}"
        job.state, job.finished_at = JobState.FAILED, now
        lifecycle.delivery_failed(intake, now, reason)
        audit.record(session, actor=SYSTEM, action="intake.delivery_failed",
                     entity_type="intake", entity_id=intake_id,
                     detail={"revision": revision, "job": job.kind, "adapter": adapter.name,
                             "attempt": attempt_no, "http_status": attempt.http_status})
        log.warning("delivery of intake %s failed for good (%s)", intake_id,
                    attempt.http_status or attempt.outcome.value)
        session.flush()
        return DeliveryStep("failed", again=_more_owed(session, intake_id))

    delay = backoff(job.attempts, attempt.retry_after)
    job.ambiguous = job.ambiguous or attempt.ambiguous
    job.not_before = now + timedelta(seconds=delay)
    job.enqueued_at = now
    return DeliveryStep("retry", delay)


# --- sweeper ----------------------------------------------------------------


def _unleased(now: datetime) -> ColumnElement[bool]:
    """A triage job, or a delivery job of an intake whose delivery lease is free (a
    delivery under way serves every delivery job of its intake)."""
    held = exists().where(Intake.id == Job.intake_id, Intake.delivery_lease_until >= now)
    return or_(Job.kind == JobKind.TRIAGE, ~held)


def stuck_jobs(session: Session, *, stuck_after: float, clock: Clock = utcnow,
               limit: int = 500) -> list[tuple[int, str, str]]:
    """Pending jobs nobody has handed to the broker for ``stuck_after`` seconds:
    (job id, intake id, kind)."""
    now = clock()
    cutoff = now - timedelta(seconds=stuck_after)
    rows = session.execute(
        select(Job.id, Job.intake_id, Job.kind)
        .where(
            Job.state == JobState.PENDING,
            func.coalesce(Job.enqueued_at, Job.created_at) < cutoff,
            or_(Job.not_before.is_(None), Job.not_before < cutoff),
            _unleased(now),
        )
        .order_by(Job.id)
        .limit(limit)
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def claim_reenqueue(session: Session, job_id: int, *, stuck_after: float,
                    clock: Clock = utcnow) -> bool:
    """Compare-and-set: only one sweeper may re-enqueue a job per stuck window."""
    now = clock()
    cutoff = now - timedelta(seconds=stuck_after)
    changed = _rowcount(session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.PENDING,
               func.coalesce(Job.enqueued_at, Job.created_at) < cutoff,
               or_(Job.not_before.is_(None), Job.not_before < cutoff),
               _unleased(now))
        .values(enqueued_at=now)
        .execution_options(synchronize_session=False)
    ))
    return changed == 1


def sweep(sessions: sessionmaker[Session], send: Callable[[str, str], bool], *,
          stuck_after: float, clock: Clock = utcnow) -> dict[str, int]:
    """Re-enqueue every stuck job once; returns counts for the log and tests."""
    counts = {"found": 0, "claimed": 0, "sent": 0}
    with sessions() as session:
        candidates = stuck_jobs(session, stuck_after=stuck_after, clock=clock)
    counts["found"] = len(candidates)
    for job_id, intake_id, kind in candidates:
        with sessions.begin() as session:
            if not claim_reenqueue(session, job_id, stuck_after=stuck_after, clock=clock):
                continue
        counts["claimed"] += 1
        if send(kind, intake_id):
            counts["sent"] += 1
    return counts

