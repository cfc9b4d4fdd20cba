"""Every URL rule of the app is in exactly one class, and guarded as its class requires:

- public: the tablet's patient pages (/kiosk: their own staff PIN and draft cookie), the
  health checks, static files, the sign-in pages, and the two discovery documents their
  standards open to anyone;
- token: the machine APIs (/api, /metrics, /fhir, /cds-services), refused without one;
- device: the front-desk board and the answer to an alert, open to an enrolled board
  (its cookie) or a signed-in user: without either, nothing but the way to enrollment;
- staff: every other rule. Its view carries ``required_roles`` (set by
  ``require_roles``), and without sign-in a GET is sent to the sign-in page or gets
  401, never a page.

The rules are read from ``app.url_map`` when the test runs, so a route added by any
blueprint is checked the day it appears; a failure names the rule. Then the role
matrix: the front desk is refused /review and /admin, a practitioner /admin, and an
admin reaches everything.
"""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint

from intake.storage.models import Role
from intake.web import error_page, require_roles
from support.auth import (
    OPEN_BY_STANDARD,
    TOKEN_PREFIXES,
    assert_staff_headers,
    bare_client,
    csrf_token,
    fill,
    methods,
    signed_in_client,
    under,
)

PUBLIC_PREFIXES = {
    "/kiosk": "the tablet handed to patients: its start screen has the staff PIN, the "
              "patient's screens only a draft cookie",
}
PUBLIC_RULES = {
    "/healthz": "liveness, no data",
    "/readyz": "readiness, no data",
    "/auth/signin": "the sign-in form",
    "/auth/state": "says only whether this browser is signed in",
    "/auth/keepalive": "says only whether this browser is signed in",
    "/auth/signout": "ends the session of the cookie sent, if any; shows nothing",
    "/alerts/token": "a fresh CSRF token for this browser's own forms; no data",
    "/devices/enroll": "a device's enrollment: spends a one-time code from an admin "
                       "(wrong codes lock the address out); shows nothing",
    **OPEN_BY_STANDARD,
}
# Rules an enrolled board reaches without a sign-in, and what they answer to a browser
# that is neither a board nor signed in (GET, or POST with a CSRF token).
DEVICE_RULES = {
    "/board": (303, "/devices/enroll?kind=board"),
    "/board/staff": (401, None),
    "/alerts/<int:alert_id>": (401, None),
}
# Which roles may open each staff area; a staff rule outside these areas needs a line.
ACCESS = {
    "/desk": {Role.FRONT_DESK, Role.PRACTITIONER, Role.ADMIN},
    "/review": {Role.PRACTITIONER, Role.ADMIN},
    "/admin": {Role.ADMIN},
}


def _is_static(rule: Any) -> bool:
    return bool(rule.endpoint == "static" or rule.endpoint.endswith(".static"))


def classes_of(rule: Any) -> list[str]:
    """Every class whose description the rule matches (exactly one is allowed; staff is
    what matches nothing else)."""
    if _is_static(rule):
        return ["static"]  # a blueprint's static files, wherever it is mounted
    found = []
    if rule.rule in DEVICE_RULES:
        found.append("device")
    if rule.rule in PUBLIC_RULES or any(under(rule.rule, p) for p in PUBLIC_PREFIXES):
        found.append("public")
    if (any(under(rule.rule, p) for p in TOKEN_PREFIXES)
            and rule.rule not in OPEN_BY_STANDARD):
        found.append("token")
    return found or ["staff"]


def _area(rule: Any) -> str | None:
    return next((a for a in ACCESS if under(rule.rule, a)), None)


def _to_signin(resp: Any) -> bool:
    return resp.status_code == 303 and resp.headers["Location"].startswith("/auth/signin?")


def _request(client: Any, rule: Any, method: str) -> Any:
    """One request to the rule; a form post carries a valid CSRF token (read just now:
    some tablet pages start a new one), so what answers is the guard under test."""
    data = {"csrf_token": csrf_token(client)} if method != "GET" else None
    resp = client.open(fill(rule), method=method, data=data)
    resp.close()  # a live stream is not read to its end
    return resp


