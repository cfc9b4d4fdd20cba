"""The JSON API: submit an intake, read its state."""

from flask import Blueprint

bp = Blueprint("api", __name__)

from intake.api import views as views  # noqa: E402
