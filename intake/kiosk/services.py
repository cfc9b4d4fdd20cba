"""Tablet sessions: drafts held on the server, submission, and ending abandoned sessions.

Shared by the web views and the worker's expiry sweeper. No Flask here: the caller passes
the database session, the clock and how to hand work to the broker.

Safety rule: a tablet session never ends silently with an emergency answer in it.
Whether the patient submits, staff or the patient stop, the tablet's idle timer fires, or
the tablet dies and the sweeper finds the draft, answers that meet a RED condition become
an intake (source ``kiosk-<reason>``) that is triaged, delivered and alerted like any
other. Only drafts without a RED condition are deleted.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from intake import audit, pipeline
from intake.clinical import evaluate, parse_simple_answers
from intake.config import Settings
from intake.kiosk.form import Section, TabletForm
from intake.lifecycle import IntakeStatus
from intake.pipeline import Clock
from intake.storage import queries
from intake.storage.models import Intake, KioskDraft, utcnow

log = logging.getLogger(__name__)

EndReason = Literal["timeout", "cancel", "replaced"]
SOURCE = "kiosk"
ACTOR = "kiosk"
IDEMPOTENCY_PREFIX = "kiosk:"


@dataclass(frozen=True)
class Timing:
    """The tablet's clocks, from the settings.

    The tablet warns after ``idle`` seconds without a touch and resets ``warning``
    seconds later. The server ends a draft itself only after a further grace period, so
    a working tablet always resets first and the sweeper only handles tablets that died,
    lost the network or were closed.
    """

    idle: float
    warning: float
    result_wait: float
    done: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Timing:
        return cls(settings.kiosk_idle_seconds, settings.kiosk_warning_seconds,
                   settings.kiosk_result_wait, settings.kiosk_done_seconds)

    @property
    def grace(self) -> float:
        return min(30.0, (self.idle + self.warning) / 2)

    @property
    def expiry(self) -> float:
        """Seconds after the last activity at which the server ends a draft."""
        return self.idle + self.warning + self.grace

    @property
    def heartbeat(self) -> float:
        """How often at most the tablet's script reports touches to the server."""
        return max(0.5, min(15.0, self.idle / 3))

    @property
    def done_window(self) -> float:
        """How long after submission the closing message may be shown again."""
        return self.result_wait + self.done + 60


def new_token() -> str:
    """The random secret of one tablet session (kept in the tablet's cookie)."""
    return secrets.token_urlsafe(32)


def draft_key(token: str) -> str:
    """Primary key of the draft: a hash, so the table cannot be replayed as cookies."""
    return hashlib.sha256(token.encode()).hexdigest()


def _entity(key: str) -> str:
    return "kiosk:" + key[:16]


def start_draft(session: Session, *, token: str, lang: str, record_number: str | None,
                demographics: Mapping[str, Any] | None, prefill: Mapping[str, Any],
                now: datetime, device_id: int | None = None) -> KioskDraft:
    """A new draft for a patient handed the tablet; ``prefill`` are answers staff knew;
    ``device_id`` the enrolled tablet (its name goes with any alert)."""
    answers = parse_simple_answers(dict(prefill)).to_simple()
    draft = KioskDraft(id=draft_key(token), lang=lang, patient_record_number=record_number,
                       patient_demographics=dict(demographics) if demographics else None,
                       answers=answers, step=0, version=1, created_at=now,
                       last_activity_at=now, device_id=device_id)
    session.add(draft)
    session.flush()
    audit.record(session, actor=ACTOR, action="kiosk.started", entity_type="kiosk_session",
                 entity_id=_entity(draft.id),
                 detail={"patient": "record_number" if record_number else "walk_in",
                         "lang": lang})
    return draft


def load_draft(session: Session, token: str | None, *, lock: bool = False) -> KioskDraft | None:
    """The draft of this tablet session; ``lock`` holds its row until the commit, so a
    second request (a double tap on Send) waits and then finds it gone."""
    if not token:
        return None
    return session.get(KioskDraft, draft_key(token), with_for_update=lock)


def is_expired(draft: KioskDraft, timing: Timing, now: datetime) -> bool:
    return now - draft.last_activity_at > timedelta(seconds=timing.expiry)


def save_section(draft: KioskDraft, section: Section, values: Mapping[str, Any],
                 now: datetime, *, step: int | None = None) -> None:
    """Replace the answers of one screen (absent = unanswered) and note the activity.

    ``values`` were checked against the Questionnaire by the caller; the merged answers
    are validated again so a draft can never hold something the engine would refuse.
    """
    merged = {k: v for k, v in draft.answers.items() if k not in section.link_ids}
    merged.update({k: v for k, v in values.items() if k in section.link_ids})
    draft.answers = parse_simple_answers(merged).to_simple()
    touch(draft, now, step=step)


