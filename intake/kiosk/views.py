"""Views of the tablet flow.

Every step is a server-rendered page and every answer travels in a POST body; URLs carry
only screen numbers. Each request that finds a draft idle past its expiry ends it the
same way the sweeper would (RED answers triaged, the rest deleted), so a tablet that
wakes up after a long sleep never shows the previous patient's answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.blueprints import BlueprintSetupState
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.devices.services import Known
from intake.devices.web import current_device, renew_device_cookie
from intake.dispatch import dispatch_triage
from intake.kiosk import bp, i18n, services
from intake.kiosk.form import (
    EXCLUSIVE_CODE,
    KNEE_SIDE_ITEM,
    Question,
    Section,
    TabletForm,
    display_answer,
    tablet_form,
)
from intake.kiosk.pin import check_pin, client_key, configured_pin_hash
from intake.kiosk.schemas import (
    LanguageSchema,
    StartFormSchema,
    demographics_of,
    section_form_data,
    section_schema,
)
from intake.kiosk.services import ACTOR
from intake.storage.db import read_session_factory
from intake.storage.models import DeviceKind, Intake, KioskDraft, utcnow
from intake.web import csrf_token, load_signed, protect, rotate_csrf, serializer, set_cookie
from intake.web.i18n import DEFAULT_LANG, LANGS, negotiate

log = logging.getLogger(__name__)

COOKIE = "intake_kiosk"
COOKIE_SALT = "kiosk-session"
COOKIE_MAX_AGE = 12 * 3600
# The patient's language for the closing message, after the draft is gone.
LANG_COOKIE = "intake_kiosk_lang"
PATH = "/kiosk"
_SEX_PREFILL = {"male": "M", "female": "F", "other": "X"}


@dataclass(frozen=True)
class KioskConfig:
    """Per-app values computed once at registration (the PIN hash costs an scrypt)."""

    pin_hash: str
    timing: services.Timing


@bp.record_once
def _setup(setup: BlueprintSetupState) -> None:
    app = cast(Flask, setup.app)
    settings = state(app).settings
    app.extensions["intake_kiosk"] = KioskConfig(
        pin_hash=configured_pin_hash(settings),
        timing=services.Timing.from_settings(settings))
    tablet_form()  # an unsupported Questionnaire stops the app at start, not mid-patient


def kiosk_config(app: Flask | None = None) -> KioskConfig:
    cfg: KioskConfig = (app or current_app).extensions["intake_kiosk"]
    return cfg


protect(bp)  # CSRF on every form, the security headers on every response


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    lang = _ui_lang()
    if status == 400:
        return _page("kiosk/error.html", lang, title_key="expired_title",
                     body_key="expired_body"), 400
    return _page("kiosk/error.html", lang, title_key="error_title",
                 body_key="error_body"), status


@bp.errorhandler(Exception)
def _internal_error(exc: Exception) -> tuple[str, int]:
    # Never echo the exception: it may carry patient data.
    log.error("unhandled %s in the tablet flow", type(exc).__name__)
    return _page("kiosk/error.html", _ui_lang(), title_key="error_title",
                 body_key="error_body"), 500


# --- helpers ------------------------------------------------------------------------


def _now() -> datetime:
    return utcnow()


def _ui_lang() -> str:
    """Language of staff screens and error pages: ?lang=, else the browser's."""
    return negotiate(request.args.get("lang"), request.accept_languages.values())


def _page(template: str, lang: str, **context: Any) -> str:
    timing = kiosk_config().timing

    def tr(key: str, **values: object) -> str:
        return i18n.t(key, lang, **values)

    return render_template(template, lang=lang, t=tr, csrf_token=csrf_token(),
                           timing=timing, **context)


def _token() -> str | None:
    value = load_signed(COOKIE_SALT, request.cookies.get(COOKIE), COOKIE_MAX_AGE)
    return value if isinstance(value, str) else None


def _set_token(response: BaseResponse, token: str) -> None:
    set_cookie(response, COOKIE, serializer(COOKIE_SALT).dumps(token), PATH)


