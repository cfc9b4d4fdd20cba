"""The front-desk page at /desk: the alerts (answered as the signed-in user) and the
recent intakes by urgency.

Staff sign in as users (:mod:`intake.auth`: front desk, practitioner or admin); the page
is a staff page like the worklist, with the header naming who is signed in, sign-out,
and the idle time-out that leaves the page when the sign-in ends. The tablet keeps its
staff PIN: it is handed to patients, and a sign-in there would be theirs to use. The
screen that stays on all day at reception is the board (:mod:`intake.alerts`).

The alerts come from the live process's stream (:mod:`intake.live`), read from the
database and woken by Redis notices; it ends with the sign-in.
"""

from intake.storage.models import Role
from intake.web import staff_blueprint

# Who may open the desk: the front desk, and the clinicians and admins who stand in.
DESK_ROLES = (Role.FRONT_DESK, Role.PRACTITIONER, Role.ADMIN)

bp = staff_blueprint("desk", __name__, roles=DESK_ROLES, static_folder="static",
                     static_url_path="/static")

from intake.desk import views as views  # noqa: E402
