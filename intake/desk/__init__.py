"""The front-desk page at /desk: recent intakes by urgency and live emergency alerts.

Staff sign in as users (:mod:`intake.auth`: front desk, practitioner or admin); the page
is a staff page like the worklist, with the header naming who is signed in, sign-out,
and the idle time-out that leaves the page when the sign-in ends. The tablet keeps its
staff PIN: it is handed to patients, and a sign-in there would be theirs to use.

Alerts arrive by server-sent events; the stream is fed from the database (the system of
record) and woken at once by the ``intake:alerts`` Redis channel, so a lost publish only
delays an alert by one poll. Each stream ends no later than the sign-in would (the page
reconnects, and a reconnection after the sign-in ended is refused and shown).
"""

from flask import Blueprint

bp = Blueprint("desk", __name__, static_folder="static", static_url_path="/static")

from intake.desk import views as views  # noqa: E402,F401