def _clear_token(response: BaseResponse) -> None:
    for name in (COOKIE, LANG_COOKIE):
        response.delete_cookie(name, path=PATH, httponly=True, samesite="Strict",
                               secure=request.is_secure)


def _to_start(*, cleared: bool = False) -> BaseResponse:
    """Back to the staff start screen, with the tablet session forgotten; but while this
    tablet shows an emergency (until staff clear it with the PIN: ``cleared``), back to
    that message: the browser's Back button must not take it away."""
    if not cleared:
        # A reader: callers may hold the write transaction (SQLite has one writer).
        with read_session_factory(state().settings.database_url)() as session:
            if _emergency_shown(session) is not None:
                return redirect(url_for("kiosk.done"), 303)
    response = redirect(url_for("kiosk.start"), 303)
    _clear_token(response)
    rotate_csrf()
    return response


def _live_draft(session: Session) -> KioskDraft | None:
    """The tablet's draft, or None. A draft idle past its expiry is ended here, in the
    caller's transaction, exactly as the sweeper would end it."""
    # Locked until the commit: the tablet's requests and the sweeper never end or save
    # one draft at the same time.
    draft = services.load_draft(session, _token(), lock=True)
    if draft is None:
        return None
    now = _now()
    if services.is_expired(draft, kiosk_config().timing, now):
        intake_id = services.end_draft(session, draft, tablet_form(), reason="timeout",
                                       now=now)
        if intake_id is not None:
            _enqueue_after_commit(intake_id)
        return None
    return draft


def _enqueue_after_commit(intake_id: str) -> None:
    """Triage is handed to the broker after the view's transaction has committed."""
    pending: list[str] = g.setdefault("kiosk_enqueue", [])
    pending.append(intake_id)


@bp.after_request
def _enqueue_pending(response: BaseResponse) -> BaseResponse:
    st = state()
    for intake_id in g.pop("kiosk_enqueue", []):
        dispatch_triage(st.celery, st.sessions, intake_id)
    return response


def _step_url(step: int, **args: Any) -> str:
    return url_for("kiosk.section", step=step, **args)


def _progress(form: TabletForm, answers: dict[str, Any], step: int) -> tuple[int, int]:
    steps = form.enabled_sections(answers)
    position = steps.index(step) + 1 if step in steps else 1
    return position, len(steps)


def _next_step(form: TabletForm, answers: dict[str, Any], step: int) -> int | None:
    later = [i for i in form.enabled_sections(answers) if i > step]
    return later[0] if later else None


def _previous_step(form: TabletForm, answers: dict[str, Any], step: int) -> int | None:
    earlier = [i for i in form.enabled_sections(answers) if i < step]
    return earlier[-1] if earlier else None


def _prefill(data: dict[str, Any]) -> dict[str, Any]:
    """Answers the front desk already knows for a walk-in: age and sex (the patient sees
    them on the first screen and can change them)."""
    out: dict[str, Any] = {}
    born = data.get("birth_date")
    if isinstance(born, date):
        today = date.today()
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if 0 <= age <= 120:
            out["age_years"] = age
    sex = _SEX_PREFILL.get(data.get("sex", ""))
    if sex is not None:
        out["sex"] = sex
    return out


# --- staff start screen ---------------------------------------------------------------


def _tablet() -> Known | None:
    return current_device(DeviceKind.TABLET)


def _to_enroll() -> BaseResponse:
    """A browser that is no enrolled tablet: to the registration page."""
    return redirect(f"/devices/enroll?kind=tablet&lang={_ui_lang()}", 303)


