"""Views of the front-desk page: sign-in with the staff PIN, the list, the live stream."""

from __future__ import annotations

import logging
import time
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, jsonify, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.desk import bp, services
from intake.kiosk import i18n
from intake.kiosk.pin import check_pin, client_key
from intake.kiosk.schemas import SignInSchema
from intake.kiosk.views import kiosk_config
from intake.kiosk.web import (
    check_csrf,
    csrf_token,
    finish_response,
    load_signed,
    rotate_csrf,
    serializer,
    set_cookie,
)
from intake.storage.models import utcnow

log = logging.getLogger(__name__)

COOKIE = "intake_desk"
COOKIE_SALT = "desk-session"
PATH = "/desk"
ACTOR = "front_desk"


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    return finish_response(response)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    lang = _lang()
    key = "expired" if exc.code == 400 else "error"
    return render_template("desk/error.html", lang=lang, t=_tr(lang),
                           title=i18n.t(f"{key}_title", lang)), exc.code or 500


def _lang() -> str:
    return i18n.negotiate(request.args.get("lang"), request.accept_languages.values())


def _tr(lang: str) -> Any:
    def tr(key: str, **values: object) -> str:
        return i18n.t(key, lang, **values)

    return tr


def _signed_in_at() -> float | None:
    """When this browser signed in, if its desk sign-in is still valid."""
    hours = state().settings.desk_session_hours
    value = load_signed(COOKIE_SALT, request.cookies.get(COOKIE), hours * 3600)
    if isinstance(value, dict) and isinstance(value.get("at"), int | float):
        return float(value["at"])
    return None


def _seconds_left(signed_at: float) -> float:
    return signed_at + state().settings.desk_session_hours * 3600 - time.time()


def _tz() -> ZoneInfo:
    return ZoneInfo(state().settings.display_timezone)


def _rows_context(lang: str) -> dict[str, Any]:
    now = utcnow()
    tz = _tz()
    with state().sessions() as session:
        rows = services.recent_intakes(session, now)
        cursor = services.latest_cursor(session)

    def view(r: services.DeskRow) -> dict[str, Any]:
        return {"business_id": r.business_id,
                "time": services.format_time(r.received_at, tz, now),
                "urgency": r.urgency or "pending",
                "urgency_label": services.urgency_text(r.urgency, lang),
                "department_label": services.department_text(r.department, lang),
                "status_label": i18n.t(f"status_{r.status}", lang)
                if f"status_{r.status}" in i18n.CATALOG else r.status,
                "source_label": i18n.t(f"source_{r.source}", lang)
                if f"source_{r.source}" in i18n.CATALOG else r.source}

    return {"rows": [view(r) for r in rows],
            "alerts": [view(r) for r in services.open_alerts(rows, now)],
            "cursor": cursor}


@bp.get("")
@bp.get("/")
def index() -> BaseResponse | str:
    """The desk page, or its sign-in form."""
    lang = _lang()
    if _signed_in_at() is None:
        return render_template("desk/signin.html", lang=lang, t=_tr(lang),
                               csrf_token=csrf_token(), error=None)
    context = _rows_context(lang)
    with state().sessions.begin() as session:
        audit.record(session, actor=ACTOR, action="desk.viewed", entity_type="desk",
                     entity_id="recent", detail={"rows": len(context["rows"])})
    return render_template("desk/index.html", lang=lang, t=_tr(lang), csrf_token=csrf_token(),
                           **context)


@bp.get("/rows")
def rows() -> BaseResponse | str:
    """The table body, for the page's script to refresh after an event."""
    if _signed_in_at() is None:
        return Response(status=401)
    lang = _lang()
    return render_template("desk/_rows.html", lang=lang, t=_tr(lang), **_rows_context(lang))


@bp.post("/signin")
def signin() -> BaseResponse | tuple[str, int]:
    lang = _lang()
    try:
        data = SignInSchema().load(request.form.to_dict())
    except ValidationError:
        return render_template("desk/signin.html", lang=lang, t=_tr(lang),
                               csrf_token=csrf_token(),
                               error=i18n.t("err_pin", lang)), 422
    with state().sessions.begin() as session:
        verdict = check_pin(session, kiosk_config().pin_hash, data["pin"],
                            client_key(request.remote_addr), utcnow())
        if verdict.ok:
            audit.record(session, actor=ACTOR, action="desk.signed_in", entity_type="desk",
                         entity_id="session")
    if not verdict.ok:
        error = (i18n.t("err_locked", lang, m=verdict.locked_minutes)
                 if verdict.locked_minutes else i18n.t("err_pin", lang))
        return render_template("desk/signin.html", lang=lang, t=_tr(lang),
                               csrf_token=csrf_token(), error=error), \
            429 if verdict.locked_minutes else 403
    response = redirect(url_for("desk.index", lang=lang), 303)
    set_cookie(response, COOKIE, serializer(COOKIE_SALT).dumps({"at": time.time()}), PATH)
    rotate_csrf()
    return response


@bp.post("/signout")
def signout() -> BaseResponse:
    response = redirect(url_for("desk.index", lang=_lang()), 303)
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="Strict",
                           secure=request.is_secure)
    rotate_csrf()
    return response


@bp.get("/state")
def session_state() -> BaseResponse:
    """For the page's script: is the sign-in still valid (to tell a lost connection from
    an ended sign-in)?"""
    return jsonify({"signed_in": _signed_in_at() is not None})


@bp.get("/stream")
def stream() -> BaseResponse:
    """Server-sent events: 'alert' for emergencies, 'update' for other results, 'ping'."""
    signed_at = _signed_in_at()
    if signed_at is None:
        return Response(status=401)
    st = state()
    cursor = _cursor()
    if cursor is None:
        with st.sessions() as session:
            cursor = services.latest_cursor(session)
    duration = min(st.settings.desk_stream_seconds, max(1.0, _seconds_left(signed_at)))
    body = services.stream(st.sessions, redis_url=st.settings.redis_url, cursor=cursor,
                           duration=duration, lang=_lang(), tz=_tz())
    return Response(body, mimetype="text/event-stream",
                    headers={"X-Accel-Buffering": "no"})


def _cursor() -> int | None:
    """Where the browser's stream left off: Last-Event-ID on a reconnect, else the
    ``after`` the page was rendered with (results before it are already on the page)."""
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("after")):
        if raw is not None and raw.isdigit() and len(raw) < 19:
            return int(raw)
    return None
