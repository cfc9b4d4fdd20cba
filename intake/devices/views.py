"""The enrollment page: a one-time code from an admin, typed on the device itself.

``GET /devices/enroll`` shows the form (with what the device is for); ``POST`` spends the
code, sets the device cookie and goes on to the board or the tablet's start screen.
Wrong codes count towards a lock-out of the address; nothing about the code or which
devices exist is echoed.
"""

from __future__ import annotations

from flask import redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from intake import state
from intake.devices import services
from intake.devices.i18n import DEVICES
from intake.devices.web import set_device_cookie
from intake.live.notify import publish
from intake.storage.models import DeviceKind, utcnow
from intake.web import browser_blueprint, csrf_token, staff_lang

bp = browser_blueprint("devices", __name__)
HOME = {DeviceKind.BOARD.value: "/board", DeviceKind.TABLET.value: "/kiosk"}


def _page(status: int = 200, **context: object) -> tuple[str, int]:
    lang = staff_lang()
    wanted = request.values.get("kind")
    return render_template("devices/enroll.html", lang=lang, t=DEVICES.translator(lang),
                           csrf_token=csrf_token(), user=None,
                           kind=wanted if wanted in HOME else None, **context), status


@bp.get("/enroll")
def enroll_form() -> tuple[str, int]:
    """Enter the code an admin issued for this device."""
    return _page()


@bp.post("/enroll")
def enroll() -> BaseResponse | tuple[str, int]:
    code = request.form.get("code", "")[:40]
    with state().sessions.begin() as session:
        verdict = services.enroll(session, code, address=request.remote_addr or "unknown",
                                  now=utcnow())
        kind = verdict.device.kind if verdict.device is not None else None
    if not verdict.ok or verdict.token is None or kind is None:
        t = DEVICES.translator(staff_lang())
        if verdict.locked_minutes:
            return _page(429, error=t("enroll_locked", m=verdict.locked_minutes))
        return _page(422, error=t("enroll_wrong"))
    # A browser this enrollment replaced stops receiving at once.
    publish(state().settings.redis_url, "device")
    lang = staff_lang()
    response = redirect(f"{HOME[kind]}?lang={lang}", 303)
    set_device_cookie(response, verdict.token)
    return response