@bp.get("")
@bp.get("/")
def start() -> BaseResponse | str:
    """The staff start screen; a tablet in the middle of a patient goes back to it, and
    one showing an emergency keeps showing it until staff clear it with the PIN."""
    tablet = _tablet()
    if tablet is None:
        return _to_enroll()
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is not None:
            return redirect(_step_url(draft.step), 303)
        if _emergency_shown(session) is not None:
            return redirect(url_for("kiosk.done"), 303)
    response = renew_device_cookie(Response(_page(
        "kiosk/start.html", _ui_lang(), values={}, errors={}, message=None,
        idle_reset=True, tablet=tablet)))
    if request.cookies.get(COOKIE) or request.cookies.get(LANG_COOKIE):
        _clear_token(response)  # a finished session: nothing of it is kept
    return response


@bp.post("")
@bp.post("/")
def begin() -> BaseResponse | tuple[str, int]:
    """Staff hand the tablet over: PIN, the patient, the language; a draft is created."""
    tablet = _tablet()
    if tablet is None:
        return _to_enroll()
    lang = _ui_lang()
    # Typed values are shown again on an error, except the PIN.
    form_values = {k: v for k, v in request.form.items() if k not in ("pin", "csrf_token")}
    try:
        data = StartFormSchema().load(request.form.to_dict())
    except ValidationError as exc:
        fields = exc.messages if isinstance(exc.messages, dict) else {}
        errors = {k: i18n.t(_start_error(k), lang) for k in fields}
        return _page("kiosk/start.html", lang, values=form_values, errors=errors,
                     message=i18n.t("err_form", lang), idle_reset=True, tablet=tablet), 422

    st = state()
    now = _now()
    with st.sessions.begin() as session:
        verdict = check_pin(session, kiosk_config().pin_hash, data["pin"],
                            client_key(request.remote_addr), now)
    if not verdict.ok:
        message = (i18n.t("err_locked", lang, m=verdict.locked_minutes)
                   if verdict.locked_minutes else i18n.t("err_pin", lang))
        status = 429 if verdict.locked_minutes else 403
        return _page("kiosk/start.html", lang, values=form_values, errors={"pin": message},
                     message=message, idle_reset=True, tablet=tablet), status

    token = services.new_token()
    with st.sessions.begin() as session:
        old = services.load_draft(session, _token(), lock=True)
        if old is not None:  # staff started over without ending the last patient
            replaced = services.end_draft(session, old, tablet_form(), reason="replaced",
                                          now=now)
            if replaced is not None:
                _enqueue_after_commit(replaced)
        services.start_draft(session, token=token, lang=data["lang"],
                             record_number=data.get("record_number"),
                             demographics=demographics_of(data), prefill=_prefill(data),
                             now=now, device_id=tablet.id)
    response = redirect(url_for("kiosk.welcome"), 303)
    _set_token(response, token)
    return response


def _start_error(field: str) -> str:
    keys = {"record_number": "err_record_number", "family_name_kana": "err_kana",
            "given_name_kana": "err_kana", "birth_date": "err_birth_date",
            "family_name": "err_text", "given_name": "err_text", "sex": "err_choice",
            "patient": "err_choice", "lang": "err_choice", "pin": "err_required_field"}
    return keys.get(field, "err_form")


# --- the patient's screens --------------------------------------------------------------


@bp.get("/welcome")
def welcome() -> BaseResponse | str:
    """The first screen the patient sees: what to do, and a big Start button."""
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        services.touch(draft, _now())
        lang = draft.lang
        first = tablet_form().enabled_sections(draft.answers)[0]
    return _page("kiosk/welcome.html", lang, patient=True, first_step=first, here="welcome")


@bp.get("/q/<int:step>")
def section(step: int) -> BaseResponse | str:
    """One screen of questions, filled with the draft's answers."""
    form = tablet_form()
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        enabled = form.enabled_sections(draft.answers)
        if step not in enabled:
            later = [i for i in enabled if i > step]
            return redirect(_step_url(later[0] if later else enabled[-1]), 303)
        services.touch(draft, _now(), step=step)
        answers, lang = dict(draft.answers), draft.lang
    errors: dict[str, str] = {}
    if request.args.get("check") == "1":
        for link_id in form.missing_required(answers, form.sections[step]):
            errors[link_id] = i18n.t("required_msg", lang)
    return _render_section(form, step, answers, lang, errors,
                           review=request.args.get("review") == "1")


