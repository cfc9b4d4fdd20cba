"""Read side of the practitioners' pages: the worklist query, the case view's records
and the answers in both languages. Nothing here writes (the actions are in
``intake.review.actions``); nothing here knows about Flask. The queries every screen
shares (newest triage records, delivery states) are in ``intake.storage.queries``.

A worklist page is four SQL queries, whatever the number of rows: the count for the
pager; the page's ids in order (the newest triage revision of each intake through a
subquery, see :func:`intake.storage.queries.newest_records`; every filter in SQL;
urgency order as a CASE over the urgency CodeSystem's ranks; LIMIT/OFFSET); the listed
columns of those ids; and their delivery jobs. No query per row. The default view (not
reviewed) reads the partial index ``ix_intakes_not_reviewed`` and the results' covering
index, so its cost follows the open queue, not the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from intake.clinical import Text, load_ruleset, terminology
from intake.clinical.questionnaire import default_form_index
from intake.desk.services import (
    PENDING_RANK,
    urgency_labels,
)
from intake.lifecycle import IntakeStatus
from intake.storage import queries
from intake.storage.models import (
    DELIVERY_KINDS,
    DeliveryAttempt,
    Intake,
    Job,
    ReviewAction,
    TriageRecord,
    User,
)
from intake.storage.queries import Delivery, DeliveryState

PER_PAGE = 50
MAX_PAGE = 10_000  # the pager never needs more; larger numbers are refused as bad input

# Worklist state filter: the intake statuses, plus the review state. The default view
# is "not reviewed": a practitioner's queue is what still needs them; "all" shows the
# history too.
STATUS_FILTERS = tuple(s.value for s in IntakeStatus)
STATE_FILTERS = ("not_reviewed", "reviewed", *STATUS_FILTERS, "all")
DEFAULT_STATE = "not_reviewed"
# The urgency filter's value for intakes without a triage result yet.
PENDING = "pending"

# --- code lists (from the CodeSystems and the rule set: the one definition) ----------


@lru_cache(maxsize=1)
def urgency_codes() -> tuple[str, ...]:
    """Urgency codes, most urgent first."""
    return terminology.urgency_order()


@lru_cache(maxsize=1)
def flag_info() -> Mapping[str, tuple[Text, bool]]:
    """Flag code -> (label, red flag), in rule-table order."""
    return {f.code: (f.label, f.red_flag) for f in load_ruleset().flags}


@lru_cache(maxsize=1)
def wells_exam_items() -> tuple[str, ...]:
    """The staff examination items of the Wells score (from the rule set)."""
    return tuple(load_ruleset().wells.examination_items)


@lru_cache(maxsize=1)
def ottawa_exam_items() -> tuple[str, ...]:
    """The other staff examination items: patella and fibular-head tenderness, the
    examination part of the Ottawa knee rule (SPEC section 3). Derived, in form order,
    so no linkId is written here."""
    index = default_form_index()
    wells = set(wells_exam_items())
    return tuple(k for k in index.questions if k in index.staff_ids and k not in wells)


def staff_exam_items() -> tuple[str, ...]:
    """Every staff examination item, in form order."""
    index = default_form_index()
    return tuple(k for k in index.questions if k in index.staff_ids)


# --- filters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Validated worklist filters (see ``schemas.WorklistFilterSchema``)."""

    state: str = DEFAULT_STATE
    urgency: str | None = None
    department: str | None = None
    flag: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    page: int = 1

    def args(self, **change: Any) -> dict[str, str]:
        """The filters as GET parameters (defaults left out), for links and the pager."""
        values = {"state": self.state, "urgency": self.urgency,
                  "department": self.department, "flag": self.flag,
                  "date_from": self.date_from.isoformat() if self.date_from else None,
                  "date_to": self.date_to.isoformat() if self.date_to else None,
                  "page": str(self.page)}
        values.update({k: (None if v is None else str(v)) for k, v in change.items()})
        defaults = {"state": DEFAULT_STATE, "page": "1"}
        return {k: v for k, v in values.items() if v is not None and defaults.get(k) != v}


