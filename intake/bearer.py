"""Bearer tokens (RFC 6750) on the plugin's machine-facing endpoints, checked one way."""

from __future__ import annotations

import hmac


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme in any case)."""
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    return given if scheme.lower() == "bearer" and given else None


def bearer_matches(authorization: str | None, expected: str) -> bool:
    """Whether the header carries exactly ``expected``, compared in constant time."""
    given = bearer_token(authorization)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
