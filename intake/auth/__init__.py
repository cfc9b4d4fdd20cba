"""Staff sign-in and roles, for every staff page (/review, /desk, /admin).

Users are rows with an argon2id password hash and one role (practitioner, front desk,
admin). A sign-in creates a server-side session: the browser holds only a random token in
an HttpOnly, SameSite=Strict cookie, a new one at every sign-in (so a token planted before
sign-in is worthless). A session ends at sign-out, after ``INTAKE_SESSION_IDLE_MINUTES``
without activity, at ``INTAKE_SESSION_MAX_HOURS`` however active, and when the user is
disabled or their password reset. Wrong passwords lock the account for 15 minutes after
five tries (an unknown name likewise, so the lock-out does not tell which names exist),
and the client address after twenty (so one address cannot try many names).

Staff pages are guarded by ``intake.web`` (a staff blueprint puts every view behind
:func:`intake.web.require_roles`); the route test in ``tests/auth`` walks every URL rule
of the app, so a new page without it is caught.
"""

from intake.web import browser_blueprint

bp = browser_blueprint("auth", __name__, static_folder="static", static_url_path="/static")

from intake.auth import views as views  # noqa: E402
