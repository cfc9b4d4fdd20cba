"""Who may call the CDS service: a CDS client with a signed JWT, or a shared token.

CDS Hooks asks every client to send ``Authorization: Bearer <JWT>`` signed with its
private key. The JWT is verified against the client's JWK Set (``INTAKE_CDS_JWKS``:
an https URL, fetched and cached, or a file) and must have an allowed ``alg``
(asymmetric only: never ``none`` or HMAC), a ``kid`` found in the key set, an ``iss``
on the allow-list (``INTAKE_CDS_ISSUERS``), an ``aud`` equal to the URL of the
endpoint being called, and ``exp``, ``iat`` and ``jti``. A ``jku`` header is ignored:
keys come only from the configured set.

Clients that cannot sign may use the shared token ``INTAKE_CDS_TOKEN`` instead
(compared in constant time). With neither configured every call is refused.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt

from intake.bearer import bearer_matches, bearer_token
from intake.config import Settings

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512")
LEEWAY_SECONDS = 30
# The client name recorded for callers that used the shared token.
SHARED_CLIENT = "shared-token"


class AuthError(Exception):
    """The caller is not authenticated; the message says why (no secrets in it)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated CDS client: its JWT issuer, or ``token``."""

    client: str


# Records a JWT as used: (issuer, jti, expiry) -> False when it was seen before.
RememberJti = Callable[[str, str, datetime], bool]


def authenticate(authorization: str | None, settings: Settings,
                 audiences: Sequence[str], remember_jti: RememberJti) -> Caller:
    """Check the Authorization header of a CDS call; raise :class:`AuthError`.

    ``remember_jti`` stores each accepted JWT's ``jti`` (shared by every web worker),
    so one token serves one call, as CDS Hooks intends."""
    if not settings.cds_jwks and not settings.cds_token:
        raise AuthError("the CDS service is disabled: configure INTAKE_CDS_JWKS (with "
                        "INTAKE_CDS_ISSUERS) or INTAKE_CDS_TOKEN")
    given = bearer_token(authorization)
    if given is None:
        raise AuthError("a bearer token is required")
    if settings.cds_token and bearer_matches(authorization, settings.cds_token):
        return Caller(SHARED_CLIENT)
    if settings.cds_jwks and given.count(".") == 2:
        issuer, jti, expires = _verify_jwt(given, settings, audiences)
        if not remember_jti(issuer, jti, expires):
            raise AuthError("the JWT was already used (its jti was seen before)")
        return Caller(issuer)
    raise AuthError("the bearer token is not valid")


def _verify_jwt(token: str, settings: Settings,
                audiences: Sequence[str]) -> tuple[str, str, datetime]:
    assert settings.cds_jwks is not None and settings.cds_issuers is not None
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AuthError("the JWT is malformed") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise AuthError("the JWT must be signed with an asymmetric algorithm "
                        "(RS384 or ES384 recommended)")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("the JWT header has no kid")
    key = _signing_key(settings.cds_jwks, kid)
    try:
        claims = jwt.decode(
            token, key, algorithms=[alg], audience=list(audiences),
            issuer=settings.cds_issuers, leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the JWT has expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("the JWT aud is not the URL of this endpoint") from None
    except jwt.InvalidIssuerError:
        raise AuthError("the JWT iss is not a trusted CDS client") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the JWT lacks the {exc.claim} claim") from None
    except (jwt.PyJWTError, ValueError, TypeError):
        raise AuthError("the JWT signature does not verify") from None
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise AuthError("the JWT jti must be a non-empty string")
    expires = datetime.fromtimestamp(float(claims["exp"]) + LEEWAY_SECONDS, tz=UTC)
    return str(claims["iss"]), jti, expires


# --- keys -------------------------------------------------------------------

_clients: dict[str, jwt.PyJWKClient] = {}
_files: dict[str, tuple[float, jwt.PyJWKSet]] = {}
_lock = threading.Lock()


def _signing_key(source: str, kid: str) -> Any:
    if urlsplit(source).scheme in ("http", "https"):
        with _lock:
            client = _clients.get(source)
            if client is None:
                client = jwt.PyJWKClient(source, cache_jwk_set=True, lifespan=300,
                                         timeout=5)
                _clients[source] = client
        try:
            return client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError:
            log.warning("CDS client key set could not be fetched")
            raise AuthError("the CDS client's key set could not be fetched") from None
        except jwt.PyJWKClientError:
            raise AuthError("the JWT kid is not in the CDS client's key set") from None
    for jwk in _key_set_file(source).keys:
        if jwk.key_id == kid:
            return jwk.key
    raise AuthError("the JWT kid is not in the CDS client's key set")


def _key_set_file(path: str) -> jwt.PyJWKSet:
    """The key set in ``path``, re-read when the file changes (key rotation without a
    restart)."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        log.error("CDS key set file is missing")
        raise AuthError("the service cannot verify JWTs (key set unreadable)") from None
    with _lock:
        cached = _files.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
    try:
        keys = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, jwt.PyJWTError):
        log.error("CDS key set file is not a valid JWK Set")
        raise AuthError("the service cannot verify JWTs (key set unreadable)") from None
    with _lock:
        _files[path] = (mtime, keys)
    return keys
