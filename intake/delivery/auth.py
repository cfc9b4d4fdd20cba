"""How the FHIR REST adapter authenticates to the record system (``INTAKE_FHIR_AUTH``).

Three kinds, one interface (:class:`FhirAuth`): ``headers()`` gives the
headers for the next request, ``invalidate()`` forgets a token the server
refused so the next ``headers()`` fetches a new one.

* :class:`NoAuth` - ``none``: a record system on a closed network.
* :class:`BearerAuth` - ``bearer``: a static token issued by the record system.
* :class:`SmartBackendAuth` - ``smart``: SMART Backend Services (HL7 SMART App
  Launch 2.x, "Backend Services"). The token endpoint is discovered from
  ``<base>/.well-known/smart-configuration``; each token request carries a
  fresh client assertion (a JWT signed with the client's private key,
  ``private_key_jwt``: RS384 or ES384, a unique ``jti``, ``exp`` at most five
  minutes ahead); the access token is reused until shortly before it expires.

No secret, token or assertion is ever logged or put in an error message.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

log = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services: the assertion's exp "no more than five minutes in the future".
MAX_ASSERTION_LIFETIME: Final = 300
SUPPORTED_ALGS: Final = ("RS384", "ES384")


class AuthError(Exception):
    """Getting a token failed. ``transient``: worth retrying later (connection
    error, 5xx, 429); otherwise the token endpoint refused the client (4xx),
    which a person must fix. The message is safe to show and store."""

    def __init__(self, message: str, *, transient: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class FhirAuth(Protocol):
    """What the FHIR REST adapter needs from an authentication method."""

    def headers(self) -> dict[str, str]:
        """Headers for the next request (may fetch a token; raises AuthError)."""
        ...

    def invalidate(self) -> None:
        """The server refused the current credentials: get new ones next time."""
        ...


class NoAuth:
    """No authentication."""

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """Nothing to refresh."""


class BearerAuth:
    """A static bearer token (``INTAKE_FHIR_AUTH=bearer``)."""

    def __init__(self, token: str) -> None:
        if not token or any(ch.isspace() for ch in token):
            raise ValueError("bearer token must be non-empty and contain no spaces")
        self._token = token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        """A static token cannot be refreshed; the adapter's one retry will fail
        the same way and the delivery stops with the 401."""

    def __repr__(self) -> str:
        return "BearerAuth(<token>)"


class SmartBackendAuth:
    """SMART Backend Services client credentials with a signed JWT assertion.

    ``clock`` returns the current time in seconds since the epoch (``time.time``
    unless a test passes another); it dates the assertion and the token's
    expiry. Thread-safe: concurrent callers share one token, and only one of
    them fetches a new one.
    """

    def __init__(
        self,
        *,
        client_id: str,
        private_key_pem: str | bytes,
        kid: str,
        alg: str = "RS384",
        fhir_base_url: str,
        scope: str = "system/*.read system/*.write",
        session: requests.Session,
        clock: Callable[[], float] = time.time,
        timeout: float = 10.0,
        assertion_lifetime: int = 240,
        refresh_margin: float = 60.0,
    ) -> None:
        if alg not in SUPPORTED_ALGS:
            raise ValueError(f"alg must be one of {SUPPORTED_ALGS}")
        if not 0 < assertion_lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError(f"assertion_lifetime must be 1..{MAX_ASSERTION_LIFETIME} seconds")
        if not client_id or not kid:
            raise ValueError("client_id and kid are required")
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        key = load_pem_private_key(pem, password=None)
        if alg == "RS384" and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("RS384 needs an RSA private key")
        if alg == "ES384" and not (
            isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        ):
            raise ValueError("ES384 needs an EC P-384 private key")
        assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = key
        self.client_id = client_id
        self.kid = kid
        self.alg = alg
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.scope = scope
        self._session = session
        self._clock = clock
        self._timeout = timeout
        self._lifetime = assertion_lifetime
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self._token_endpoint: str | None = None
        self._token: str | None = None
        self._refresh_at = 0.0
        self.token_requests = 0  # how many tokens were fetched (for metrics and tests)

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, kid={self.kid!r}, alg={self.alg})"

    # -- interface ---------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch_token()
            assert self._token is not None
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._refresh_at = 0.0

    # -- internals ---------------------------------------------------------------

    def token_endpoint(self) -> str:
        """The token endpoint from ``.well-known/smart-configuration`` (cached)."""
        if self._token_endpoint is None:
            url = f"{self.fhir_base_url}/.well-known/smart-configuration"
            body = self._request("GET", url, what="SMART configuration")
            endpoint = body.get("token_endpoint")
            if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
                raise AuthError("SMART configuration has no token_endpoint", transient=False)
            self._token_endpoint = endpoint
        return self._token_endpoint

    def client_assertion(self, token_endpoint: str) -> str:
        """A new signed assertion: unique jti, exp no more than five minutes ahead."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_endpoint,
            "iat": now,
            "exp": now + self._lifetime,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(
            claims, self._key, algorithm=self.alg, headers={"kid": self.kid, "typ": "JWT"}
        )

    def _fetch_token(self) -> None:
        endpoint = self.token_endpoint()
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(endpoint),
        }
        requested_at = self._clock()
        body = self._request("POST", endpoint, what="token endpoint", data=form)
        self.token_requests += 1
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError("token endpoint answered without access_token", transient=True)
        expires_in = body.get("expires_in")
        ttl = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 300.0
        # Refresh a little before expiry so a token never expires in flight;
        # short-lived tokens keep at least half their life.
        self._token = token
        self._refresh_at = requested_at + ttl - min(self._margin, ttl / 2)
        log.info("SMART token obtained for client %s (expires in %.0f s)", self.client_id, ttl)

    def _request(self, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self._session.request(
                method,
                url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise AuthError(f"{what} unreachable: {type(exc).__name__}", transient=True) from None
        if resp.status_code >= 500 or resp.status_code == 429:
            raise AuthError(
                f"{what} answered HTTP {resp.status_code}", transient=True, status=resp.status_code
            )
        try:
            body = resp.json()
        except ValueError:
            body = None
        if 200 <= resp.status_code < 300:
            if isinstance(body, dict):
                return body
            raise AuthError(f"{what} answered without a JSON object", transient=True)
        detail = ""
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            detail = f": {body['error']}"
            desc = body.get("error_description")
            if isinstance(desc, str):
                detail += f" ({' '.join(desc.split())[:120]})"
        raise AuthError(
            f"{what} refused the client, HTTP {resp.status_code}{detail}",
            transient=False,
            status=resp.status_code,
        )


class AuthSettings(Protocol):
    """The settings make_auth reads (``intake.config.Settings`` has them)."""

    @property
    def fhir_base_url(self) -> str | None: ...
    @property
    def fhir_auth(self) -> str: ...
    @property
    def fhir_token(self) -> str | None: ...
    @property
    def smart_client_id(self) -> str | None: ...
    @property
    def smart_private_key_file(self) -> Path | None: ...
    @property
    def smart_key_id(self) -> str | None: ...
    @property
    def smart_alg(self) -> str: ...
    @property
    def smart_scope(self) -> str: ...
    @property
    def fhir_timeout(self) -> float: ...


def make_auth(settings: AuthSettings, session: requests.Session) -> FhirAuth:
    """The authentication ``INTAKE_FHIR_AUTH`` asks for (``none``, ``bearer``, ``smart``).

    The settings were checked at start-up; a missing value here is a bug, so it
    raises ValueError naming the setting (never its value).
    """
    kind = settings.fhir_auth.lower()
    if kind == "none":
        return NoAuth()
    if kind == "bearer":
        if not settings.fhir_token:
            raise ValueError("INTAKE_FHIR_TOKEN is required for bearer auth")
        return BearerAuth(settings.fhir_token)
    if kind == "smart":
        missing = [
            name
            for name in (
                "fhir_base_url",
                "smart_client_id",
                "smart_private_key_file",
                "smart_key_id",
            )
            if not getattr(settings, name)
        ]
        if missing:
            raise ValueError(
                f"required for SMART auth: {', '.join('INTAKE_' + m.upper() for m in missing)}"
            )
        assert settings.smart_private_key_file is not None
        assert settings.fhir_base_url and settings.smart_client_id and settings.smart_key_id
        return SmartBackendAuth(
            client_id=settings.smart_client_id,
            private_key_pem=settings.smart_private_key_file.read_bytes(),
            kid=settings.smart_key_id,
            alg=settings.smart_alg.upper(),
            fhir_base_url=settings.fhir_base_url,
            scope=settings.smart_scope,
            session=session,
            timeout=settings.fhir_timeout,
        )
    raise ValueError(f"INTAKE_FHIR_AUTH must be none, bearer or smart, not {kind!r}")
