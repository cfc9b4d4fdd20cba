"""The admin pages at /admin (admin role only): the audit trail with its tamper check,
filters, and CSV and FHIR AuditEvent downloads; and a read-only list of the users who
have access (users are changed on the server with ``intake users ...``).

Looking at or downloading the audit trail is itself recorded in it (``audit.viewed``,
``audit.exported``) with who and from where, and the names of the filters used, never
their values.
"""

from intake.storage.models import Role
from intake.web import staff_blueprint

bp = staff_blueprint("admin", __name__, roles=(Role.ADMIN,), static_folder="static",
                     static_url_path="/static")

from intake.admin import views as views  # noqa: E402
