"""The board page (``/board``) and the answer to an alert (``POST /alerts/<id>``).

The board is an enrolled device (``intake.devices``), not a sign-in: it stays live all
day with nobody touching it, and shows only what the front desk needs to act (see
:func:`intake.alerts.services.board_alerts`). Its stream comes from the live process
(``/live/board``). Staff answer an alert there by choosing their name; on the desk and
the worklist, signed in, the answer is theirs. Either way it is stored and audited with
who, when and from where, and reaches every screen within a second.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Response, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.alerts import services
from intake.alerts.i18n import ALERTS, labels
from intake.devices.web import current_device, renew_device_cookie
from intake.live.changes import latest_cursor
from intake.live.notify import publish
from intake.storage.models import DeviceKind, Role, utcnow
from intake.web import browser_blueprint, csrf_token, error_page, load_principal, staff_lang

STAFF_ROLES = tuple(Role)  # every role answers alerts: the front desk and those who stand in
MAX_ID = 2**31 - 1  # larger ids are no alert (and no integer the database takes)
VIA = ("board", "desk", "review")


def _http_error(exc: HTTPException) -> Any:
    if request.path.startswith("/alerts/") and request.method == "POST":
        return jsonify({"error": exc.description or exc.name}), exc.code or 500
    return error_page(exc)


bp = browser_blueprint("alerts", __name__, errors=_http_error, static_folder="static",
                       static_url_path="/alerts/static")


def live_context(lang: str) -> dict[str, Any]:
    """What ``alerts/_live.html`` needs besides its mode: the alert list's wording (for
    the script, as JSON), the heartbeat, ``at`` for its own strings, and where the page's
    data was read (time and database cursor: its stream announces what changed after;
    call this before reading the page's data)."""
    with state().sessions() as session:
        cursor = latest_cursor(session)
    return {"labels": json.dumps(labels(lang), ensure_ascii=False, separators=(",", ":")),
            "heartbeat": state().settings.live_heartbeat_seconds,
            "since": f"{time.time():.3f}", "cursor": str(cursor),
            "at": ALERTS.translator(lang)}


@bp.get("/board")
def board() -> BaseResponse:
    """The front desk's alert board: an enrolled board device only."""
    device = current_device(DeviceKind.BOARD)
    lang = staff_lang()
    if device is None:
        return redirect(f"/devices/enroll?kind=board&lang={lang}", 303)
    with state().sessions.begin() as session:
        audit.record(session, actor=device.actor, action="board.opened", entity_type="device",
                     entity_id=str(device.id))
    t = ALERTS.translator(lang)
    page = Response(render_template("alerts/board.html", lang=lang, t=t,
                                    csrf_token=csrf_token(), user=None, device=device,
                                    **live_context(lang)))
    return renew_device_cookie(page)


@bp.get("/board/staff")
def staff_names() -> BaseResponse:
    """Who a board offers when asking who is answering (active staff, names only)."""
    if current_device(DeviceKind.BOARD) is None:
        return jsonify({"error": "not an enrolled board"}), 401  # type: ignore[return-value]
    with state().sessions() as session:
        names = services.staff_names(session)
    return jsonify({"names": names})


@bp.get("/alerts/token")
def form_token() -> BaseResponse:
    """A fresh CSRF token for this browser's answers: a page that stays open all day
    outlives its own (a sign-in or sign-out on the same PC starts a new one)."""
    return jsonify({"csrf_token": csrf_token()})


@bp.post("/alerts/<int:alert_id>")
def answer(alert_id: int) -> Any:
    """対応中 / 確認済 for an alert: from a signed-in staff page (the answer is the
    user's), or from an enrolled board (the name chosen there, which must be an active
    staff user's). JSON in and out, for the page's script."""
    principal = load_principal(touch=True)
    device = current_device(DeviceKind.BOARD)
    if principal is None and device is None:
        return jsonify({"error": "sign in, or answer from an enrolled board"}), 401
    wanted = request.form.get("state", "")
    via_kind = request.form.get("via", "")
    if via_kind not in VIA:
        return jsonify({"error": "via must be board, desk or review"}), 400
    if alert_id > MAX_ID:
        return jsonify({"error": "no such alert"}), 404
    now = utcnow()
    st = state()
    with st.sessions.begin() as session:
        if principal is not None and principal.role in STAFF_ROLES:
            by, declared = principal.name, False
        elif device is not None and via_kind == "board":
            chosen = request.form.get("name", "")
            if chosen not in services.staff_names(session):
                return jsonify({"error": "choose the name of an active staff member"}), 400
            by, declared = chosen, True
        elif principal is not None:
            return jsonify({"error": "this role cannot answer alerts"}), 403
        else:
            return jsonify({"error": "sign in, or answer from an enrolled board"}), 401
        via = f"board:{device.name}" if via_kind == "board" and device is not None \
            else via_kind
        try:
            done = services.answer(session, alert_id, wanted, by=by, via=via, now=now,
                                   declared=declared)
        except services.AlertNotFound as exc:
            return jsonify({"error": str(exc)}), 404
        except services.AlertConflict as exc:
            return jsonify({"error": str(exc), "conflict": True}), 409
        except services.AlertError as exc:
            return jsonify({"error": str(exc)}), 400
    if done.changed:
        publish(st.settings.redis_url, "alert", alert=alert_id)
    return jsonify({"id": done.alert_id, "state": done.state, "changed": done.changed})
