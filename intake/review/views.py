"""Views of /review: the worklist and its row refresh, the case view and its four
actions (practitioners and admins only: ``intake.review.bp`` is a staff blueprint). The
pages' live stream comes from the live process (``intake.live``).

Every page that shows patient data audits the read (``review.worklist_viewed``,
``review.case_viewed``: ids and counts, never names or answers). Actions are POST forms
(CSRF token, the revision shown) answered Post/Redirect/Get; a refused action shows the
case again with the reason (422, or 409 when the intake was re-triaged meanwhile) and
has changed nothing, because the action's transaction is rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from intake import audit, state
from intake.alerts.views import live_context
from intake.clinical import Text, parse_questionnaire_response
from intake.desk.services import department_labels, department_text, format_time, urgency_text
from intake.kiosk.form import pick
from intake.review import actions, bp, worklist
from intake.review.case_answers import answer_groups, answer_text, question_text
from intake.review.i18n import CATALOG, REVIEW
from intake.review.schemas import (
    AcknowledgeForm,
    DepartmentForm,
    FindingsForm,
    ReviewedForm,
    WorklistFilterSchema,
)
from intake.storage.models import utcnow
from intake.storage.queries import Delivery, DeliveryState
from intake.web import Principal, csrf_token, current_user, staff_lang

log = logging.getLogger(__name__)

# Longest intake id accepted in a URL (ids are UUIDs); longer ones are simply not found.
ID_MAX = 36


def _tz() -> ZoneInfo:
    return ZoneInfo(state().settings.display_timezone)


class Ui:
    """What the templates need to word things in the page's language and the clinic's
    time zone; built once per request."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.t = REVIEW.translator(lang)
        self.tz = _tz()
        self.now = utcnow()

    def time(self, value: datetime | None) -> str:
        return format_time(value, self.tz, self.now) if value is not None else ""

    def full_time(self, value: datetime | None) -> str:
        return value.astimezone(self.tz).strftime("%Y-%m-%d %H:%M") if value else ""

    def since(self, value: datetime) -> str:
        minutes = max(0, int((self.now - value).total_seconds() // 60))
        if minutes < 1:
            return self.t("ago_now")
        if minutes < 60:
            return self.t("ago_minutes", n=minutes)
        if minutes < 24 * 60:
            return self.t("ago_hours", h=minutes // 60, m=minutes % 60)
        return self.t("ago_days", n=minutes // (24 * 60))

    def pick(self, text: Text | Mapping[str, str] | None) -> str:
        if text is None:
            return ""
        if isinstance(text, Mapping):
            return str(text.get(self.lang) or text.get("ja") or "")
        return pick(text, self.lang)

    def urgency(self, code: str | None) -> str:
        return urgency_text(code, self.lang)

    def department(self, code: str | None) -> str:
        return department_text(code, self.lang)

    def departments(self, codes: list[str]) -> str:
        return ("、" if self.lang == "ja" else ", ").join(self.department(c) for c in codes)

    def flag(self, code: str) -> str:
        found = worklist.flag_info().get(code)
        return pick(found[0], self.lang) if found else code

    def state(self, code: str) -> str:
        return self.coded("state", code)

    def source(self, code: str) -> str:
        return self.coded("source", code)

    def delivery(self, d: Delivery) -> str:
        if d.state == DeliveryState.PENDING:
            # The job counts the attempt in flight too: a retry shows from the second.
            return self.t("delivery_retrying", n=d.attempts) if d.attempts > 1 else \
                self.t("delivery_sending")
        if d.state == DeliveryState.DELIVERED:
            return self.t("delivery_delivered", time=self.time(d.at))
        if d.state == DeliveryState.FAILED:
            return self.t("delivery_failed", time=self.time(d.at))
        return self.t("delivery_waiting")

    def outcome(self, code: str) -> str:
        return self.coded("outcome", code)

    def sex(self, code: str) -> str:
        return self.coded("sex", code)

    def coded(self, prefix: str, code: str) -> str:
        """The catalog's words for a code, or the code itself when it has none (a value
        stored by a newer version must not break the page)."""
        key = f"{prefix}_{code}"
        return self.t(key) if key in REVIEW else code


def _render(template: str, lang: str, status: int = 200, **context: Any) -> tuple[str, int]:
    ui = context.pop("ui", None) or Ui(lang)
    return render_template(template, lang=lang, t=ui.t, ui=ui, user=current_user(),
                           csrf_token=csrf_token(), **context), status


# --- worklist ------------------------------------------------------------------------


class BadFilter(Exception):
    def __init__(self, names: list[str]) -> None:
        super().__init__(", ".join(names))
        self.names = names


_FILTER_NAMES = {"state": "f_state", "urgency": "f_urgency", "department": "f_department",
                 "flag": "f_flag", "date_from": "f_date_from", "date_to": "f_date_to",
                 "page": "f_page"}


def _filters() -> worklist.Filters:
    try:
        data = WorklistFilterSchema().load(request.args.to_dict())
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {}
        raise BadFilter(sorted(str(k) for k in errors) or ["state"]) from None
    return worklist.Filters(**data)


@bp.errorhandler(BadFilter)
def _bad_filter(exc: BadFilter) -> tuple[str, int]:
    """400 naming each filter whose value is not allowed (never the value)."""
    lang = staff_lang()
    t = REVIEW.translator(lang)
    messages = [t("bad_filter_dates") if name == "dates" else
                t("bad_filter_item", name=t(_FILTER_NAMES.get(name, "f_state")))
                for name in exc.names]
    return _render("review/bad_filter.html", lang, 400, messages=messages)


def _filter_options(ui: Ui) -> dict[str, list[tuple[str, str]]]:
    """(value, label) of each select, from the CodeSystems and the rule set."""
    t = ui.t
    return {
        "state": [(s, t(f"state_{s}")) for s in worklist.STATE_FILTERS],
        "urgency": [(c, ui.urgency(c)) for c in worklist.urgency_codes()]
        + [(worklist.PENDING, t("pending_triage"))],
        "department": [(c, ui.department(c)) for c in department_labels()],
        "flag": [(c, f"{ui.pick(label)} ({c})")
                 for c, (label, _) in worklist.flag_info().items()],
    }


def _list_context(filters: worklist.Filters, ui: Ui, *, refresh: bool) -> dict[str, Any]:
    """One page of the worklist, its read audited (``refresh``: by the page's script)."""
    with state().sessions() as session:
        page = worklist.worklist(session, filters, ui.tz)
    _audit_worklist(current_user(), filters, len(page.rows), refresh=refresh)
    first = (page.page - 1) * worklist.PER_PAGE + 1
    return {"page": page, "filters": filters, "first": first,
            "last": first + len(page.rows) - 1}


def _audit_worklist(user: Principal, filters: worklist.Filters, rows: int,
                    refresh: bool) -> None:
    detail: dict[str, Any] = {"rows": rows, **filters.args()}
    if refresh:
        detail["refresh"] = True
    with state().sessions.begin() as session:
        audit.record(session, actor=user.name, action="review.worklist_viewed",
                     entity_type="worklist", entity_id="review", detail=detail)


@bp.get("/")
@bp.get("")
def index() -> Any:
    """The worklist page."""
    lang = staff_lang()
    filters = _filters()
    ui = Ui(lang)
    live = live_context(lang)  # first: the stream announces whatever changes after it
    context = _list_context(filters, ui, refresh=False)
    return _render("review/index.html", lang, ui=ui, options=_filter_options(ui), **context,
                   **live)


@bp.get("/rows", background=True)
def rows() -> Any:
    """The list (table and pager) for the page's script to refresh after an event."""
    lang = staff_lang()
    filters = _filters()
    ui = Ui(lang)
    context = _list_context(filters, ui, refresh=True)
    return _render("review/_list.html", lang, ui=ui, **context)


# --- case view -----------------------------------------------------------------------


@dataclass(frozen=True)
class FlagView:
    code: str
    label: Text
    red: bool
    urgency: str
    department: str
    also: list[str]
    note: Text | None
    evidence: list[tuple[Text, Text]]  # question, answer (both languages)
    acknowledged: tuple[str, datetime] | None  # by whom, when


def _flag_views(case: worklist.Case) -> list[FlagView]:
    current = case.current
    if current is None:
        return []
    acks: dict[str, tuple[str, datetime]] = {}
    for record in reversed(case.actions):  # oldest first: the first acknowledgement
        a = record.action
        if a.kind == "acknowledge_flag" and a.flag_code and a.flag_code not in acks:
            acks[a.flag_code] = (record.user_name, a.at)
    unanswered = Text(*CATALOG["unanswered"])
    out = []
    for f in current.triage.flags:
        evidence = [(question_text(e.link_id),
                     answer_text(e.link_id, e.answer)
                     if e.answer is not None else unanswered)
                    for e in f.evidence]
        out.append(FlagView(f.code, f.label, f.red_flag, f.urgency, f.department,
                            list(f.also_departments), f.note, evidence, acks.get(f.code)))
    return out


def _answers(case: worklist.Case) -> dict[str, Any] | None:
    try:
        return dict(parse_questionnaire_response(case.intake.questionnaire_response))
    except ValueError:
        log.error("stored answers of intake %s could not be read", case.intake.id)
        return None


def _history_text(ui: Ui, record: worklist.ActionRecord) -> str:
    a = record.action
    t = ui.t
    if a.kind == "acknowledge_flag":
        return t("kind_acknowledge_flag", flag=ui.flag(a.flag_code or ""))
    if a.kind == "change_department":
        return t("kind_change_department", previous=ui.department(a.previous_department),
                 department=ui.department(a.department), reason=a.reason or "")
    if a.kind == "exam_findings":
        items = "、".join if ui.lang == "ja" else ", ".join
        parts = [f"{ui.pick(question_text(k))}: "
                 f"{t('exam_yes') if v else t('exam_no')}"
                 for k, v in (a.findings or {}).items()]
        return t("kind_exam_findings", items=items(parts))
    if a.kind == "reviewed":
        return t("kind_reviewed")
    return a.kind


def _case_page(intake_id: str, lang: str, *, status: int = 200, error: str | None = None,
               form: Mapping[str, str] | None = None, done: str | None = None) -> Any:
    """The case view (also after a refused action, with ``error`` and what was typed).
    Reading it is audited in the same transaction as the read."""
    user = current_user()
    ui = Ui(lang)
    live = live_context(lang)  # first: the stream announces whatever changes after it
    with state().sessions.begin() as session:
        case = worklist.load_case(session, intake_id)
        if case is None:
            abort(404)
        audit.record(session, actor=user.name, action="review.case_viewed",
                     entity_type="intake", entity_id=intake_id,
                     detail={"revision": case.intake.revision,
                             **({"status": status} if status != 200 else {})})
    answers = _answers(case)
    exam_items = worklist.staff_exam_items()
    given = answers or {}
    current = case.current
    reviewed_by = next((r.user_name for r in case.actions if r.action.kind == "reviewed"),
                       None)
    override_by = next((r.user_name for r in case.actions
                        if r.action.kind == "change_department"), None)
    context = {
        "case": case, "intake": case.intake, "current": current,
        "patient": worklist.patient_of(case.intake.patient_record_number,
                                       case.intake.patient_demographics),
        "demographics": case.intake.patient_demographics or {},
        "flags": _flag_views(case),
        "answer_groups": answer_groups(answers) if answers is not None else None,
        "wells": current.triage.wells if current is not None else None,
        "missing_wells": [question_text(k) for k in worklist.wells_exam_items()
                          if k not in given],
        "missing_ottawa": [question_text(k) for k in worklist.ottawa_exam_items()
                           if k not in given],
        "exam": [(k, question_text(k), given.get(k)) for k in exam_items],
        "departments": [(c, label.text) for c, label in department_labels().items()],
        "effective_department": (case.intake.department_override or current.department)
        if current is not None else None,
        "override_by": override_by,
        "reviewed_by": reviewed_by,
        "findings_by": case.findings_by_revision(),
        "history": [(r, _history_text(ui, r)) for r in case.actions],
        "error": error, "form": form or {}, "done": done, **live,
    }
    return _render("review/case.html", lang, status, ui=ui, **context)


def _valid_id(intake_id: str) -> str:
    if not intake_id or len(intake_id) > ID_MAX:
        abort(404)
    return intake_id


_DONE = ("acknowledge", "department", "findings", "reviewed")


@bp.get("/<intake_id>")
def case(intake_id: str) -> Any:
    """One intake: answers in both languages, flags with their evidence, Wells and the
    missing examination items, every revision, the review history and the delivery."""
    done = request.args.get("done")
    return _case_page(_valid_id(intake_id), staff_lang(),
                      done=done if done in _DONE else None)


# --- actions -------------------------------------------------------------------------

Action = Callable[[Session, str, dict[str, Any], actions.Actor, datetime], actions.ActionDone]


def _acknowledge(s: Session, intake_id: str, data: dict[str, Any], actor: actions.Actor,
                 now: datetime) -> actions.ActionDone:
    return actions.acknowledge_flag(s, intake_id, data["flag"], actor=actor,
                                    revision=data["revision"], now=now)


def _department(s: Session, intake_id: str, data: dict[str, Any], actor: actions.Actor,
                now: datetime) -> actions.ActionDone:
    return actions.change_department(s, intake_id, data["department"], data["reason"],
                                     actor=actor, revision=data["revision"], now=now)


def _findings(s: Session, intake_id: str, data: dict[str, Any], actor: actions.Actor,
              now: datetime) -> actions.ActionDone:
    return actions.add_exam_findings(s, intake_id, data["findings"], actor=actor,
                                     revision=data["revision"], now=now)


def _reviewed(s: Session, intake_id: str, data: dict[str, Any], actor: actions.Actor,
              now: datetime) -> actions.ActionDone:
    return actions.mark_reviewed(s, intake_id, actor=actor, revision=data["revision"],
                                 now=now)


ACTIONS: dict[str, tuple[type[Any], Action]] = {
    "acknowledge": (AcknowledgeForm, _acknowledge),
    "department": (DepartmentForm, _department),
    "findings": (FindingsForm, _findings),
    "reviewed": (ReviewedForm, _reviewed),
}

def refusal_text(exc: actions.ReviewError, lang: str) -> str:
    """A refused action's reason in the page's language, by its code (``err_<code>``);
    a refusal without a code of its own is shown in English after a lead-in
    (``err_action``)."""
    t = REVIEW.translator(lang)
    if exc.code == actions.ReviewError.code:
        return t("err_action", detail=str(exc))
    return t(f"err_{exc.code}", **exc.values)


def _form_error(action: str, exc: ValidationError, form: Mapping[str, str],
                lang: str) -> str:
    t = REVIEW.translator(lang)
    fields = set(exc.messages) if isinstance(exc.messages, dict) else set()
    if action == "department":
        if "department" in fields:
            return t("err_department")
        if "reason" in fields:
            typed = " ".join(str(form.get("reason", "")).split())
            return t("err_reason_long") if len(typed) > actions.REASON_MAX else t("err_reason")
    if action == "findings" and fields & set(worklist.staff_exam_items()):
        return t("err_exam_value")
    return t("err_invalid_form")


@bp.post("/<intake_id>/<action>")
def act(intake_id: str, action: str) -> Any:
    """One action on the intake; 303 back to the case view when it is done."""
    lang = staff_lang()
    intake_id = _valid_id(intake_id)
    if action not in ACTIONS:
        abort(404)
    schema, run = ACTIONS[action]
    form = request.form.to_dict()
    kept = {k: v for k, v in form.items() if k != "csrf_token"}
    try:
        data = schema().load(form)
    except ValidationError as exc:
        return _case_page(intake_id, lang, status=422,
                          error=_form_error(action, exc, form, lang), form=kept)
    user = current_user()
    st = state()
    try:
        with st.sessions.begin() as session:
            done = run(session, intake_id, data, actions.Actor(user.user_id, user.name),
                       utcnow())
    except actions.NotFound:
        abort(404)
    except actions.StaleRevision as exc:
        return _case_page(intake_id, lang, status=409, error=refusal_text(exc, lang),
                          form=kept)
    except actions.ReviewError as exc:
        return _case_page(intake_id, lang, status=422, error=refusal_text(exc, lang),
                          form=kept)
    actions.dispatch(st, done)
    return redirect(url_for("review.case", intake_id=intake_id, lang=lang, done=action,
                            _anchor=f"done-{action}"), 303)
