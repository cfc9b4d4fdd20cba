"""What every browser page shares (the tablet, the board, the enrollment page, the
sign-in and the staff pages): CSRF, cookies, signed cookies and the security headers.

CSRF uses a per-browser random nonce in an HttpOnly, SameSite=Strict cookie and a form
token that is the HMAC of that nonce under the app's secret key; the nonce is replaced
when a tablet session ends and at every sign-in and sign-out, so a form left in the
browser's history cannot be posted again. Requests whose ``Origin`` or
``Sec-Fetch-Site`` say they come from another site are refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from flask import Blueprint, abort, current_app, g, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

CSRF_COOKIE = "intake_csrf"
CSRF_FIELD = "csrf_token"

# Nothing from another origin, no inline script or style: the pages need neither, and a
# tablet in a public waiting room should not run anything it was not shipped with.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


def _secret() -> bytes:
    return str(current_app.config["SECRET_KEY"]).encode()


def _nonce() -> str:
    nonce: str | None = g.get("csrf_nonce")
    if nonce is None:
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if 16 <= len(cookie) <= 100:
            nonce = cookie
        else:
            nonce = secrets.token_urlsafe(32)
            g.csrf_set = True
        g.csrf_nonce = nonce
    return nonce


def rotate_csrf() -> None:
    """Start a new nonce: every form rendered before this point stops working."""
    g.csrf_nonce = secrets.token_urlsafe(32)
    g.csrf_set = True


def csrf_token() -> str:
    """The token to put in a form's hidden ``csrf_token`` field."""
    return hmac.new(_secret(), b"csrf|" + _nonce().encode(), hashlib.sha256).hexdigest()


def check_csrf() -> None:
    """Abort with 400 unless a state-changing request carries a valid token."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        abort(400, "cross-site request")
    origin = request.headers.get("Origin")
    if origin is not None and origin != request.host_url.rstrip("/"):
        abort(400, "cross-origin request")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    given = request.form.get(CSRF_FIELD, "")
    if not cookie or not given:
        abort(400, "missing CSRF token")
    expected = hmac.new(_secret(), b"csrf|" + cookie.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        abort(400, "bad CSRF token")


def set_cookie(response: Response, name: str, value: str, path: str,
               max_age: int | None = None) -> None:
    """A cookie the page's script cannot read and no other site can send."""
    response.set_cookie(name, value, max_age=max_age, path=path, httponly=True,
                        samesite="Strict", secure=request.is_secure)


def finish_response(response: Response) -> Response:
    """Security headers for every browser page's response, and the CSRF cookie."""
    if g.get("csrf_set"):
        set_cookie(response, CSRF_COOKIE, g.csrf_nonce, "/")
    headers = response.headers
    # Patient data must never be kept by the browser: not in the cache, not in the
    # back/forward cache. Static assets hold none and may be revalidated.
    if "/static/" in request.path:
        headers["Cache-Control"] = "no-cache"  # revalidated by ETag
    else:
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")  # cross-site: nothing
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.is_secure:
        # Served over TLS (directly or behind INTAKE_PROXY_HOPS): browsers must never
        # fall back to plain HTTP for this host.
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def protect(bp: Blueprint) -> None:
    """A browser blueprint's guards: CSRF on every state-changing request, and the
    security headers (and CSRF cookie) on every response."""
    bp.before_request(check_csrf)
    bp.after_request(finish_response)


def serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_secret(), salt=salt)


def load_signed(salt: str, value: str | None, max_age: float) -> Any:
    """The payload of a signed cookie value, or None if absent, forged or too old."""
    if not value:
        return None
    try:
        return serializer(salt).loads(value, max_age=int(max_age))
    except BadSignature:
        return None
