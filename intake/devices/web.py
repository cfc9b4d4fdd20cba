"""The device a request comes from: its cookie, read once per request."""

from __future__ import annotations

from datetime import timedelta

from flask import g, request
from werkzeug.wrappers import Response

from intake import state
from intake.devices import services
from intake.storage.models import DeviceKind, utcnow
from intake.web import set_cookie

COOKIE = services.COOKIE
# Browsers cap a cookie's life at 400 days; an enrolled device renews it on every page.
COOKIE_MAX_AGE = int(timedelta(days=400).total_seconds())


def current_device(kind: DeviceKind) -> services.Known | None:
    """The enrolled device of ``kind`` this request comes from, or None (not enrolled,
    revoked, or another kind). Notes that it was seen."""
    cache: dict[DeviceKind, services.Known | None] = g.setdefault("devices", {})
    if kind not in cache:
        with state().sessions.begin() as session:
            cache[kind] = services.identify(session, request.cookies.get(COOKIE),
                                            now=utcnow(), kind=kind)
    return cache[kind]


def set_device_cookie(response: Response, token: str) -> None:
    set_cookie(response, COOKIE, token, "/", max_age=COOKIE_MAX_AGE)


def renew_device_cookie(response: Response) -> Response:
    """An enrolled device's page sets its cookie again, so it never reaches the
    browser's 400-day limit on a device in daily use."""
    token = request.cookies.get(COOKIE)
    if token and any(g.get("devices", {}).values()):
        set_device_cookie(response, token)
    return response