def local_day_start(day: date, tz: ZoneInfo) -> datetime:
    """Midnight of ``day`` in the clinic's zone, in UTC (how received_at is stored)."""
    return datetime.combine(day, dtime.min, tzinfo=tz).astimezone(UTC)


def _rank(result: Any) -> ColumnElement[int]:
    """Urgency order: the CodeSystem's rank (x10, to keep integers); no result yet is
    ranked just below emergencies, as on the desk (it may be one)."""
    whens: list[tuple[ColumnElement[bool], int]] = [
        (result.c.urgency.is_(None), int(PENDING_RANK * 10))]
    whens += [(result.c.urgency == code, int(label.rank * 10))
              for code, label in urgency_labels().items()]
    return case(*whens, else_=990)


def _conditions(filters: Filters, tz: ZoneInfo,
                result: Any) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    """The filters as SQL: (conditions on the intake, conditions on its newest result)."""
    on_intake: list[ColumnElement[bool]] = []
    on_result: list[ColumnElement[bool]] = []
    if filters.state == "reviewed":
        on_intake.append(Intake.reviewed_at.is_not(None))
    elif filters.state == "not_reviewed":
        on_intake.append(Intake.reviewed_at.is_(None))
    elif filters.state in STATUS_FILTERS:
        on_intake.append(Intake.status == filters.state)
    if filters.date_from is not None:
        on_intake.append(Intake.received_at >= local_day_start(filters.date_from, tz))
    if filters.date_to is not None:
        on_intake.append(Intake.received_at < local_day_start(
            filters.date_to + timedelta(days=1), tz))
    if filters.urgency == PENDING:
        on_result.append(result.c.id.is_(None))
    elif filters.urgency is not None:
        on_result.append(result.c.urgency == filters.urgency)
    if filters.department is not None:
        # The effective department: the practitioner's choice, else the triage's.
        on_result.append(func.coalesce(Intake.department_override, result.c.department)
                         == filters.department)
    if filters.flag is not None:
        # flag_codes is ",CODE1,CODE2,": a LIKE '%,CODE,%' (underscores escaped, so
        # DVT_SUSPECT matches itself only).
        on_result.append(result.c.flag_codes.contains(f",{filters.flag},", autoescape=True))
    return on_intake, on_result


# --- rows --------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    """Who the intake is about: the clinic's record number, or a walk-in's name."""

    record_number: str | None
    name: str | None = None
    kana: str | None = None


def patient_of(record_number: str | None, demographics: Mapping[str, Any] | None) -> Patient:
    if record_number:
        return Patient(record_number)
    d = demographics or {}

    def joined(*keys: str) -> str | None:
        parts = [str(d[k]) for k in keys if d.get(k)]
        return "\u3000".join(parts) if parts else None  # a full-width space, as on paper

    return Patient(None, joined("family_name", "given_name"),
                   joined("family_name_kana", "given_name_kana"))


@dataclass(frozen=True)
class Row:
    intake_id: str
    business_id: str
    received_at: datetime
    status: str
    status_at: datetime | None
    reviewed_at: datetime | None
    patient: Patient
    urgency: str | None
    department: str | None
    department_changed: bool
    flags: tuple[str, ...]
    red_flags: frozenset[str]
    awaiting_result: bool  # examination findings entered, the new result not in yet
    delivery: Delivery = field(default_factory=lambda: Delivery(DeliveryState.NOT_STARTED))


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    total: int
    page: int
    pages: int


