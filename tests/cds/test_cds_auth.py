"""Who may call the CDS service: a JWT signed by a trusted CDS client (key set from a
file or an URL), or the shared token; anything else is 401 and stores nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest

from intake.config import ConfigError
from support.cds import (
    AUDIENCE,
    CDS_TOKEN,
    FEEDBACK,
    ISSUER,
    SERVICE,
    ClientKey,
    hook_request,
    response_for,
    stored,
)


@pytest.fixture(scope="module")
def key() -> ClientKey:
    return ClientKey.new()


@pytest.fixture
def jwt_app(make_app: Callable[..., Any], sqlite_url: str, tmp_path: Path,
            key: ClientKey) -> Any:
    return make_app(sqlite_url, cds_jwks=str(key.write_jwks(tmp_path / "jwks.json")),
                    cds_issuers=f"https://other.example,{ISSUER}")


def _call(app: Any, authorization: str | None) -> Any:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return app.test_client().post(SERVICE, data=json.dumps(hook_request(response_for("pub-02"))),
                                  headers=headers)


def test_a_signed_jwt_is_accepted(jwt_app: Any, key: ClientKey) -> None:
    resp = _call(jwt_app, f"Bearer {key.token()}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["cards"][0]["indicator"] == "warning"
    # aud may be an array holding the endpoint's URL.
    assert _call(jwt_app, f"Bearer {key.token(aud=['https://x.example', AUDIENCE])}"
                 ).status_code == 200


def test_a_jwt_serves_one_call_only(jwt_app: Any, key: ClientKey) -> None:
    """CDS Hooks JWTs carry a jti so a captured token cannot be replayed."""
    token = key.token()
    assert _call(jwt_app, f"Bearer {token}").status_code == 200
    before = stored(jwt_app)
    replay = _call(jwt_app, f"Bearer {token}")
    assert replay.status_code == 401
    assert "already used" in replay.get_json()["error"]
    assert stored(jwt_app) == before
    # A fresh token that reuses a jti value is refused as well.
    assert _call(jwt_app, f"Bearer {key.token(jti='shared-1')}").status_code == 200
    assert _call(jwt_app, f"Bearer {key.token(jti='shared-1')}").status_code == 401


def test_expired_entries_are_dropped(jwt_app: Any, key: ClientKey) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select

    from intake import state
    from intake.storage.models import CdsJwtSeen, utcnow

    with state(jwt_app).sessions.begin() as s:
        s.add(CdsJwtSeen(key="0" * 64, expires_at=utcnow() - timedelta(minutes=1)))
    assert _call(jwt_app, f"Bearer {key.token()}").status_code == 200
    with state(jwt_app).sessions() as s:
        assert s.scalar(select(func.count()).select_from(CdsJwtSeen)) == 1


def _forged(key: ClientKey) -> list[tuple[str, str | None, str]]:
    """(label, Authorization header, what the error says)."""
    other = ClientKey.new("ehr-key-1")  # same kid, another key: a forgery
    claims = {"iss": ISSUER, "aud": AUDIENCE, "exp": 9_999_999_999, "iat": 1, "jti": "x"}
    hmac = jwt.encode(claims, "s3cret" * 6, algorithm="HS256", headers={"kid": key.kid})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": key.kid})
    return [
        ("no header", None, "bearer token is required"),
        ("not bearer", "Basic Zm9vOmJhcg==", "bearer token is required"),
        ("garbage", "Bearer not-a-jwt", "not valid"),
        ("expired", f"Bearer {key.token(lifetime=-120)}", "expired"),
        ("wrong aud", f"Bearer {key.token(aud='https://cds.example.org/cds-services/x')}",
         "aud"),
        ("discovery aud", f"Bearer {key.token(aud='http://localhost/cds-services')}", "aud"),
        ("untrusted iss", f"Bearer {key.token(iss='https://evil.example')}", "iss"),
        ("no jti", f"Bearer {key.token(drop=('jti',))}", "jti"),
        ("no iat", f"Bearer {key.token(drop=('iat',))}", "iat"),
        ("unknown kid", f"Bearer {key.token(kid='nope')}", "kid"),
        ("wrong key", f"Bearer {other.token()}", "signature"),
        ("hmac", f"Bearer {hmac}", "asymmetric"),
        ("alg none", f"Bearer {unsigned}", "asymmetric"),
    ]


def test_bad_jwts_are_refused(jwt_app: Any, key: ClientKey) -> None:
    for label, authorization, why in _forged(key):
        resp = _call(jwt_app, authorization)
        assert resp.status_code == 401, (label, resp.get_data(as_text=True))
        assert why in resp.get_json()["error"], (label, resp.get_json())
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(jwt_app) == (0, 0, 0)


def test_feedback_takes_the_feedback_url_as_aud(jwt_app: Any, key: ClientKey) -> None:
    card = _call(jwt_app, f"Bearer {key.token()}").get_json()["cards"][0]
    body = {"feedback": [{"card": card["uuid"], "outcome": "overridden",
                          "outcomeTimestamp": "2026-11-21T01:02:03Z"}]}
    token = key.token(aud=f"{AUDIENCE}/feedback")
    resp = jwt_app.test_client().post(FEEDBACK, json=body,
                                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)


def test_shared_token_and_closed_by_default(make_app: Callable[..., Any],
                                            sqlite_url: str) -> None:
    closed = make_app(sqlite_url)
    resp = _call(closed, f"Bearer {CDS_TOKEN}")
    assert resp.status_code == 401 and "INTAKE_CDS" in resp.get_json()["error"]
    assert closed.test_client().get("/cds-services").status_code == 200  # discovery is open
    app = make_app(sqlite_url, cds_token=CDS_TOKEN)
    assert _call(app, f"Bearer {CDS_TOKEN}").status_code == 200
    assert _call(app, f"Bearer {CDS_TOKEN}x").status_code == 401


class _KeySet(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_url(key: ClientKey) -> Iterator[str]:
    """The EHR's JWK Set served over HTTP on the loopback interface."""
    handler = type("Handler", (_KeySet,), {"body": json.dumps(key.jwks()).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()
    thread.join()


def test_key_set_from_an_url(make_app: Callable[..., Any], sqlite_url: str, jwks_url: str,
                             key: ClientKey) -> None:
    app = make_app(sqlite_url, cds_jwks=jwks_url, cds_issuers=ISSUER)
    assert _call(app, f"Bearer {key.token()}").status_code == 200
    assert _call(app, f"Bearer {key.token(kid='rotated-away')}").status_code == 401


@pytest.mark.parametrize(("settings", "problem"), [
    ({"cds_jwks": "/nonexistent/jwks.json", "cds_issuers": ISSUER}, "INTAKE_CDS_JWKS"),
    ({"cds_jwks": "http://ehr.example/jwks.json", "cds_issuers": ISSUER}, "https"),
    ({"cds_jwks": "ftp://ehr.example/jwks.json", "cds_issuers": ISSUER}, "INTAKE_CDS_JWKS"),
    ({"cds_jwks": "https://ehr.example/jwks.json"}, "INTAKE_CDS_ISSUERS"),
    ({"cds_issuers": "a,,b"}, "INTAKE_CDS_ISSUERS"),
])
def test_misconfiguration_stops_start_up(make_app: Callable[..., Any], sqlite_url: str,
                                         settings: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        make_app(sqlite_url, **settings)


@pytest.mark.parametrize("name", ["cds_token", "fhir_api_token"])
def test_short_tokens_are_refused_at_start_up(make_app: Callable[..., Any], sqlite_url: str,
                                              name: str) -> None:
    with pytest.raises(ConfigError, match="at least 16") as info:
        make_app(sqlite_url, **{name: "short-secret"})
    assert "short-secret" not in str(info.value)
