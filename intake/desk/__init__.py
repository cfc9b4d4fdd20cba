"""The front-desk page at /desk: recent intakes by urgency and live emergency alerts.

Staff sign in with the staff PIN (the same one as the tablet's start screen) until the
sign-in and roles of a later issue replace it. Alerts arrive by server-sent events; the
stream is fed from the database (the system of record) and woken at once by the
``intake:alerts`` Redis channel, so a lost publish only delays an alert by one poll.
"""

from flask import Blueprint

bp = Blueprint("desk", __name__, static_folder="static", static_url_path="/static")

from intake.desk import views as views  # noqa: E402,F401
