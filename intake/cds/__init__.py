"""CDS Hooks under ``/cds-services``: discovery, the knee triage service and its
feedback endpoint (CDS Hooks 2.0). Errors are JSON ``{"error", "errors"}`` as on /api."""

from flask import Blueprint

bp = Blueprint("cds", __name__)

from intake.cds import views as views  # noqa: E402
