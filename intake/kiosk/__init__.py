"""The tablet flow at /kiosk: staff start screen, questionnaire, review, closing message.

Server-rendered forms, one screen per POST, so the core flow works without script; a
small script adds instant show/hide of dependent questions, autosave and the idle timer.
Answers live only in the database (a draft keyed by an opaque cookie), never in URLs or
browser storage.
"""

from flask import Blueprint

bp = Blueprint("kiosk", __name__, static_folder="static", static_url_path="/static")

from intake.kiosk import views as views  # noqa: E402