def _render_section(form: TabletForm, step: int, answers: dict[str, Any], lang: str,
                    errors: dict[str, str], *, review: bool) -> str:
    current = form.sections[step]
    enabled = form.enabled(answers)
    position, total = _progress(form, answers, step)
    items = []
    for q in current.questions:
        rule = form.client_rule(q, answers)
        items.append({
            "q": q,
            "shown": q.link_id in enabled,
            "value": answers.get(q.link_id),
            "error": errors.get(q.link_id),
            "rule": None if rule is None else {
                "b": rule.behavior, "c": [c.to_json() for c in rule.conditions]},
        })
    return _page("kiosk/section.html", lang, patient=True, section=current, step=step,
                 items=items, position=position, total=total, review=review,
                 has_previous=_previous_step(form, answers, step) is not None,
                 errors=errors, here=f"q:{step}", exclusive=EXCLUSIVE_CODE,
                 side=answers.get(KNEE_SIDE_ITEM))


def _exclusive_errors(current: Section, values: dict[str, Any], lang: str) -> dict[str, str]:
    errors = {}
    for q in current.questions:
        chosen = values.get(q.link_id)
        if q.spec.kind == "multi" and isinstance(chosen, list) and EXCLUSIVE_CODE in chosen \
                and len(chosen) > 1:
            errors[q.link_id] = i18n.t("exclusive_none", lang,
                                       none=q.option_text(EXCLUSIVE_CODE, lang))
    return errors


def _field_error(q: Question, lang: str) -> str:
    if q.spec.kind == "int":
        return i18n.t("invalid_number", lang, min=q.spec.min_value, max=q.spec.max_value)
    return i18n.t("invalid_choice", lang)


@bp.post("/q/<int:step>")
def save_section(step: int) -> BaseResponse | tuple[str, int] | str:
    """Save one screen and move: next, back, to review; or autosave; or the idle reset.

    Autosave and the idle reset keep every answer that could be read, so a RED answer
    given just before the patient walked away is not lost to an unrelated typo.
    """
    form = tablet_form()
    if not 0 <= step < len(form.sections):
        return _to_start()
    current = form.sections[step]
    raw = section_form_data(current, request.form)
    invalid: dict[str, Any] = {}
    try:
        data = section_schema(current).load(raw)
    except ValidationError as exc:
        invalid = exc.messages if isinstance(exc.messages, dict) else {"_schema": []}
        if set(invalid) - set(current.link_ids):
            abort(400)  # a tampered post (unknown field, bad action): nothing is saved
        data = dict(exc.valid_data) if isinstance(exc.valid_data, dict) else {}
    action = str(raw.get("action"))
    values = {k: v for k, v in data.items() if k in current.link_ids}
    now = _now()

    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        lang = draft.lang
        errors = {k: _field_error(form.questions[k], lang) for k in invalid}
        errors.update(_exclusive_errors(current, values, lang))
        for link_id in errors:
            # Keep the earlier answer rather than a value that could not be read.
            values.pop(link_id, None)
            if link_id in draft.answers:
                values[link_id] = draft.answers[link_id]
        # An autosave may arrive after the patient moved on: it must not move them back.
        services.save_section(draft, current, values, now,
                              step=None if action == "autosave" else step)
        answers = dict(draft.answers)
        if action == "autosave":
            return Response(status=204)
        if action == "timeout":
            intake_id = services.end_draft(session, draft, form, reason="timeout", now=now)
            if intake_id is not None:
                _enqueue_after_commit(intake_id)
            return _to_start()

    if action == "back":
        previous = _previous_step(form, answers, step)
        target = _step_url(previous) if previous is not None else url_for("kiosk.welcome")
        return redirect(target, 303)
    to_review = action == "review"
    if errors:
        return _render_section(form, step, answers, lang, errors, review=to_review), 422
    # Questions that appeared because of an answer on this screen (a browser without
    # script could not show them at once): show the screen again with them.
    shown = set(data.get("shown", []))
    enabled = form.enabled(answers)
    appeared = [q.link_id for q in current.questions
                if q.link_id in enabled and q.link_id not in shown and q.link_id not in answers]
    if appeared:
        return _render_section(form, step, answers, lang, {}, review=to_review)
    missing = form.missing_required(answers, current)
    if missing:
        errors = {k: i18n.t("required_msg", lang) for k in missing}
        return _render_section(form, step, answers, lang, errors, review=to_review), 422
    following = _next_step(form, answers, step)
    if to_review or following is None:
        return redirect(url_for("kiosk.review"), 303)
    return redirect(_step_url(following), 303)


