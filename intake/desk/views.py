"""Views of the front-desk page: the alerts (answered as the signed-in user), the table
of recent intakes and its refresh. The alerts' live stream comes from the live process.

Every view needs a signed-in front desk, practitioner or admin (the blueprint is a
staff blueprint: :func:`intake.web.staff_blueprint`). The page is a browser page (not
signed in: to the sign-in form and back); the table refresh and the state check are
requests the page makes on its own (``background=True``), so they answer 401 instead of
redirecting and do not count as activity: an unattended desk still reaches the idle
time-out. The screen that must stay live all day is the board (``/board``).
"""

from __future__ import annotations

import logging
from typing import Any
from zoneinfo import ZoneInfo

from flask import jsonify, render_template
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.alerts.views import live_context
from intake.auth.i18n import STAFF
from intake.desk import bp, services
from intake.kiosk.i18n import KIOSK
from intake.storage.models import utcnow
from intake.web import csrf_token, current_user, staff_lang

log = logging.getLogger(__name__)


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
                "status_label": KIOSK.text(f"status_{r.status}", lang)
                if f"status_{r.status}" in KIOSK else r.status,
                "source_label": KIOSK.text(f"source_{r.source}", lang)
                if f"source_{r.source}" in KIOSK else r.source}

    return {"rows": [view(r) for r in rows]}


@bp.get("")
@bp.get("/")
def index() -> str:
    """The desk page: open alerts and the recent intakes, in the staff frame."""
    lang = staff_lang()
    user = current_user()
    context = _rows_context(lang)
    with state().sessions.begin() as session:
        audit.record(session, actor=user.name, action="desk.viewed", entity_type="desk",
                     entity_id="recent", detail={"rows": len(context["rows"])})
    return render_template("desk/index.html", lang=lang, t=STAFF.translator(lang), user=user,
                           csrf_token=csrf_token(), **context, **live_context(lang))


@bp.get("/rows", background=True)
def rows() -> str:
    """The table body, for the page's script to refresh after an event."""
    lang = staff_lang()
    return render_template("desk/_rows.html", lang=lang, t=STAFF.translator(lang),
                           **_rows_context(lang))


@bp.get("/state", background=True)
def session_state() -> BaseResponse:
    """For the page's script: the sign-in is still valid (401 when it is not), to tell a
    lost connection from an ended sign-in. Not activity."""
    return jsonify({"signed_in": True, "seconds_left": int(current_user().seconds_left)})
