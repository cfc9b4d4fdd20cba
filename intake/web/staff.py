"""The browser blueprints' guards: who is signed in, :func:`require_roles`, the staff
error page, and the factories that install them.

:func:`browser_blueprint` is for every blueprint of pages a browser opens (CSRF on every
state-changing request, the security headers, the staff error page); a
:class:`StaffBlueprint` (:func:`staff_blueprint`) adds the sign-in and role guard to
every view it registers, so a staff page cannot forget it.

The sign-in itself is :mod:`intake.auth`'s; this module reads it (``intake.auth`` is
imported where it is used, not at the top: its blueprint is made by
:func:`browser_blueprint`, so importing it here would be circular).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, Response, abort, g, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from intake import state
from intake.storage.models import Role, utcnow
from intake.web import i18n
from intake.web.security import csrf_token, protect

F = TypeVar("F", bound=Callable[..., Any])
ErrorHandler = Callable[[HTTPException], Any]


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
    from intake.auth import users

    if "principal" in g:
        found: Principal | None = g.principal
        return found
    now = utcnow()
    with state().sessions.begin() as session:
        active = users.load_session(session, request.cookies.get(users.SESSION_COOKIE),
                                    now=now, idle=idle_timeout(), touch=touch)
    principal = None
    if active is not None:
        principal = Principal(active.user_id, active.name, Role(active.role),
                              max(0.0, (active.idle_deadline - now).total_seconds()))
    g.principal = principal
    return principal


def signed_in() -> Principal | None:
    """Who is signed in, if this request's sign-in was checked (by :func:`require_roles`
    or :func:`load_principal`): for the staff frame, which also shows on pages anybody
    may open (the error page, the sign-in form)."""
    found: Principal | None = g.get("principal")
    return found


def current_user() -> Principal:
    """The signed-in user of a staff view. A view behind :func:`require_roles` always
    has one; anywhere else the request gets a bare 401."""
    user = signed_in()
    if user is None:
        abort(401)
    return user


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
    400: ("form_expired_title", None),  # in practice a form whose CSRF token has expired
    401: ("signed_out_title", None),
    403: ("forbidden_title", "forbidden_body"),
    404: ("not_found_title", None),
}
ERROR_TITLE = "page_error_title"  # any other status


def error_page(exc: HTTPException) -> tuple[str, int]:
    """The error page of the browser blueprints (installed by :func:`browser_blueprint`):
    the staff frame with who is signed in, a title by status, never a detail of the
    request (which could name a patient)."""
    from intake.auth.i18n import STAFF

    lang = staff_lang()
    t = STAFF.translator(lang)
    code = exc.code or 500
    title, body = _ERROR_TEXTS.get(code, (ERROR_TITLE, None))
    return render_template("staff/error.html", lang=lang, t=t, title=t(title),
                           body=t(body) if body else None, user=signed_in(),
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


def browser_blueprint(name: str, import_name: str, *,
                      errors: ErrorHandler = error_page, **options: Any) -> Blueprint:
    """A blueprint of pages a browser opens: CSRF on every state-changing request, the
    security headers (and the CSRF cookie) on every response, and ``errors`` (the staff
    error page unless told otherwise) for every HTTP error. ``options`` go to
    :class:`flask.Blueprint`."""
    bp = Blueprint(name, import_name, **options)
    _install(bp, errors)
    return bp


def _install(bp: Blueprint, errors: ErrorHandler) -> None:
    protect(bp)
    bp.register_error_handler(HTTPException, errors)


class StaffBlueprint(Blueprint):
    """A blueprint of staff pages: the guards of :func:`browser_blueprint`, and every
    view it registers behind :func:`require_roles` with the blueprint's roles (sign-in,
    role, idle time-out).

    A route given ``background=True`` (``@bp.get("/rows", background=True)``) is a
    request the page makes on its own (a fragment, a state check): without a sign-in a
    bare 401 rather than the sign-in page, and it does not count as activity.
    """

    def __init__(self, name: str, import_name: str, *, roles: Iterable[Role],
                 errors: ErrorHandler = error_page, **options: Any) -> None:
        super().__init__(name, import_name, **options)
        self.roles = tuple(roles)
        require_roles(*self.roles)  # refuses an empty or wrong list at once
        self._guarded: dict[tuple[Callable[..., Any], bool], Callable[..., Any]] = {}
        _install(self, errors)

    def add_url_rule(self, rule: str, endpoint: str | None = None,
                     view_func: Callable[..., Any] | None = None,
                     provide_automatic_options: bool | None = None,
                     **options: Any) -> None:
        background = bool(options.pop("background", False))
        if view_func is not None:
            # One guarded view per function, however many rules it serves.
            key = (view_func, background)
            if key not in self._guarded:
                self._guarded[key] = require_roles(*self.roles, page=not background,
                                                   touch=not background)(view_func)
            view_func = self._guarded[key]
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options,
                             **options)


def staff_blueprint(name: str, import_name: str, *, roles: Iterable[Role],
                    **options: Any) -> StaffBlueprint:
    """A :class:`StaffBlueprint`: only signed-in users with one of ``roles`` reach its
    views."""
    return StaffBlueprint(name, import_name, roles=roles, **options)
