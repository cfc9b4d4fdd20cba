"""The web layer every browser page shares: CSRF, cookies and security headers
(:mod:`intake.web.security`), the sign-in and role guards, the staff error page and the
blueprint factories (:mod:`intake.web.staff`), and the one lookup of interface strings
(:mod:`intake.web.i18n`).

The areas (the tablet, the board, the enrollment page, the sign-in, the desk, the
worklist, the admin pages) import it; it imports none of them at load time.
"""

from intake.web.security import (
    check_csrf,
    csrf_token,
    finish_response,
    load_signed,
    protect,
    rotate_csrf,
    serializer,
    set_cookie,
)
from intake.web.staff import (
    Principal,
    StaffBlueprint,
    browser_blueprint,
    current_user,
    error_page,
    idle_timeout,
    load_principal,
    max_age,
    require_roles,
    signed_in,
    staff_blueprint,
    staff_lang,
)

__all__ = [
    "Principal",
    "StaffBlueprint",
    "browser_blueprint",
    "check_csrf",
    "csrf_token",
    "current_user",
    "error_page",
    "finish_response",
    "idle_timeout",
    "load_principal",
    "load_signed",
    "max_age",
    "protect",
    "require_roles",
    "rotate_csrf",
    "serializer",
    "set_cookie",
    "signed_in",
    "staff_blueprint",
    "staff_lang",
]
