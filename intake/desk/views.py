"""Views of the front-desk page: the alerts (answered as the signed-in user), the table
of recent intakes and its refresh. The alerts' live stream comes from the live process.

Every view needs a signed-in front desk, practitioner or admin (:func:`require_roles`).
The page is a browser page (not signed in: to the sign-in form and back); the table
refresh and the state check are requests the page makes on its own, so they answer 401
instead of redirecting and do not count as activity: an unattended desk still reaches
the idle time-out. The screen that must stay live all day is the board (``/board``).
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, render_template
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.alerts.views import live_context
from intake.auth import current_user, require_roles
from intake.auth.i18n import translator
from intake.auth.web import Principal, error_page, staff_lang
from intake.desk import bp, services
from intake.kiosk import i18n
from intake.kiosk.web import csrf_token, protect
from intake.storage.models import Role, utcnow

log = logging.getLogger(__name__)

# Who may open the desk: the front desk, and the clinicians and admins who stand in.
DESK_ROLES = (Role.FRONT_DESK, Role.PRACTITIONER, Role.ADMIN)


protect(bp)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    return error_page(exc)


def _user() -> Principal:
    user = current_user()
    assert user is not None  # require_roles let the request through
    return user


def _tz() -> ZoneInfo:
    return ZoneInfo(state().settings.display_timezone)


def _rows_context(lang: str) -> dict[str, Any]:
    now = utcnow()
    tz = _tz()
    with state().sessions() as session:
        rows = services.recent_intakes(session, now)

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

    return {"rows": [view(r) for r in rows]}


@bp.get("")
@bp.get("/")
@require_roles(*DESK_ROLES)
def index() -> str:
    """The desk page: open alerts and the recent intakes, in the staff frame."""
    lang = staff_lang()
    user = _user()
    context = _rows_context(lang)
    with state().sessions.begin() as session:
        audit.record(session, actor=user.name, action="desk.viewed", entity_type="desk",
                     entity_id="recent", detail={"rows": len(context["rows"])})
    return render_template("desk/index.html", lang=lang, t=translator(lang), user=user,
                           csrf_token=csrf_token(), **context, **live_context(lang))


@bp.get("/rows")
@require_roles(*DESK_ROLES, page=False, touch=False)
def rows() -> str:
    """The table body, for the page's script to refresh after an event."""
    lang = staff_lang()
    return render_template("desk/_rows.html", lang=lang, t=translator(lang),
                           **_rows_context(lang))


@bp.get("/state")
@require_roles(*DESK_ROLES, page=False, touch=False)
def session_state() -> BaseResponse:
    """For the page's script: the sign-in is still valid (401 when it is not), to tell a
    lost connection from an ended sign-in. Not activity."""
    return jsonify({"signed_in": True, "seconds_left": int(_user().seconds_left)})
