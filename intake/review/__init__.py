"""The practitioners' side at /review: the worklist, the case view and its actions."""

from flask import Blueprint

bp = Blueprint("review", __name__, static_folder="static", static_url_path="/static")

from intake.review import views as views  # noqa: E402,F401