@bp.get("/review")
def review() -> BaseResponse | str:
    """Every answer, screen by screen, each screen with a Change button."""
    form = tablet_form()
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        services.touch(draft, _now())
        answers, lang = dict(draft.answers), draft.lang
    enabled = form.enabled(answers)
    missing = set(form.missing_required(answers))
    groups = []
    for index in form.enabled_sections(answers):
        current = form.sections[index]
        rows = [{"question": q.text(lang),
                 "answer": display_answer(q, answers.get(q.link_id), lang),
                 "missing": q.link_id in missing}
                for q in current.questions if q.link_id in enabled]
        groups.append({"step": index, "title": current.title(lang), "rows": rows})
    return _page("kiosk/review.html", lang, patient=True, groups=groups,
                 missing=bool(missing), here="review")


@bp.post("/review")
def submit() -> BaseResponse:
    """Send: the draft becomes an intake (one transaction), then triage is enqueued."""
    form = tablet_form()
    token = _token()
    try:
        with state().sessions.begin() as session:
            if services.load_draft(session, token, lock=True) is None \
                    and services.submitted_intake(session, token) is not None:
                # A second tap on Send, or a retried request: the first one's result.
                return redirect(url_for("kiosk.done"), 303)
            draft = _live_draft(session)
            if draft is None:
                return _to_start()
            missing = form.missing_required(draft.answers)
            if missing:
                first = form.sections.index(form.section(form.section_of[missing[0]]))
                return redirect(_step_url(first, check="1"), 303)
            lang = draft.lang
            intake_id = services.submit_draft(session, draft, form, _now())
            _enqueue_after_commit(intake_id)
    except IntegrityError:
        # A concurrent Send of the same session stored the intake first (its
        # idempotency key is unique): show that one's result.
        g.pop("kiosk_enqueue", None)
        return redirect(url_for("kiosk.done"), 303)
    response = redirect(url_for("kiosk.done"), 303)
    set_cookie(response, LANG_COOKIE, lang, PATH)
    return response


def _submitted(session: Session) -> Intake | None:
    """This tablet session's intake while its closing message may still be shown: a
    short while, or until staff clear it when it is an emergency."""
    intake = services.submitted_intake(session, _token())
    if intake is None:
        return None
    window = timedelta(seconds=kiosk_config().timing.done_window)
    if _now() - intake.received_at > window \
            and services.result_message(session, intake) != "emergency":
        return None
    return intake


def _emergency_shown(session: Session) -> Intake | None:
    """The intake whose emergency message this tablet shows (until the staff PIN)."""
    intake = services.submitted_intake(session, _token())
    if intake is not None and services.result_message(session, intake) == "emergency":
        return intake
    return None


@bp.get("/done")
def done() -> BaseResponse | str:
    """The closing message of SPEC section 5, chosen by the result's urgency only."""
    timing = kiosk_config().timing
    with state().sessions.begin() as session:
        intake = _submitted(session)
        if intake is None:
            return _to_start()
        message = services.result_message(session, intake)
        waited = (_now() - intake.received_at).total_seconds()
    lang = request.cookies.get(LANG_COOKIE, "")
    lang = lang if lang in LANGS else DEFAULT_LANG
    if message is None and waited < timing.result_wait:
        return _page("kiosk/waiting.html", lang, wait_left=timing.result_wait - waited)
    # Triage not finished in time: the same-day message is the safe default (a staff
    # member comes to the patient; an emergency result still alerts the desk at once,
    # and this tablet shows it if it arrives before the tablet next returns to its start
    # screen, after which the tablet belongs to the next patient).
    return _page("kiosk/done.html", lang, message_key=f"msg_{message or 'same_day'}",
                 emergency=message == "emergency", errors={})


