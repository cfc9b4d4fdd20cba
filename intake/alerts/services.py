"""Front-desk alerts, the domain side (no Flask: the triage step, the review actions,
the web views and the live process all call it).

An alert is raised in the same transaction as the triage result that calls for it:

* ``emergency``: the tablet told the patient "please tell the reception staff now";
  every board and staff screen sounds an alarm until someone answers it, and after
  ``INTAKE_ALERT_ESCALATE_SECONDS`` unanswered it escalates (louder, faster, at the top);
* ``same_day``: the tablet told the patient "a staff member will speak with you
  shortly"; the boards list it with one chime, so the promise is kept.

Staff answer an alert as 対応中 (in progress: someone is with the patient) and then 確認済
(done), from any board, the desk or the worklist; each answer is stored and audited with
who, when and from where, and every screen shows it within a second. A practitioner who
acknowledges every red flag of the intake closes its alert too.

What a board may show of an alert is decided here (:func:`board_alerts`): the time, the
record number or a walk-in's name, the tablet, the level and plain reason classes
(:data:`REASONS`): never an answer, a flag, a department or a diagnosis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from intake import audit
from intake.clinical import FlagResult, Text, TriageResult
from intake.clinical.terminology import urgency_rank
from intake.storage.models import (
    Alert,
    AlertLevel,
    AlertState,
    Device,
    Intake,
    ReviewAction,
    ReviewKind,
    User,
)
from intake.storage.queries import record_at

SYSTEM = "system"
# How long an answered alert stays on the boards (greyed, with who answered it).
DONE_SHOWN = timedelta(minutes=30)
# After this, a same-day alert, or an emergency someone is on (対応中), is closed as
# expired (audited): the patient has left. An unanswered emergency is never closed
# by itself.
EXPIRE_AFTER = timedelta(hours=18)
# At most this many alerts on a board (open ones first); the rest are counted.
BOARD_MAX = 60
_STATE_RANK = {AlertState.OPEN: 0, AlertState.IN_PROGRESS: 1, AlertState.DONE: 2}

# Plain reason classes for the front desk: what kind of problem, in words a receptionist
# acts on, never the suspected diagnosis.
REASONS: dict[str, Text] = {
    "chest": Text("胸の症状・息苦しさ", "chest symptoms or breathlessness"),
    "leg_circulation": Text("足の血流", "blood flow in the leg"),
    "leg_pain_swelling": Text("足の強い痛み・張り", "severe leg pain or tightness"),
    "nerves_bladder": Text("しびれ・排尿の症状", "numbness or bladder symptoms"),
    "weakness": Text("足に力が入らない", "leg weakness"),
    "fever_knee": Text("発熱・膝の腫れ", "fever or a hot, swollen knee"),
    "injury": Text("けが", "injury"),
    "answers_to_check": Text("回答の確認が必要", "answers need checking"),
    "not_triaged": Text("自動判定できませんでした", "could not be triaged"),
    "other": Text("その他", "other"),
}
# Every flag that can make an intake emergency or same day has a reason class (a test
# holds the rule set to it); anything else shows as "other".
REASON_OF_FLAG: dict[str, str] = {
    "PE_SUSPECT": "chest",
    "ACUTE_LIMB_ISCHAEMIA": "leg_circulation",
    "COMPARTMENT": "leg_pain_swelling",
    "CAUDA_EQUINA": "nerves_bladder",
    "SEPTIC_ARTHRITIS": "fever_knee",
    "DVT_SUSPECT": "leg_circulation",
    "BAKER_RUPTURE": "leg_circulation",
    "PAA_SUSPECT": "leg_circulation",
    "FRACTURE_XRAY": "injury",
    "HAEMARTHROSIS": "injury",
    "PROGRESSIVE_DEFICIT": "weakness",
    "FEVER_UNEXPLAINED": "fever_knee",
    "INCOMPLETE_SCREENING": "answers_to_check",
}


class AlertError(ValueError):
    """An answer to an alert cannot be taken; the message says why (no patient data)."""


class AlertNotFound(AlertError):
    pass


class AlertConflict(AlertError):
    """The alert is already further along (another board answered it first)."""


def level_of(urgency: str | None) -> AlertLevel | None:
    if urgency == AlertLevel.EMERGENCY:
        return AlertLevel.EMERGENCY
    if urgency == AlertLevel.SAME_DAY:
        return AlertLevel.SAME_DAY
    return None


def reasons_of(flags: Iterable[FlagResult]) -> list[str]:
    """Reason classes of a triage result's flags: from its emergency and same-day flags,
    most urgent first (rule order within a level), without repeats."""
    alerting = [f for f in flags if level_of(f.urgency) is not None]
    alerting.sort(key=lambda f: urgency_rank(f.urgency))  # stable: keeps rule order
    out: list[str] = []
    for flag in alerting:
        reason = REASON_OF_FLAG.get(flag.code, "other")
        if reason not in out:
            out.append(reason)
    return out or ["other"]


def _codes(values: Iterable[str]) -> str:
    return ("," + "".join(f"{v}," for v in values))[:200]


def raise_for_result(session: Session, intake: Intake, revision: int,
                     result: TriageResult, now: datetime) -> Alert | None:
    """In the triage result's transaction: the alert it calls for, if any.

    The first result of an intake raises an alert when it is emergency or same day. A
    later revision (examination findings entered by a practitioner, who is with the
    patient) raises one only for an emergency flag that the previous revision did not
    have and no practitioner has acknowledged: a new finding, not the same news again.
    An unanswered alert of the intake at the same or a higher level stands; a same-day
    one is closed by a new emergency.
    """
    level = level_of(result.urgency)
    if level is None:
        return None
    if revision > 1 and (level is not AlertLevel.EMERGENCY
                         or not _new_emergency_flags(session, intake.id, revision, result)):
        return None
    if session.execute(select(Alert.id).where(
            Alert.intake_id == intake.id, Alert.revision == revision,
            Alert.level == level)).first() is not None:
        # Raised before at this level (a triage that failed, was answered as "could not
        # be triaged", then succeeded): that alert stands.
        return None
    unanswered = list(session.execute(
        select(Alert).where(Alert.intake_id == intake.id, Alert.state != AlertState.DONE)
    ).scalars())
    standing = [a for a in unanswered
                if urgency_rank(AlertLevel(a.level)) <= urgency_rank(level)]
    if standing:
        for alert in standing:
            if alert.reasons == _codes(["not_triaged"]):
                # Triage failed, then succeeded (a retried task): say why now.
                alert.reasons = _codes(reasons_of(result.flags))
        return None
    for lower in unanswered:  # a same-day alert now covered by the emergency
        _answer(session, lower, AlertState.DONE, by=SYSTEM, via="superseded", now=now,
                audit_detail={"superseded_by_revision": revision})
    alert = Alert(intake_id=intake.id, revision=revision, level=level.value,
                  reasons=_codes(reasons_of(result.flags)), state=AlertState.OPEN,
                  raised_at=now)
    session.add(alert)
    session.flush()
    audit.record(session, actor=SYSTEM, action="alert.raised", entity_type="alert",
                 entity_id=str(alert.id),
                 detail={"intake": intake.id, "revision": revision, "level": level.value,
                         "reasons": reasons_of(result.flags)})
    return alert


def raise_for_failure(session: Session, intake: Intake, revision: int,
                      now: datetime) -> Alert | None:
    """Triage failed (a defect, kept visible): the tablet tells the patient that a staff
    member will speak with them, so the desk gets a same-day alert."""
    if revision > 1 or session.execute(
            select(Alert.id).where(Alert.intake_id == intake.id, Alert.revision == revision,
                                   Alert.level == AlertLevel.SAME_DAY)
    ).first() is not None:
        return None
    alert = Alert(intake_id=intake.id, revision=revision, level=AlertLevel.SAME_DAY.value,
                  reasons=_codes(["not_triaged"]), state=AlertState.OPEN, raised_at=now)
    session.add(alert)
    session.flush()
    audit.record(session, actor=SYSTEM, action="alert.raised", entity_type="alert",
                 entity_id=str(alert.id),
                 detail={"intake": intake.id, "revision": revision,
                         "level": AlertLevel.SAME_DAY.value, "reasons": ["not_triaged"]})
    return alert


def _new_emergency_flags(session: Session, intake_id: str, revision: int,
                         result: TriageResult) -> list[str]:
    previous = record_at(session, intake_id, revision - 1)
    before = set(previous.triage.flag_codes) if previous is not None else set()
    acked = set(session.execute(
        select(ReviewAction.flag_code).where(ReviewAction.intake_id == intake_id,
                                             ReviewAction.kind == ReviewKind.ACKNOWLEDGE_FLAG)
    ).scalars())
    return [f.code for f in result.flags
            if f.urgency == AlertLevel.EMERGENCY and f.code not in before
            and f.code not in acked]


@dataclass(frozen=True)
class Answered:
    alert_id: int
    state: str
    changed: bool  # False: the alert was already in that state (a double tap)


def answer(session: Session, alert_id: int, state: str, *, by: str, via: str,
           now: datetime, declared: bool = False) -> Answered:
    """Staff answer an alert: ``in_progress`` (対応中) or ``done`` (確認済).

    ``by`` is the staff user's name, ``via`` where ("board:<name>", "desk", "review").
    ``declared``: the name was chosen on a board, not signed in (the audit says so).
    Answering with the state the alert is in changes nothing (a second tap, or two
    boards at once); going back (done to in progress) is refused.
    """
    try:
        wanted = AlertState(state)
    except ValueError:
        raise AlertError("the state must be in_progress or done") from None
    if wanted is AlertState.OPEN:
        raise AlertError("the state must be in_progress or done")
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise AlertNotFound("no such alert")
    current = AlertState(alert.state)
    if current is wanted:
        return Answered(alert.id, current.value, False)
    if _STATE_RANK[current] > _STATE_RANK[wanted]:
        raise AlertConflict("this alert is already marked done")
    _answer(session, alert, wanted, by=by, via=via, now=now,
            audit_detail={"declared": True} if declared else {})
    return Answered(alert.id, wanted.value, True)


def _answer(session: Session, alert: Alert, state: AlertState, *, by: str, via: str,
            now: datetime, audit_detail: Mapping[str, Any]) -> None:
    if state is AlertState.IN_PROGRESS:
        alert.in_progress_at, alert.in_progress_by, alert.in_progress_via = now, by, via
    else:
        alert.done_at, alert.done_by, alert.done_via = now, by, via
    alert.state = state.value
    audit.record(session, actor=by, action=f"alert.{state.value}", entity_type="alert",
                 entity_id=str(alert.id),
                 detail={"intake": alert.intake_id, "level": alert.level, "via": via,
                         **audit_detail})


def close_for_intake(session: Session, intake_id: str, *, by: str, via: str,
                     now: datetime) -> int:
    """A practitioner acknowledged every red flag: the intake's unanswered alerts are
    done (the boards stop sounding). Returns how many were closed."""
    open_alerts = list(session.execute(
        select(Alert).where(Alert.intake_id == intake_id, Alert.state != AlertState.DONE)
        .with_for_update()).scalars())
    for alert in open_alerts:
        _answer(session, alert, AlertState.DONE, by=by, via=via, now=now, audit_detail={})
    return len(open_alerts)


def expire_old(session: Session, *, now: datetime) -> list[int]:
    """Close, as expired, alerts older than :data:`EXPIRE_AFTER` that are same day, or
    an emergency someone is on; never an unanswered emergency. Returns their ids."""
    cutoff = now - EXPIRE_AFTER
    old = list(session.execute(
        select(Alert).where(Alert.state != AlertState.DONE, Alert.raised_at <= cutoff,
                            or_(Alert.level == AlertLevel.SAME_DAY,
                                Alert.state == AlertState.IN_PROGRESS))
        .with_for_update()).scalars())
    for alert in old:
        _answer(session, alert, AlertState.DONE, by=SYSTEM, via="expired", now=now,
                audit_detail={"after_hours": int(EXPIRE_AFTER.total_seconds() // 3600)})
    return [a.id for a in old]


def escalate_due(session: Session, *, after: float, now: datetime) -> list[int]:
    """Mark unanswered emergencies older than ``after`` seconds as escalated, once each
    (a compare-and-set, so two live processes never both record it)."""
    cutoff = now - timedelta(seconds=after)
    due = list(session.execute(
        select(Alert.id, Alert.intake_id).where(
            Alert.state == AlertState.OPEN, Alert.level == AlertLevel.EMERGENCY,
            Alert.escalated_at.is_(None), Alert.raised_at <= cutoff)).all())
    done: list[int] = []
    for alert_id, intake_id in due:
        changed = session.execute(
            update(Alert).where(Alert.id == alert_id, Alert.state == AlertState.OPEN,
                                Alert.escalated_at.is_(None))
            .values(escalated_at=now).execution_options(synchronize_session=False))
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            audit.record(session, actor=SYSTEM, action="alert.escalated",
                         entity_type="alert", entity_id=str(alert_id),
                         detail={"intake": intake_id, "after_seconds": int(after)})
            done.append(alert_id)
    return done


# --- the read side: what a board and a staff screen show -----------------------------


@dataclass(frozen=True)
class Who:
    by: str
    via: str
    at: datetime


@dataclass(frozen=True)
class AlertView:
    """One alert as the screens show it (the board leaves out the intake's ids)."""

    id: int
    level: str
    state: str
    raised_at: datetime
    escalated: bool
    reasons: tuple[str, ...]
    patient: Mapping[str, str]  # {"record": number} or {"name": ..., "kana": ...} or {}
    tablet: str | None
    source: str
    in_progress: Who | None
    done: Who | None
    intake_id: str
    business_id: str


def _patient(record_number: str | None, demographics: Mapping[str, Any] | None
             ) -> dict[str, str]:
    if record_number:
        return {"record": record_number}
    if demographics:
        name = " ".join(p for p in (demographics.get("family_name"),
                                    demographics.get("given_name")) if p)
        kana = " ".join(p for p in (demographics.get("family_name_kana"),
                                    demographics.get("given_name_kana")) if p)
        return {"name": name, "kana": kana}
    return {}


def board_alerts(session: Session, now: datetime) -> tuple[list[AlertView], int]:
    """The alerts every screen shows now: the unanswered and in-progress ones (however
    old: an emergency is never dropped unanswered), and those answered in the last
    :data:`DONE_SHOWN`. Emergencies first, unanswered before in progress before done,
    oldest first within. Returns at most :data:`BOARD_MAX` and how many more there are."""
    rows = session.execute(
        select(Alert, Intake.business_id, Intake.patient_record_number,
               Intake.patient_demographics, Intake.source, Device.name)
        .join(Intake, Intake.id == Alert.intake_id)
        .outerjoin(Device, Device.id == Intake.device_id)
        .where(or_(Alert.state != AlertState.DONE, Alert.done_at > now - DONE_SHOWN))
    ).all()
    views = [
        AlertView(
            id=alert.id, level=alert.level, state=alert.state, raised_at=alert.raised_at,
            escalated=alert.escalated_at is not None and alert.state == AlertState.OPEN,
            reasons=tuple(r for r in alert.reasons.split(",") if r),
            patient=_patient(record_number, demographics), tablet=tablet, source=source,
            in_progress=Who(alert.in_progress_by, alert.in_progress_via,
                            alert.in_progress_at)
            if alert.in_progress_at and alert.in_progress_by and alert.in_progress_via
            else None,
            done=Who(alert.done_by, alert.done_via, alert.done_at)
            if alert.done_at and alert.done_by and alert.done_via else None,
            intake_id=alert.intake_id, business_id=business_id)
        for alert, business_id, record_number, demographics, source, tablet in rows]
    views.sort(key=_board_order)
    return views[:BOARD_MAX], max(0, len(views) - BOARD_MAX)


def _board_order(view: AlertView) -> tuple[bool, int, int, float]:
    done = view.state == AlertState.DONE
    # Waiting alerts oldest first (the longest wait is seen first); answered ones the
    # most recently answered first.
    when = -(view.done.at if view.done else view.raised_at).timestamp() if done \
        else view.raised_at.timestamp()
    return (done, urgency_rank(AlertLevel(view.level)), _STATE_RANK[AlertState(view.state)],
            when)


_ROLE_ORDER = {"front_desk": 0, "practitioner": 1, "admin": 2}


def staff_names(session: Session) -> list[str]:
    """The active staff a board offers when asking who is answering an alert: the
    front desk first (they answer most), then practitioners, then admins."""
    rows = session.execute(select(User.name, User.role).where(User.active.is_(True))).all()
    return [name for name, _ in sorted(rows, key=lambda r: (_ROLE_ORDER.get(r[1], 9), r[0]))]
