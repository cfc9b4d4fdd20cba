"""Behind a reverse proxy (INTAKE_PROXY_HOPS): the PIN lock-out counts per real client,
and cookies are Secure when the proxy speaks HTTPS; without the setting the forwarded
headers are ignored, so a client cannot spoof its way out of a lock-out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support.kiosk import PIN, Tablet


def _tablet(app: Any, address: str) -> Tablet:
    tablet = Tablet(app)
    tablet.client.environ_base["HTTP_X_FORWARDED_FOR"] = address
    tablet.client.environ_base["HTTP_X_FORWARDED_PROTO"] = "https"
    return tablet


def _lock_out(tablet: Tablet) -> None:
    for _ in range(4):
        assert tablet.start(pin="111111").status_code == 403
    assert tablet.start(pin="111111").status_code == 429


def test_lock_out_is_per_forwarded_client(make_app: Callable[..., Any],
                                          sqlite_url: str) -> None:
    app = make_app(sqlite_url, kiosk_pin=PIN, proxy_hops="1")
    _lock_out(_tablet(app, "203.0.113.5"))
    other = _tablet(app, "203.0.113.9")
    resp = other.start()
    assert resp.status_code == 303
    assert "Secure" in resp.headers.get("Set-Cookie", "")


def test_forwarded_headers_are_ignored_without_proxy_hops(make_app: Callable[..., Any],
                                                          sqlite_url: str) -> None:
    app = make_app(sqlite_url, kiosk_pin=PIN)
    _lock_out(_tablet(app, "203.0.113.5"))
    assert _tablet(app, "203.0.113.9").start().status_code == 429