@bp.post("/clear")
def clear() -> BaseResponse | tuple[str, int]:
    """Staff end the emergency screen with the PIN (the patient cannot: it must stay in
    front of them, and of the next person to pick up the tablet, until staff come)."""
    lang = request.cookies.get(LANG_COOKIE, "")
    lang = lang if lang in LANGS else DEFAULT_LANG
    pin = request.form.get("pin", "")[:64]
    now = _now()
    with state().sessions.begin() as session:
        intake = _emergency_shown(session)
        if intake is None:
            return _to_start()
        verdict = check_pin(session, kiosk_config().pin_hash, pin,
                            client_key(request.remote_addr), now)
        if verdict.ok:
            audit.record(session, actor=ACTOR, action="kiosk.emergency_cleared",
                         entity_type="intake", entity_id=intake.id)
    if not verdict.ok:
        message = (i18n.t("err_locked", lang, m=verdict.locked_minutes)
                   if verdict.locked_minutes else i18n.t("err_pin", lang))
        return _page("kiosk/done.html", lang, message_key="msg_emergency", emergency=True,
                     errors={"pin": message}), 429 if verdict.locked_minutes else 403
    return _to_start(cleared=True)


@bp.get("/status")
def status() -> BaseResponse:
    """For the waiting screen's script: is the closing message ready? (Only that: the
    urgency is never sent to the tablet as data.)"""
    timing = kiosk_config().timing
    with state().sessions.begin() as session:
        intake = _submitted(session)
        if intake is None:
            return jsonify({"ready": True})
        ready = (services.result_message(session, intake) is not None
                 or (_now() - intake.received_at).total_seconds() >= timing.result_wait)
    return jsonify({"ready": ready})


@bp.get("/quit")
def quit_confirm() -> BaseResponse | str:
    """'Stop answering?': the patient or staff can end the session from any screen."""
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        services.touch(draft, _now())
        lang, step = draft.lang, draft.step
    return _page("kiosk/quit.html", lang, patient=True, back_step=step, here="quit")


@bp.post("/reset")
def reset() -> BaseResponse:
    """End the session (stopped, or the idle timer ran out on a screen without answers):
    RED answers are triaged, everything else is deleted; back to the start screen."""
    reason: services.EndReason = "timeout" if request.form.get("reason") == "timeout" \
        else "cancel"
    with state().sessions.begin() as session:
        draft = services.load_draft(session, _token(), lock=True)
        if draft is not None:
            intake_id = services.end_draft(session, draft, tablet_form(), reason=reason,
                                           now=_now())
            if intake_id is not None:
                _enqueue_after_commit(intake_id)
    return _to_start()


@bp.post("/touch")
def touch() -> BaseResponse:
    """The script reports touches on screens without answers, so the server's expiry
    does not end a session the patient is still reading."""
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is not None:
            services.touch(draft, _now())
    return Response(status=204)


_RETURN_TO = {"welcome": "kiosk.welcome", "review": "kiosk.review", "quit": "kiosk.quit_confirm"}


@bp.post("/lang")
def switch_language() -> BaseResponse:
    """The patient switches between Japanese and English mid-way."""
    try:
        data = LanguageSchema().load({k: v for k, v in request.form.items() if k != "here"})
    except ValidationError:
        abort(400)
    with state().sessions.begin() as session:
        draft = _live_draft(session)
        if draft is None:
            return _to_start()
        draft.lang = data["lang"]
        services.touch(draft, _now())
        step = draft.step
    endpoint = _RETURN_TO.get(request.form.get("here", ""))
    return redirect(url_for(endpoint) if endpoint else _step_url(step), 303)
