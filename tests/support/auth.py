"""Staff users and sign-in for tests: make a user of a role, sign in through the real
form (GET it, read the CSRF token, POST), and look at sessions and audit events.

Every test folder uses it the same way::

    from support.auth import signed_in_client

    client = signed_in_client(app, "practitioner")

The tests hash with the cheap ``test`` profile (tests/conftest.py); :func:`make_user`
still stores a hash computed once per password and profile for the whole session, since
a test that asks for the production profile pays about 0.2 s per argon2id hash.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from intake import state
from intake.auth.passwords import current_profile, hash_password
from intake.auth.users import SESSION_COOKIE
from intake.storage.models import AuditEvent, Base, Role, User, UserSession, utcnow
from support import TOKEN_RE

PASSWORD = "Knee-back-pain-2026"  # passes the password rules for every name used here


def password_hash(password: str = PASSWORD) -> str:
    """One argon2id hash per password and hash profile per test session."""
    return _hash(password, current_profile())


@cache
def _hash(password: str, profile: str) -> str:
    return hash_password(password)


def default_name(role: Role | str) -> str:
    return f"{Role(role).value.replace('_', '-')}-user"


def make_user(app: Any, name: str, role: Role | str, password: str = PASSWORD, *,
              active: bool = True) -> int:
    """Add a user directly (what ``intake users create`` stores); returns the id."""
    now = utcnow()
    with state(app).sessions.begin() as s:
        user = User(name=name, role=Role(role).value, password_hash=password_hash(password),
                    active=active, failed_signins=0, created_at=now, password_changed_at=now)
        s.add(user)
        s.flush()
        return user.id


def user_exists(app: Any, name: str) -> bool:
    with state(app).sessions() as s:
        return s.execute(select(User.id).where(User.name == name)).first() is not None


def get_user(app: Any, name: str) -> User:
    with state(app).sessions() as s:
        return s.execute(select(User).where(User.name == name)).scalar_one()


def csrf_token(client: Any, url: str = "/auth/signin", **kwargs: Any) -> str:
    """The form token of ``url`` (the sign-in page has one for any browser)."""
    page = client.get(url, **kwargs)
    found = TOKEN_RE.search(page.get_data(as_text=True))
    assert found, f"no CSRF token on {url} ({page.status_code})"
    return found.group(1)


def sign_in(client: Any, name: str, password: str = PASSWORD, *, next_path: str | None = None,
            lang: str | None = None, **kwargs: Any) -> Any:
    """Sign in through the real form; returns the response to the POST. ``kwargs``
    (``base_url``, ``headers``) go with both requests."""
    query = f"?lang={lang}" if lang else ""
    data = {"name": name, "password": password, "csrf_token": csrf_token(
        client, "/auth/signin" + query, **kwargs)}
    if next_path is not None:
        data["next"] = next_path
    return client.post("/auth/signin" + query, data=data, **kwargs)


def sign_out(client: Any) -> Any:
    return client.post("/auth/signout", data={"csrf_token": csrf_token(client)})


def signed_in_client(app: Any, role: Role | str, name: str | None = None, *,
                     password: str = PASSWORD, client: Any = None) -> Any:
    """A test client signed in as ``name`` (created with ``role`` if missing)."""
    name = name or default_name(role)
    if not user_exists(app, name):
        make_user(app, name, role, password)
    client = client or app.test_client()
    resp = sign_in(client, name, password)
    assert resp.status_code == 303, (resp.status_code, resp.get_data(as_text=True)[:300])
    return client


def session_cookie(client: Any) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return None if cookie is None else str(cookie.value)


def sessions_of(app: Any, name: str | None = None) -> list[UserSession]:
    with state(app).sessions() as s:
        query = select(UserSession).join(User, User.id == UserSession.user_id)
        if name is not None:
            query = query.where(User.name == name)
        return list(s.execute(query.order_by(UserSession.created_at)).scalars())


def age_sessions(app: Any, *, idle: timedelta | None = None,
                 lifetime_over: timedelta | None = None, name: str | None = None) -> None:
    """Move time for every session (of user ``name``): ``idle`` makes the last activity
    that long ago; ``lifetime_over`` makes the absolute lifetime end that long ago."""
    now = utcnow()
    values: dict[str, Any] = {}
    if idle is not None:
        values["last_seen_at"] = now - idle
    if lifetime_over is not None:
        values["expires_at"] = now - lifetime_over
    query = update(UserSession).values(**values)
    if name is not None:
        query = query.where(UserSession.user_id == select(User.id).where(
            User.name == name).scalar_subquery())
    with state(app).sessions.begin() as s:
        s.execute(query)


def audit_events(app: Any, action: str | None = None) -> list[AuditEvent]:
    with state(app).sessions() as s:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list(s.execute(query).scalars())


def db_snapshot(app: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a refused request changed nothing. ``app``:
    the Flask app, or a sessionmaker (for the command line)."""
    sessions = state(app).sessions if hasattr(app, "extensions") else app
    with sessions() as s:
        return {table.name: sorted((tuple(map(repr, row)) for row in
                                    _rows(s, table)), key=repr)
                for table in Base.metadata.sorted_tables}


