"""SMART Backend Services against the test server's token endpoint, which checks
signed client assertions as a real authorisation server does (tests/fhir_server)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests

from intake.delivery.auth import (
    CLIENT_ASSERTION_TYPE,
    MAX_ASSERTION_LIFETIME,
    AuthError,
    BearerAuth,
    NoAuth,
    SmartBackendAuth,
)
from intake.delivery.base import Outcome
from intake.delivery.fhir_rest import FhirRestAdapter
from support.fhir import ClientKey, FhirTestServer, new_client_key

BundleFor = Callable[..., dict[str, Any]]
CLIENT = "intake-plugin"


def smart(
    server: FhirTestServer, session: requests.Session, key: ClientKey, **kw: Any
) -> SmartBackendAuth:
    return SmartBackendAuth(
        client_id=kw.pop("client_id", CLIENT),
        private_key_pem=key.private_pem,
        kid=key.kid,
        alg=key.alg,
        fhir_base_url=server.base_url,
        session=session,
        **kw,
    )


def token_requests(server: FhirTestServer) -> list[dict[str, Any]]:
    return [r for r in server.request_log() if r["path"] == "/auth/token"]


def post_assertion(server: FhirTestServer, assertion: str) -> requests.Response:
    return server.http.post(
        server.token_url,
        timeout=10,
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.write",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )


def assertion(key: ClientKey, server: FhirTestServer, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": server.token_url,
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
        **claims,
    }
    return jwt.encode(
        body, key.private_pem, algorithm=key.alg, headers={"kid": key.kid, "typ": "JWT"}
    )


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_delivery_with_smart_backend_services(
    fhir_server: FhirTestServer,
    http_session: requests.Session,
    bundle_for: BundleFor,
    rs384_key: ClientKey,
    es384_key: ClientKey,
    alg: str,
) -> None:
    key = rs384_key if alg == "RS384" else es384_key
    fhir_server.register_client(CLIENT, key)
    auth = smart(fhir_server, http_session, key)
    rest = FhirRestAdapter(fhir_server.base_url, auth, http_session, timeout=5)
    for i in range(3):
        result = rest.deliver(
            bundle_for("pub-03", business_id=f"KI-{i}"),
            business_id=f"KI-{i}",
            after_ambiguous=False,
        )
        assert result.outcome is Outcome.DELIVERED, result.reason
    # Discovered once, one token for all three deliveries.
    paths = [r["path"] for r in fhir_server.request_log()]
    assert paths.count("/fhir/R4/.well-known/smart-configuration") == 1
    assert len(token_requests(fhir_server)) == 1 and auth.token_requests == 1
    [accepted] = fhir_server.assertions()
    assert accepted["accepted"] is True and accepted["header"]["alg"] == alg
    fhir_calls = [r for r in fhir_server.request_log() if r["path"] == "/fhir/R4"]
    assert len(fhir_calls) == 3 and all(r["auth"] for r in fhir_calls)


def test_expired_token_is_refreshed_once_and_delivered(
    fhir_server: FhirTestServer,
    http_session: requests.Session,
    bundle_for: BundleFor,
    rs384_key: ClientKey,
) -> None:
    fhir_server.register_client(CLIENT, rs384_key)
    auth = smart(fhir_server, http_session, rs384_key)
    rest = FhirRestAdapter(fhir_server.base_url, auth, http_session, timeout=5)
    assert (
        rest.deliver(bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False).outcome
        is Outcome.DELIVERED
    )
    fhir_server.expire_tokens()  # the server forgets the token before the client expects it
    result = rest.deliver(
        bundle_for("pub-05", business_id="KI-2"), business_id="KI-2", after_ambiguous=False
    )
    assert result.outcome is Outcome.DELIVERED
    assert result.extra["token_refreshed"] is True
    assert [r["status"] for r in result.extra["requests"]] == [401, 200]
    assert auth.token_requests == 2


def test_token_is_renewed_before_it_expires(
    fhir_server: FhirTestServer,
    http_session: requests.Session,
    bundle_for: BundleFor,
    es384_key: ClientKey,
) -> None:
    """With a 30 s token the client renews after 15 s of its clock, without a 401."""
    fhir_server.register_client(CLIENT, es384_key, token_ttl=30)
    offset = [0.0]
    auth = smart(fhir_server, http_session, es384_key, clock=lambda: time.time() + offset[0])
    rest = FhirRestAdapter(fhir_server.base_url, auth, http_session, timeout=5)
    rest.deliver(bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False)
    offset[0] = 10
    rest.deliver(bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False)
    assert auth.token_requests == 1
    offset[0] = 16
    result = rest.deliver(bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False)
    assert result.outcome is Outcome.DELIVERED and "token_refreshed" not in result.extra
    assert auth.token_requests == 2
    assert 401 not in [r["status"] for r in fhir_server.request_log()]


def test_client_assertions_follow_the_rules(
    fhir_server: FhirTestServer, http_session: requests.Session, rs384_key: ClientKey
) -> None:
    """Seen from the server: a fresh jti every time, exp within five minutes, the right claims."""
    fhir_server.register_client(CLIENT, rs384_key)
    auth = smart(fhir_server, http_session, rs384_key)
    for _ in range(5):
        auth.invalidate()
        auth.headers()
    seen = fhir_server.assertions()
    assert len(seen) == 5 and all(a["accepted"] for a in seen)
    assert len({a["claims"]["jti"] for a in seen}) == 5
    for a in seen:
        c = a["claims"]
        assert c["iss"] == c["sub"] == CLIENT and c["aud"] == fhir_server.token_url
        assert 0 < c["exp"] - c["iat"] <= MAX_ASSERTION_LIFETIME
        assert c["exp"] - a["received"] <= MAX_ASSERTION_LIFETIME
        assert a["header"] == {"alg": "RS384", "kid": rs384_key.kid, "typ": "JWT"}


def test_assertion_lifetime_beyond_five_minutes_is_refused(
    http_session: requests.Session, rs384_key: ClientKey
) -> None:
    with pytest.raises(ValueError, match="assertion_lifetime"):
        SmartBackendAuth(
            client_id=CLIENT,
            private_key_pem=rs384_key.private_pem,
            kid="k",
            fhir_base_url="http://127.0.0.1:9/fhir",
            session=http_session,
            assertion_lifetime=301,
        )


def test_key_must_match_the_algorithm(
    http_session: requests.Session, rs384_key: ClientKey, es384_key: ClientKey
) -> None:
    with pytest.raises(ValueError, match="ES384"):
        SmartBackendAuth(
            client_id=CLIENT,
            private_key_pem=rs384_key.private_pem,
            kid="k",
            alg="ES384",
            fhir_base_url="http://127.0.0.1:9/fhir",
            session=http_session,
        )
    with pytest.raises(ValueError, match="alg"):
        SmartBackendAuth(
            client_id=CLIENT,
            private_key_pem=es384_key.private_pem,
            kid="k",
            alg="HS256",
            fhir_base_url="http://127.0.0.1:9/fhir",
            session=http_session,
        )


# --- the token endpoint's own checks (the server side of the contract) ---------------------


def test_token_endpoint_accepts_a_good_assertion(
    fhir_server: FhirTestServer, rs384_key: ClientKey
) -> None:
    fhir_server.register_client(CLIENT, rs384_key, token_ttl=60)
    resp = post_assertion(fhir_server, assertion(rs384_key, fhir_server))
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 60 and body["access_token"]


def test_token_endpoint_rejects_a_reused_jti(
    fhir_server: FhirTestServer, rs384_key: ClientKey
) -> None:
    fhir_server.register_client(CLIENT, rs384_key)
    signed = assertion(rs384_key, fhir_server)
    assert post_assertion(fhir_server, signed).status_code == 200
    again = post_assertion(fhir_server, signed)
    assert again.status_code == 401
    assert again.json() == {"error": "invalid_client", "error_description": "jti already used"}


def test_token_endpoint_rejects_a_distant_exp(
    fhir_server: FhirTestServer, es384_key: ClientKey
) -> None:
    fhir_server.register_client(CLIENT, es384_key)
    resp = post_assertion(
        fhir_server, assertion(es384_key, fhir_server, exp=int(time.time()) + 600)
    )
    assert resp.status_code == 401
    assert resp.json()["error_description"] == "exp more than 5 minutes ahead"


@pytest.mark.parametrize(
    ("claims", "description"),
    [
        ({"aud": "http://elsewhere/token"}, "aud must be"),
        ({"exp": 1_000_000_000}, "assertion expired"),
        ({"sub": "someone-else"}, "sub must equal iss"),
        ({"iss": "stranger", "sub": "stranger"}, "unknown client"),
    ],
)
def test_token_endpoint_rejects_bad_claims(
    fhir_server: FhirTestServer, rs384_key: ClientKey, claims: dict[str, Any], description: str
) -> None:
    fhir_server.register_client(CLIENT, rs384_key)
    resp = post_assertion(fhir_server, assertion(rs384_key, fhir_server, **claims))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.json()["error_description"].startswith(description)


def test_token_endpoint_rejects_an_unknown_key_and_a_forged_signature(
    fhir_server: FhirTestServer, rs384_key: ClientKey, unknown_key: ClientKey
) -> None:
    fhir_server.register_client(CLIENT, rs384_key)
    resp = post_assertion(fhir_server, assertion(unknown_key, fhir_server))
    assert resp.status_code == 401 and resp.json()["error_description"] == "unknown key (kid)"
    # Signed with another key but claiming the registered kid.
    forged = jwt.encode(
        {
            "iss": CLIENT,
            "sub": CLIENT,
            "aud": fhir_server.token_url,
            "exp": int(time.time()) + 60,
            "jti": str(uuid.uuid4()),
        },
        unknown_key.private_pem,
        algorithm="RS384",
        headers={"kid": rs384_key.kid, "typ": "JWT"},
    )
    resp = post_assertion(fhir_server, forged)
    assert resp.status_code == 401 and resp.json()["error_description"] == "bad signature"


def test_unknown_key_stops_the_delivery_with_a_readable_reason(
    fhir_server: FhirTestServer,
    http_session: requests.Session,
    bundle_for: BundleFor,
    rs384_key: ClientKey,
    unknown_key: ClientKey,
) -> None:
    fhir_server.register_client(CLIENT, rs384_key)
    rest = FhirRestAdapter(
        fhir_server.base_url, smart(fhir_server, http_session, unknown_key), http_session, timeout=5
    )
    result = rest.deliver(bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False)
    assert result.outcome is Outcome.REJECTED and result.http_status == 401
    assert result.reason == (
        "authentication failed: token endpoint refused the client, HTTP 401: invalid_client "
        "(unknown key (kid))"
    )
    assert not [r for r in fhir_server.request_log() if r["path"] == "/fhir/R4"]


def test_unreachable_token_endpoint_is_transient(
    http_session: requests.Session, bundle_for: BundleFor, rs384_key: ClientKey
) -> None:
    base = "http://127.0.0.1:9/fhir/R4"  # discard port: nothing listens
    auth = SmartBackendAuth(
        client_id=CLIENT,
        private_key_pem=rs384_key.private_pem,
        kid=rs384_key.kid,
        fhir_base_url=base,
        session=http_session,
        timeout=1,
    )
    with pytest.raises(AuthError) as err:
        auth.headers()
    assert err.value.transient
    result = FhirRestAdapter(base, auth, http_session, timeout=1).deliver(
        bundle_for("pub-03"), business_id="KI-1", after_ambiguous=False
    )
    assert result.outcome is Outcome.TRANSIENT and not result.ambiguous


def test_simple_auth_headers() -> None:
    assert NoAuth().headers() == {}
    assert BearerAuth("abc").headers() == {"Authorization": "Bearer abc"}
    assert "abc" not in repr(BearerAuth("abc"))
    with pytest.raises(ValueError):
        BearerAuth("a b")


def test_new_keys_are_distinct() -> None:
    assert new_client_key("ES384").kid != new_client_key("ES384").kid
