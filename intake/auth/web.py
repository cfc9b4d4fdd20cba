"""The sign-in check for views: who is signed in, and :func:`require_roles`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import Response, abort, g, redirect, request

from intake import state
from intake.auth import users
from intake.storage.models import Role, utcnow

SESSION_COOKIE = "intake_session"
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


def signin_url() -> str:
    nxt = request.full_path if request.query_string else request.path
    return "/auth/signin?" + urlencode({"next": nxt})


def require_roles(*roles: Role, page: bool = True, touch: bool = True) -> Callable[[F], F]:
    """Only signed-in users with one of ``roles`` reach the view.

    ``page``: a browser page (not signed in: redirect to the sign-in form, then back);
    otherwise (a fragment, the live stream, a JSON check) answer 401 for the page's
    script. ``touch=False`` for requests a page makes on its own, which must not keep an
    idle sign-in alive. The view is marked so the route test can see it is protected.
    """
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = load_principal(touch=touch)
            if principal is None:
                if page and request.method == "GET":
                    return redirect(signin_url(), 303)
                return Response(status=401)
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