def touch(draft: KioskDraft, now: datetime, *, step: int | None = None) -> None:
    draft.last_activity_at = now
    draft.version = (draft.version or 0) + 1
    if step is not None:
        draft.step = step


def submit_draft(session: Session, draft: KioskDraft, form: TabletForm,
                 now: datetime) -> str:
    """The patient's answers become an intake; the draft is gone in the same transaction.

    The idempotency key is derived from the draft, so a second tap on "Send" (or a
    retried request) finds the first intake instead of creating another.
    """
    answers = parse_simple_answers(form.effective_answers(draft.answers))
    submitted = pipeline.submit_intake(
        session, answers=answers, source=SOURCE, record_number=draft.patient_record_number,
        demographics=draft.patient_demographics,
        idempotency_key=IDEMPOTENCY_PREFIX + draft.id, actor=ACTOR, clock=lambda: now,
        device_id=draft.device_id)
    session.delete(draft)
    return submitted.intake.id


def submitted_intake(session: Session, token: str | None) -> Intake | None:
    """The intake this tablet session submitted, if it did."""
    if not token:
        return None
    return session.execute(
        select(Intake).where(Intake.idempotency_key == IDEMPOTENCY_PREFIX + draft_key(token))
    ).scalar_one_or_none()


def meets_red_condition(answers: Mapping[str, Any]) -> bool:
    """True when the (partial) answers fire any RED flag of the rule set.

    If the engine fails on them, that is treated as RED: an intake that fails triage is
    visible to staff, a deleted draft is not.
    """
    try:
        return bool(evaluate(parse_simple_answers(answers)).red_flag)
    except Exception:
        log.exception("could not evaluate partial tablet answers; keeping them as an intake")
        return True


def end_draft(session: Session, draft: KioskDraft, form: TabletForm, *, reason: EndReason,
              now: datetime) -> str | None:
    """End an unfinished session: triage RED answers as an intake, delete the rest.

    Returns the id of the intake created (the caller enqueues its triage after the
    commit), or None when the draft was simply deleted.
    """
    answers = form.effective_answers(draft.answers)
    intake_id: str | None = None
    if answers and meets_red_condition(answers):
        submitted = pipeline.submit_intake(
            session, answers=parse_simple_answers(answers), source=f"{SOURCE}-{reason}",
            record_number=draft.patient_record_number,
            demographics=draft.patient_demographics, actor=ACTOR, clock=lambda: now,
            device_id=draft.device_id)
        intake_id = submitted.intake.id
        log.warning("tablet session ended (%s) with a RED answer: intake %s sent to triage",
                    reason, intake_id)
    session.delete(draft)
    audit.record(session, actor=ACTOR, action="kiosk.ended", entity_type="kiosk_session",
                 entity_id=_entity(draft.id),
                 detail={"reason": reason, "intake_id": intake_id})
    return intake_id


def sweep_expired(sessions: sessionmaker[Session], form: TabletForm, timing: Timing, *,
                  enqueue: Callable[[str], object], clock: Clock = utcnow) -> dict[str, int]:
    """End every draft idle for longer than ``timing.expiry`` (tablets that died).

    Each draft is ended in its own transaction, and only if it is unchanged since it
    was found (its version), so a tablet that comes back to life at that moment wins.
    """
    now = clock()
    cutoff = now - timedelta(seconds=timing.expiry)
    counts = {"found": 0, "ended": 0, "triaged": 0}
    with sessions() as session:
        candidates = session.execute(
            select(KioskDraft.id, KioskDraft.version)
            .where(KioskDraft.last_activity_at < cutoff)
            .order_by(KioskDraft.last_activity_at).limit(200)
        ).all()
    counts["found"] = len(candidates)
    for key, version in candidates:
        with sessions.begin() as session:
            draft = session.get(KioskDraft, key, with_for_update=True, populate_existing=True)
            if draft is None or draft.version != version:
                continue
            intake_id = end_draft(session, draft, form, reason="timeout", now=clock())
        counts["ended"] += 1
        if intake_id is not None:
            counts["triaged"] += 1
            enqueue(intake_id)
    return counts


MessageKey = Literal["emergency", "same_day", "thanks"]


def result_message(session: Session, intake: Intake) -> MessageKey | None:
    """Which SPEC section 5 message the patient sees, or None while triage is running.

    Only the urgency decides; flags and departments never reach the tablet. A failed
    triage gets the same-day message, so someone speaks with the patient.
    """
    urgency = queries.newest_urgency(session, intake.id)
    if urgency is None:
        return "same_day" if intake.status == IntakeStatus.TRIAGE_FAILED else None
    return message_for(urgency)


def message_for(urgency: str) -> MessageKey:
    if urgency == "emergency":
        return "emergency"
    if urgency == "same_day":
        return "same_day"
    return "thanks"