def test_every_rule_is_in_exactly_one_class_and_guarded(auth_app: Any) -> None:
    anonymous = bare_client(auth_app)
    problems: list[str] = []
    counts = {"static": 0, "public": 0, "token": 0, "device": 0, "staff": 0}
    for rule in auth_app.url_map.iter_rules():
        name = f"{rule.rule} ({rule.endpoint}, {'/'.join(methods(rule))})"
        classes = classes_of(rule)
        if len(classes) != 1:
            problems.append(f"{name}: in several classes {classes}")
            continue
        (kind,) = classes
        counts[kind] += 1
        view = auth_app.view_functions[rule.endpoint]
        roles = getattr(view, "required_roles", None)
        if kind == "static":
            continue
        if kind == "public":
            if roles is not None:
                problems.append(f"{name}: listed public but requires {sorted(roles)}")
            if "GET" in methods(rule):
                status = _request(anonymous, rule, "GET").status_code
                if status == 500:  # (503 is /readyz without a broker: by design)
                    problems.append(f"{name}: public GET answers {status}")
            continue
        if kind == "device":
            status, location = DEVICE_RULES[rule.rule]
            if roles is not None:
                problems.append(f"{name}: a board's route must not require a sign-in")
            for method in methods(rule):
                resp = _request(anonymous, rule, method)
                if resp.status_code != status or (
                        location and not resp.headers.get("Location", "").startswith(location)):
                    problems.append(f"{name}: {method} from a stranger answers "
                                    f"{resp.status_code} {resp.headers.get('Location', '')}")
                assert_staff_headers(resp, name)
            continue
        for method in methods(rule):
            resp = _request(anonymous, rule, method)
            if kind == "token" and resp.status_code not in (401, 403):
                problems.append(f"{name}: {method} without a token answers "
                                f"{resp.status_code}, not 401/403")
            if kind == "staff" and not (resp.status_code == 401 or (
                    method == "GET" and _to_signin(resp))):
                problems.append(f"{name}: {method} without sign-in answers "
                                f"{resp.status_code} {resp.headers.get('Location', '')}")
            if kind == "staff":
                assert_staff_headers(resp, name)
        if kind == "staff":
            if not roles or not all(isinstance(r, Role) for r in roles):
                problems.append(f"{name}: a staff route without require_roles(...) "
                                "(or list it as public/token here, with the reason)")
            elif _area(rule) is None:
                problems.append(f"{name}: a staff route outside {sorted(ACCESS)}: add its "
                                "area and roles to ACCESS")
            elif set(roles) != ACCESS[_area(rule) or ""]:
                problems.append(f"{name}: requires {sorted(roles)}, the area allows "
                                f"{sorted(ACCESS[_area(rule) or ''])}")
    assert not problems, "\n".join(problems)
    # The enumeration saw the app (a broken walk would pass vacuously).
    assert counts["static"] >= 4 and counts["public"] >= 15 and counts["token"] >= 10
    assert counts["staff"] >= 4 and counts["device"] == len(DEVICE_RULES)


def test_the_classes_are_exclusive() -> None:
    class R:
        def __init__(self, rule: str, endpoint: str) -> None:
            self.rule, self.endpoint = rule, endpoint

    assert classes_of(R("/desk/rows", "desk.rows")) == ["staff"]
    assert classes_of(R("/board", "alerts.board")) == ["device"]
    assert classes_of(R("/something-new", "x.y")) == ["staff"]
    assert classes_of(R("/kiosk/q/<int:step>", "kiosk.section")) == ["public"]
    assert classes_of(R("/fhir/metadata", "fhirapi.metadata")) == ["public"]
    assert classes_of(R("/fhir/Questionnaire", "fhirapi.q")) == ["token"]
    assert classes_of(R("/kiosk/static/<path:filename>", "kiosk.static")) == ["static"]
    assert classes_of(R("/desk/static/<path:filename>", "desk.static")) == ["static"]
    # A rule both public and token (e.g. a tablet API under /api) is reported.
    assert classes_of(R("/api/intakes", "api.x")) == ["token"]
    PUBLIC_RULES["/api/intakes"] = "test only"
    try:
        assert classes_of(R("/api/intakes", "api.x")) == ["public", "token"]
    finally:
        del PUBLIC_RULES["/api/intakes"]


@pytest.fixture
def staff_clients(auth_app: Any) -> dict[Role, Any]:
    return {role: signed_in_client(auth_app, role) for role in Role}


@pytest.mark.parametrize("area", sorted(ACCESS))
def test_role_matrix(auth_app: Any, staff_clients: dict[Role, Any], area: str) -> None:
    rules = [r for r in auth_app.url_map.iter_rules()
             if under(r.rule, area) and classes_of(r) == ["staff"]]
    if not rules:
        pytest.skip(f"no {area} routes are registered yet")
    problems: list[str] = []
    for role, client in staff_clients.items():
        for rule in rules:
            for method in methods(rule):
                if method != "GET" and role in ACCESS[area]:
                    continue  # a form post of an allowed role would act: the view's tests
                resp = _request(client, rule, method)
                name = f"{role.value} {method} {rule.rule}"
                if role not in ACCESS[area]:
                    if resp.status_code != 403:
                        problems.append(f"{name}: {resp.status_code}, expected 403")
                elif resp.status_code in (401, 403) or _to_signin(resp):
                    problems.append(f"{name}: refused ({resp.status_code})")
                elif resp.status_code >= 500:
                    problems.append(f"{name}: {resp.status_code}")
                else:
                    assert_staff_headers(resp, name)
    assert not problems, "\n".join(problems)


def test_a_refused_role_sees_who_is_signed_in_and_why(auth_app: Any) -> None:
    probe = Blueprint("probe", __name__)  # a page only practitioners may open
    probe.register_error_handler(403, error_page)

    @probe.get("/probe")
    @require_roles(Role.PRACTITIONER)
    def page() -> str:
        return "patient data"

    @probe.post("/probe")
    @require_roles(Role.PRACTITIONER)
    def act() -> str:
        return "changed"

    probe.register_error_handler(401, error_page)
    auth_app.register_blueprint(probe)
    # A form sent after the sign-in ended: 401 with a page that says to sign in.
    anonymous = auth_app.test_client()
    resp = anonymous.post("/probe?lang=en", data={"csrf_token": csrf_token(anonymous)})
    assert resp.status_code == 401
    assert "Please sign in" in resp.get_data(as_text=True)
    assert "changed" not in resp.get_data(as_text=True)

    client = signed_in_client(auth_app, Role.FRONT_DESK)
    resp = client.get("/probe?lang=en")
    assert resp.status_code == 403
    html = resp.get_data(as_text=True)
    assert "patient data" not in html
    assert "You do not have access to this page" in html and "front-desk-user" in html
