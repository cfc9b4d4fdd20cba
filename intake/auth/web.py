"""The sign-in check for views: who is signed in, and :func:`require_roles`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Response, abort, g, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from intake import state
from intake.auth import users
from intake.auth.i18n import translator
from intake.kiosk import i18n
from intake.kiosk.web import csrf_token
from intake.storage.models import Role, utcnow

SESSION_COOKIE = users.SESSION_COOKIE
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    """The signed-in member of staff."""

    user_id: int
    name: str
    role: Role
    seconds_left: float  # until the idle time-out or the absolute lifetime, whichever first


def idle_timeout() -> timedelta:
    return timedelta(minutes=state().settings.session_idle_minutes)


def max_age() -> timedelta:
    return timedelta(hours=state().settings.session_max_hours)


def load_principal(*, touch: bool) -> Principal | None:
    """Who this request is from (checked against the database once per request)."""
    if "principal" in g:
        found: Principal | None = g.principal
        return found
    now = utcnow()
    with state().sessions.begin() as session:
        active = users.load_session(session, request.cookies.get(SESSION_COOKIE), now=now,
                                    idle=idle_timeout(), touch=touch)
    principal = None
    if active is not None:
        principal = Principal(active.user_id, active.name, Role(active.role),
                              max(0.0, (active.idle_deadline - now).total_seconds()))
    g.principal = principal
    return principal


def current_user() -> Principal | None:
    """The signed-in user of this request, if :func:`require_roles` let it through."""
    found: Principal | None = g.get("principal")
    return found


def staff_lang() -> str:
    """Language of a staff page: ``?lang=``, else the browser's, else Japanese."""
    return i18n.negotiate(request.args.get("lang"), request.accept_languages.values())


def signin_url() -> str:
    """The sign-in form, returning to this page afterwards (in the same language)."""
    nxt = request.full_path if request.query_string else request.path
    params = {"next": nxt}
    if request.args.get("lang") in i18n.LANGS:
        params["lang"] = request.args["lang"]
    return "/auth/signin?" + urlencode(params)


_ERROR_TEXTS: dict[int, tuple[str, str | None]] = {
    400: ("expired_title", None),  # in practice a form whose CSRF token has expired
    401: ("signed_out_title", None),
    403: ("forbidden_title", "forbidden_body"),
    404: ("not_found_title", None),
}


def error_page(exc: HTTPException) -> tuple[str, int]:
    """The error page of the staff blueprints (register it with ``errorhandler``): the
    staff frame with who is signed in, a title by status, never a detail of the request
    (which could name a patient)."""
    lang = staff_lang()
    t = translator(lang)
    code = exc.code or 500
    title, body = _ERROR_TEXTS.get(code, ("error_title", None))
    return render_template("staff/error.html", lang=lang, t=t, title=t(title),
                           body=t(body) if body else None, user=current_user(),
                           csrf_token=csrf_token()), code


def require_roles(*roles: Role, page: bool = True, touch: bool = True) -> Callable[[F], F]:
    """Only signed-in users with one of ``roles`` reach the view.

    ``page``: a browser page (not signed in: a GET is redirected to the sign-in form,
    then back; a form post gets 401 through the blueprint's error page); otherwise (a
    fragment, the live stream, a JSON check) a bare 401 for the page's script.
    ``touch=False`` for requests a page makes on its own, which must not keep an idle
    sign-in alive. The view is marked so the route test can see it is protected.
    """
    if not roles or not all(isinstance(r, Role) for r in roles):
        raise ValueError("require_roles needs one or more Role values")
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = load_principal(touch=touch)
            if principal is None:
                if not page:
                    return Response(status=401)
                if request.method == "GET":
                    return redirect(signin_url(), 303)
                # A form sent after the sign-in ended: the blueprint's error page says
                # to sign in again (a redirect would lose the form and its meaning).
                abort(401)
            if principal.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        wrapper.required_roles = allowed  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


def home_for(role: Role) -> str:
    """Where a user lands after signing in."""
    return {Role.PRACTITIONER: "/review", Role.FRONT_DESK: "/desk",
            Role.ADMIN: "/admin"}[role]


def safe_next(value: str | None) -> str | None:
    """A local path to return to after sign-in, or None (never another site)."""
    if not value or len(value) > 500:
        return None
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(c) < 32 for c in value):
        return None
    return value
