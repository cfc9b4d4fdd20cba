"""What a practitioner does to an intake, one function per action (STYLE 10).

Each action runs in the caller's transaction, takes the triage revision the practitioner
was looking at (a form field) and refuses with :class:`StaleRevision` when the intake was
re-triaged since, so nobody acknowledges a flag list they have not seen. Each stores a
:class:`ReviewAction` (numbered per intake), an audit event (codes and ids only; the
reason typed for a department change stays in the action row), and a write-back job:

* acknowledge a flag, change the department, mark reviewed: a ``writeback`` job whose
  delivery sends the intake's current state (``intake.pipeline.run_delivery``);
* examination findings: a new revision of the answers and a triage job for it (the
  earlier result stays stored); the delivery after that triage writes everything back.

After the commit, :func:`dispatch` hands the job to the broker; when the broker is away
the sweeper does it later, as for new intakes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake import audit, lifecycle
from intake.alerts.services import close_for_intake as close_alerts
from intake.clinical import (
    build_questionnaire_response,
    parse_questionnaire_response,
    staff_only_link_ids,
)
from intake.errors import IntakeError
from intake.storage import queries
from intake.storage.models import (
    Intake,
    Job,
    JobKind,
    JobState,
    ReviewAction,
    ReviewKind,
    TriageRecord,
)

if TYPE_CHECKING:
    from intake import AppState

log = logging.getLogger(__name__)

REASON_MAX = 500


class ReviewError(IntakeError, ValueError):
    """The action cannot be taken: the subclass (its ``code``) says why, the message says
    it in English for logs and tests (no patient data in either). A refusal without a
    subclass of its own is shown with its message (``err_action``)."""

    code = "action"


class NotFound(ReviewError):
    """No intake with that id."""

    code = "not_found"


class StaleRevision(ReviewError):
    """The intake was re-triaged after the practitioner opened it."""

    code = "stale"


class NotTriaged(ReviewError):
    """The intake has no triage result yet."""

    code = "not_triaged"


class FlagNotFired(ReviewError):
    """The flag to acknowledge is not in the current result."""

    code = "flag_not_fired"


class UnknownDepartment(ReviewError):
    """The department is not in the department CodeSystem."""

    code = "department"


class NoReason(ReviewError):
    """A department change without a reason."""

    code = "reason"


class ReasonTooLong(ReviewError):
    """A reason longer than :data:`REASON_MAX` characters."""

    code = "reason_long"


class SameDepartment(ReviewError):
    """The department asked for is the one the intake already has."""

    code = "same_department"


class NoFindings(ReviewError):
    """Examination findings without a single item."""

    code = "no_findings"


class BadFinding(ReviewError):
    """A finding that is not a staff examination item, or not yes or no."""

    code = "exam_value"


class FindingsUnchanged(ReviewError):
    """Every finding given is already recorded."""

    code = "findings_same"


class RedFlagsFirst(ReviewError):
    """Marked reviewed before every red flag was acknowledged (``codes``: those left)."""

    code = "red_first"


@dataclass(frozen=True)
class Actor:
    """The signed-in practitioner taking the action."""

    user_id: int
    name: str


@dataclass(frozen=True)
class ActionDone:
    """What an action stored; :func:`dispatch` sends the job it created."""

    intake_id: str
    seq: int
    kind: str
    created: bool  # False: the same action was already recorded (a double submit)
    job_kind: JobKind | None = None
    job_revision: int | None = None


@lru_cache(maxsize=1)
def department_codes() -> frozenset[str]:
    from intake.clinical.terminology import codes
    from intake.constants import CS_DEPARTMENT

    return frozenset(codes(CS_DEPARTMENT))


def acknowledged_codes(session: Session, intake_id: str) -> dict[str, datetime]:
    """Flag code -> when it was first acknowledged (kept across re-triage: a flag that
    still fires after examination findings has still been seen)."""
    rows = session.execute(
        select(ReviewAction.flag_code, ReviewAction.at)
        .where(ReviewAction.intake_id == intake_id,
               ReviewAction.kind == ReviewKind.ACKNOWLEDGE_FLAG)
        .order_by(ReviewAction.seq)
    ).all()
    out: dict[str, datetime] = {}
    for code, at in rows:
        if code is not None:
            out.setdefault(code, at)
    return out


def red_flag_codes(result: TriageRecord) -> list[str]:
    return [f.code for f in result.triage.flags if f.red_flag]


def effective_department(intake: Intake, result: TriageRecord) -> str:
    return intake.department_override or result.department


def _load(session: Session, intake_id: str, revision: int) -> tuple[Intake, TriageRecord]:
    intake = session.get(Intake, intake_id, with_for_update=True)
    if intake is None:
        raise NotFound("no such intake")
    if revision != intake.revision:
        raise StaleRevision("this intake was re-triaged after you opened it: reload the page "
                            "and check the new result")
    result = queries.record_at(session, intake_id, intake.revision)
    if result is None:
        raise NotTriaged("this intake has not been triaged yet: wait for the result")
    return intake, result


def _store(session: Session, intake: Intake, kind: ReviewKind, actor: Actor, now: datetime,
           *, job: JobKind | None, detail: Mapping[str, Any], **fields: Any) -> ActionDone:
    intake.review_seq += 1
    seq = intake.review_seq
    session.add(ReviewAction(intake_id=intake.id, seq=seq, kind=kind.value,
                             revision=fields.pop("revision", intake.revision),
                             user_id=actor.user_id, at=now, **fields))
    job_revision: int | None = None
    if job is JobKind.WRITEBACK:
        job_revision = seq
    elif job is JobKind.TRIAGE:
        job_revision = intake.revision
    if job is not None and job_revision is not None:
        session.add(Job(intake_id=intake.id, kind=job, revision=job_revision,
                        state=JobState.PENDING, created_at=now))
    session.flush()
    audit.record(session, actor=actor.name, action=f"review.{kind.value}",
                 entity_type="intake", entity_id=intake.id,
                 detail={"seq": seq, "revision": intake.revision, **detail})
    return ActionDone(intake.id, seq, kind.value, True, job, job_revision)


def acknowledge_flag(session: Session, intake_id: str, flag_code: str, *, actor: Actor,
                     revision: int, now: datetime) -> ActionDone:
    """The practitioner has seen this flag. When every red flag of the current result
    is acknowledged the intake is ``acknowledged`` and its front-desk alerts are done
    (the boards stop sounding)."""
    intake, result = _load(session, intake_id, revision)
    fired = result.triage.flag_codes
    if flag_code not in fired:
        raise FlagNotFired(f"flag {flag_code} did not fire for this intake")
    acked = acknowledged_codes(session, intake_id)
    if flag_code in acked:
        return ActionDone(intake_id, intake.review_seq, ReviewKind.ACKNOWLEDGE_FLAG.value,
                          False)
    done = _store(session, intake, ReviewKind.ACKNOWLEDGE_FLAG, actor, now,
                  job=JobKind.WRITEBACK, detail={"flag": flag_code}, flag_code=flag_code)
    acked[flag_code] = now
    red = red_flag_codes(result)
    if all(code in acked for code in red):
        lifecycle.acknowledged(intake, now)
        if red:
            # The practitioner has every red flag: the boards stop sounding for this
            # patient. (Without a red flag, a same-day alert stays: someone must still
            # speak with the patient.)
            close_alerts(session, intake_id, by=actor.name, via="review", now=now)
    return done


def change_department(session: Session, intake_id: str, department: str, reason: str, *,
                      actor: Actor, revision: int, now: datetime) -> ActionDone:
    """Send the patient to another department than the triage suggested; the reason is
    required (it goes to the record system with the request)."""
    intake, result = _load(session, intake_id, revision)
    if department not in department_codes():
        raise UnknownDepartment(f"unknown department {department!r}")
    reason = " ".join(reason.split())
    if not reason:
        raise NoReason("give a reason for the change")
    if len(reason) > REASON_MAX:
        raise ReasonTooLong(f"the reason is longer than {REASON_MAX} characters")
    previous = effective_department(intake, result)
    if department == previous:
        raise SameDepartment("that is already the department")
    done = _store(session, intake, ReviewKind.CHANGE_DEPARTMENT, actor, now,
                  job=JobKind.WRITEBACK, detail={"department": department,
                                                 "previous": previous},
                  department=department, previous_department=previous, reason=reason)
    intake.department_override = department
    return done


def add_exam_findings(session: Session, intake_id: str, findings: Mapping[str, object], *,
                      actor: Actor, revision: int, now: datetime) -> ActionDone:
    """Record examination items (SPEC section 2, staff only) and re-triage: the answers
    get a new revision and a triage job; the earlier result stays as it was."""
    intake, _ = _load(session, intake_id, revision)
    staff = staff_only_link_ids()
    if not findings:
        raise NoFindings("enter at least one examination finding")
    for key, value in findings.items():
        if key not in staff:
            raise BadFinding(f"{key} is not an examination item")
        if not isinstance(value, bool):
            raise BadFinding(f"{key} must be yes or no")
    answers = parse_questionnaire_response(intake.questionnaire_response)
    if all(answers.get(k) == v for k, v in findings.items()):
        raise FindingsUnchanged("these findings are already recorded")
    updated = answers.replace(**dict(findings))
    old_qr = intake.questionnaire_response
    intake.questionnaire_response = build_questionnaire_response(
        updated, identifier=intake.business_id, subject_reference=None,
        authored=old_qr.get("authored"), status=old_qr.get("status", "completed"))
    intake.revision += 1
    return _store(session, intake, ReviewKind.EXAM_FINDINGS, actor, now,
                  job=JobKind.TRIAGE, detail={"items": sorted(findings)},
                  revision=intake.revision, findings=dict(findings))


def mark_reviewed(session: Session, intake_id: str, *, actor: Actor, revision: int,
                  now: datetime) -> ActionDone:
    """The review is finished; the record system's review Task is completed. Every red
    flag must be acknowledged first."""
    intake, result = _load(session, intake_id, revision)
    acked = acknowledged_codes(session, intake_id)
    missing = [c for c in red_flag_codes(result) if c not in acked]
    if missing:
        codes = ", ".join(missing)
        raise RedFlagsFirst("acknowledge every red flag first: " + codes, codes=codes)
    if intake.reviewed_at is not None:
        return ActionDone(intake_id, intake.review_seq, ReviewKind.REVIEWED.value, False)
    done = _store(session, intake, ReviewKind.REVIEWED, actor, now, job=JobKind.WRITEBACK,
                  detail={})
    lifecycle.reviewed(intake, now)
    return done


def dispatch(st: AppState, done: ActionDone) -> bool:
    """After the commit: hand the action's job to the broker (False when it is away;
    the sweeper sends it later)."""
    if done.created:
        # Other practitioners' screens read the change at once (they would within a
        # second anyway).
        from intake.live.notify import publish

        publish(st.settings.redis_url, "change", intake=done.intake_id)
    if not done.created or done.job_kind is None or done.job_revision is None:
        return False
    from intake.dispatch import dispatch as send_job

    return send_job(st.celery, st.sessions, done.intake_id, done.job_kind,
                    done.job_revision)
