"""Sign-in, sign-out and the session check the staff pages' script makes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import jsonify, render_template, request
from marshmallow import Schema, ValidationError, fields, validate
from werkzeug.wrappers import Response

from intake import state
from intake.auth import bp, users
from intake.auth.i18n import STAFF
from intake.live.notify import publish
from intake.storage.models import Role, utcnow
from intake.web import (
    csrf_token,
    idle_timeout,
    load_principal,
    max_age,
    rotate_csrf,
    set_cookie,
    staff_lang,
)

SESSION_COOKIE = users.SESSION_COOKIE


class SignInForm(Schema):
    class Meta:
        unknown = "exclude"  # the CSRF token and the next path are read separately

    name = fields.Str(required=True, validate=validate.Length(1, 64))
    password = fields.Str(required=True, validate=validate.Length(1, 256))


def lang() -> str:
    return staff_lang()


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


@bp.app_context_processor
def _staff_template_helpers() -> dict[str, Any]:
    def lang_switch_url(code: str) -> str:
        """This page in the other language, keeping its other parameters (a sign-in
        page keeps where to return to and why it is shown)."""
        args = request.args.to_dict(flat=True)
        args["lang"] = code
        return request.path + "?" + urlencode(args)

    return {"lang_switch_url": lang_switch_url}


def _form(error: str | None, status: int, nxt: str | None, name: str = "",
          notice: str | None = None) -> tuple[str, int]:
    lg = lang()
    return render_template("auth/signin.html", lang=lg, t=STAFF.translator(lg),
                           csrf_token=csrf_token(), error=error, notice=notice,
                           next=nxt or "", name=name, user=None), status


@bp.get("/signin")
def signin_form() -> tuple[str, int]:
    notice = None
    if request.args.get("timed_out") == "1":
        notice = STAFF.text("timed_out", lang())
    elif request.args.get("signed_out") == "1":
        notice = STAFF.text("signed_out", lang())
    return _form(None, 200, safe_next(request.args.get("next")), notice=notice)


@bp.post("/signin")
def signin() -> Any:
    t = STAFF.translator(lang())
    nxt = safe_next(request.form.get("next"))
    try:
        data = SignInForm().load(request.form.to_dict())
    except ValidationError:
        return _form(t("err_input"), 422, nxt)
    now = utcnow()
    address = request.remote_addr or "unknown"
    with state().sessions.begin() as session:
        verdict = users.authenticate(session, data["name"], data["password"],
                                     address=address, now=now)
        token = None
        role = None
        if verdict.user is not None:
            role = Role(verdict.user.role)
            # The sign-in this browser had (another user's, perhaps) ends here: one
            # browser, one session, and its old token is worthless from now on.
            users.end_session(session, request.cookies.get(SESSION_COOKIE))
            users.purge_expired(session, now)
            token = users.start_session(session, verdict.user, address=address, now=now,
                                        max_age=max_age())
    if token is None or role is None:
        if verdict.locked_minutes:
            body, status = _form(t("err_signin_locked", m=verdict.locked_minutes), 429, nxt,
                                 data["name"])
            return Response(body, status,
                            headers={"Retry-After": str(verdict.locked_minutes * 60)})
        return _form(t("err_signin"), 403, nxt, data["name"])
    target = nxt or home_for(role)
    response = Response(status=303, headers={"Location": target})
    set_cookie(response, SESSION_COOKIE, token, "/")
    rotate_csrf()  # forms rendered before sign-in stop working
    return response


@bp.post("/signout")
def signout() -> Response:
    with state().sessions.begin() as session:
        ended = users.end_session(session, request.cookies.get(SESSION_COOKIE))
    if ended is not None:
        publish(state().settings.redis_url, "session")  # its live streams end at once
    response = Response(status=303, headers={"Location": "/auth/signin?signed_out=1"})
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict",
                           secure=request.is_secure)
    rotate_csrf()
    return response


@bp.get("/state")
def session_state() -> Response:
    """For the staff pages' script: still signed in, and for how long without activity.
    Does not count as activity."""
    principal = load_principal(touch=False)
    if principal is None:
        return jsonify({"signed_in": False})
    return jsonify({"signed_in": True, "seconds_left": int(principal.seconds_left),
                    "idle_seconds": int(idle_timeout().total_seconds()),
                    "role": principal.role.value})


@bp.get("/keepalive")
def keepalive() -> Response:
    """The page's script reports that someone is using the page (a key, a click), which
    counts as activity for the idle time-out."""
    principal = load_principal(touch=True)
    if principal is None:
        return jsonify({"signed_in": False})
    return jsonify({"signed_in": True})
