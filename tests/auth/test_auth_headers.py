"""Security headers of the sign-in page and the staff pages: a CSP without inline
script that forbids framing, no-store, nosniff, cookies the page's script cannot read,
and HSTS exactly when the app is reached over TLS (directly or through a trusted proxy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from intake.auth.users import SESSION_COOKIE
from support.auth import (
    assert_no_inline_code,
    assert_staff_headers,
    make_user,
    sign_in,
    signed_in_client,
)


def test_the_sign_in_page(auth_app: Any) -> None:
    resp = auth_app.test_client().get("/auth/signin")
    assert resp.status_code == 200
    assert_staff_headers(resp, "/auth/signin")
    assert_no_inline_code(resp.get_data(as_text=True), "/auth/signin")
    assert "Strict-Transport-Security" not in resp.headers


def test_staff_pages_fragments_and_redirects(auth_app: Any) -> None:
    anonymous = auth_app.test_client()
    assert_staff_headers(anonymous.get("/desk"), "/desk redirect")
    client = signed_in_client(auth_app, "front_desk")
    for url in ("/desk", "/desk/rows", "/desk/state", "/auth/state", "/auth/keepalive"):
        resp = client.get(url)
        assert resp.status_code == 200, url
        assert_staff_headers(resp, url)
    assert_no_inline_code(client.get("/desk").get_data(as_text=True), "/desk")
    # Static files hold no patient data: revalidated, not forbidden from caches.
    with client.get("/auth/static/staff.js") as static:
        assert static.headers["Cache-Control"] == "no-cache"


def test_session_cookie_is_strict_and_http_only(auth_app: Any) -> None:
    make_user(auth_app, "desk.kimura", "front_desk")
    resp = sign_in(auth_app.test_client(), "desk.kimura")
    cookie = next(c for c in resp.headers.getlist("Set-Cookie")
                  if c.startswith(SESSION_COOKIE + "="))
    flags = {f.strip().lower() for f in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags and not any(f.startswith(("max-age", "expires"))
                                             for f in flags)  # gone with the browser


@pytest.mark.parametrize(("proxy_hops", "base_url", "headers", "tls"), [
    ("0", "http://localhost", {}, False),
    ("0", "https://localhost", {}, True),
    ("1", "http://localhost", {"X-Forwarded-Proto": "https"}, True),
    ("1", "http://localhost", {"X-Forwarded-Proto": "http"}, False),
    ("0", "http://localhost", {"X-Forwarded-Proto": "https"}, False),  # proxy not trusted
])
def test_hsts_and_secure_cookies_exactly_over_tls(make_app: Callable[..., Any], sqlite_url: str,
                                                  proxy_hops: str, base_url: str,
                                                  headers: dict[str, str], tls: bool) -> None:
    app = make_app(sqlite_url, proxy_hops=proxy_hops)
    make_user(app, "desk.kimura", "front_desk")
    client = app.test_client()
    page = client.get("/auth/signin", base_url=base_url, headers=headers)
    assert ("Strict-Transport-Security" in page.headers) is tls
    if tls:
        assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    resp = sign_in(client, "desk.kimura", base_url=base_url, headers=headers)
    assert resp.status_code == 303
    cookie = next(c for c in resp.headers.getlist("Set-Cookie")
                  if c.startswith(SESSION_COOKIE + "="))
    assert ("; Secure" in cookie) is tls