def _rows(session: Session, table: Any) -> list[Any]:
    return list(session.execute(select(table)).all())


# --- the app's routes ----------------------------------------------------------------

# Machine-facing APIs: a bearer token (or a CDS client's JWT), never a cookie.
TOKEN_PREFIXES = ("/api", "/metrics", "/fhir", "/cds-services")
# Rules under those prefixes that their standard opens to anyone, holding no patient
# data: a FHIR client reads the CapabilityStatement before it authenticates, and a CDS
# client discovers the services the same way.
OPEN_BY_STANDARD = {
    "/fhir/metadata": "FHIR CapabilityStatement (read before authenticating)",
    "/cds-services": "CDS Hooks discovery (read before calling)",
}
DUMMY_ID = "00000000-0000-4000-8000-000000000000"
# Where a dummy value would be refused before the guard under test is reached.
KNOWN_VALUES = {"service_id": "posterior-knee-triage"}  # intake.constants.CDS_SERVICE_ID
_ARG_RE = re.compile(r"<(?:[^<>]+:)?([^<>:]+)>")


def under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def is_token_rule(rule: Any) -> bool:
    return any(under(rule.rule, p) for p in TOKEN_PREFIXES)


def fill(rule: Any) -> str:
    """The rule's URL with a dummy value in each parameter (by converter type)."""
    from werkzeug.routing.converters import AnyConverter, NumberConverter

    converters: dict[str, Any] = getattr(rule, "_converters", {})

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        conv = converters.get(name)
        if name in KNOWN_VALUES:
            return KNOWN_VALUES[name]
        if isinstance(conv, NumberConverter):
            return "1"
        if isinstance(conv, AnyConverter):
            return str(sorted(conv.items)[0])
        return DUMMY_ID

    return _ARG_RE.sub(value, rule.rule)


def methods(rule: Any) -> list[str]:
    return sorted(set(rule.methods or ()) - {"HEAD", "OPTIONS"})


def bare_client(app: Any) -> Any:
    """A test client that adds no bearer token (the default one does for /api)."""
    from flask.testing import FlaskClient

    return FlaskClient(app, app.response_class, use_cookies=True)


# --- security headers ------------------------------------------------------------


def _csp(resp: Any) -> dict[str, list[str]]:
    policy = resp.headers["Content-Security-Policy"]
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def assert_staff_headers(resp: Any, where: str) -> None:
    """What every staff response (page, fragment, redirect) carries."""
    csp = _csp(resp)
    script = csp.get("script-src", csp.get("default-src"))
    assert script == ["'self'"], (where, script)
    assert csp["default-src"] == ["'self'"], where
    assert csp["frame-ancestors"] == ["'none'"], where
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], where
    assert not any("unsafe" in v for values in csp.values() for v in values), where
    assert resp.headers["Cache-Control"] == "no-store", where
    assert resp.headers["X-Content-Type-Options"] == "nosniff", where
    assert resp.headers["X-Frame-Options"] == "DENY", where
    assert resp.headers["Referrer-Policy"] == "same-origin", where


def assert_no_inline_code(html: str, where: str) -> None:
    """Nothing the CSP would block: no inline script, handler or style attribute."""
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), where
    assert not re.search(r"\son[a-z]+\s*=", html, re.I), where
    assert not re.search(r"\sstyle\s*=", html, re.I), where
    assert "javascript:" not in html.lower(), where
