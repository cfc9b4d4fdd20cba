"""The practitioners' side at /review: the worklist, the case view and its actions."""

from intake.storage.models import Role
from intake.web import staff_blueprint

ROLES = (Role.PRACTITIONER, Role.ADMIN)

bp = staff_blueprint("review", __name__, roles=ROLES, static_folder="static",
                     static_url_path="/static")

from intake.review import views as views  # noqa: E402