def worklist(session: Session, filters: Filters, tz: ZoneInfo,
             per_page: int = PER_PAGE) -> Page:
    """One page of the worklist: most urgent first, then oldest arrival first.

    Oldest first within a level because this is a queue: the patient who has waited
    longest at a level is seen next (newest first, as on the desk's alert board, would
    let a steady stream of arrivals push an early one down the list for good).
    """
    result = queries.newest_records()
    on_intake, on_result = _conditions(filters, tz, result)
    where = [*on_intake, *on_result]
    joined = Intake.__table__.outerjoin(result, result.c.intake_id == Intake.id)
    # An intake has at most one newest result: without a condition on it, the join
    # cannot change the count, and counting the intakes alone reads an index only.
    counted = select(func.count()).select_from(joined if on_result else Intake.__table__)
    total = int(session.execute(counted.where(*where)).scalar_one())
    pages = max(1, -(-total // per_page))
    # Two steps: the order over every match needs only ids, arrival times and urgencies
    # (read from indexes alone: ix_intakes_not_reviewed, ix_triage_results_worklist);
    # the listed columns are then read for the page's rows only.
    ids = [str(i) for i in session.execute(
        select(Intake.id).select_from(joined).where(*where)
        .order_by(_rank(result), Intake.received_at, Intake.id)
        .limit(per_page).offset((filters.page - 1) * per_page)
    ).scalars()]
    if not ids:
        return Page([], total, filters.page, pages)
    position = {intake_id: n for n, intake_id in enumerate(ids)}
    found = sorted(session.execute(
        select(Intake.id, Intake.business_id, Intake.received_at, Intake.status,
               queries.status_since(), Intake.delivered_at,
               Intake.delivery_failed_at, Intake.reviewed_at,
               Intake.patient_record_number, Intake.patient_demographics,
               Intake.department_override, Intake.revision, Intake.status_reason,
               result.c.urgency, result.c.department, result.c.flag_codes,
               result.c.revision)
        .select_from(joined).where(Intake.id.in_(ids))
    ).all(), key=lambda row: position[row[0]])
    info = flag_info()
    rows: list[Row] = []
    known: list[tuple[str, tuple[datetime | None, datetime | None, str | None]]] = []
    for (intake_id, business_id, received_at, status, status_at, delivered_at,
         delivery_failed_at, reviewed_at, record_number, demographics, override, revision,
         status_reason, urgency, department, codes, result_revision) in found:
        flags = tuple(c for c in (codes or "").split(",") if c)
        rows.append(Row(
            intake_id=intake_id, business_id=business_id, received_at=received_at,
            status=status, status_at=status_at, reviewed_at=reviewed_at,
            patient=patient_of(record_number, demographics),
            urgency=urgency, department=override or department,
            department_changed=override is not None and override != department,
            flags=flags, red_flags=frozenset(c for c in flags if c in info and info[c][1]),
            awaiting_result=result_revision is None or revision > result_revision,
        ))
        known.append((intake_id, (delivered_at, delivery_failed_at, status_reason)))
    states = queries.delivery_states(session, known)
    return Page([replace(r, delivery=states[r.intake_id]) for r in rows], total,
                filters.page, pages)


# --- the case view -------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRecord:
    """One review action with the name of who took it."""

    action: ReviewAction
    user_name: str


@dataclass(frozen=True)
class Case:
    """Everything the case view shows, loaded in one session (then detached)."""

    intake: Intake
    results: list[TriageRecord]  # newest revision first
    actions: list[ActionRecord]  # newest first
    jobs: list[Job]  # delivery jobs, newest first
    attempts: list[DeliveryAttempt]  # newest first
    delivery: Delivery

    @property
    def current(self) -> TriageRecord | None:
        return self.results[0] if self.results else None

    @property
    def awaiting_result(self) -> bool:
        current = self.current
        return current is None or self.intake.revision > current.revision

    def findings_by_revision(self) -> dict[int, ActionRecord]:
        """The examination-findings action that produced each revision."""
        return {a.action.revision: a for a in self.actions if a.action.kind == "exam_findings"}


def load_case(session: Session, intake_id: str) -> Case | None:
    intake = session.get(Intake, intake_id)
    if intake is None:
        return None
    results = queries.records_newest_first(session, intake_id)
    actions = [ActionRecord(a, name) for a, name in session.execute(
        select(ReviewAction, User.name).join(User, User.id == ReviewAction.user_id)
        .where(ReviewAction.intake_id == intake_id).order_by(ReviewAction.seq.desc())).all()]
    jobs = list(session.execute(
        select(Job).where(Job.intake_id == intake_id, Job.kind.in_(DELIVERY_KINDS))
        .order_by(Job.id.desc())).scalars())
    attempts = list(session.execute(
        select(DeliveryAttempt).where(DeliveryAttempt.intake_id == intake_id)
        .order_by(DeliveryAttempt.id.desc())).scalars())
    return Case(intake, results, actions, jobs, attempts, queries.delivery_of(session, intake))
