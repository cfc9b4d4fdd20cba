"""CSRF: every POST route of the app (all blueprints, found in ``app.url_map``) refuses a
missing, wrong, foreign or cross-site token with 4xx and changes nothing. The
token-authenticated APIs (/api, /metrics, /fhir, /cds-services) take no cookies at all:
a signed-in browser's cookies get it nothing there."""

from __future__ import annotations

from typing import Any

from intake import state
from support.auth import (
    OPEN_BY_STANDARD,
    bare_client,
    csrf_token,
    db_snapshot,
    fill,
    is_token_rule,
    methods,
    signed_in_client,
)

# Found by enumeration; listed so the test notices if enumeration itself breaks.
KNOWN_POST_RULES = {"/auth/signin", "/auth/signout", "/kiosk", "/kiosk/q/<int:step>",
                    "/kiosk/review", "/kiosk/reset", "/kiosk/touch", "/kiosk/lang"}


def _cookie_post_rules(app: Any) -> list[Any]:
    return [r for r in app.url_map.iter_rules()
            if "POST" in (r.methods or ()) and not is_token_rule(r)]


def test_every_post_route_refuses_a_bad_csrf_token_and_changes_nothing(auth_app: Any) -> None:
    client = signed_in_client(auth_app, "admin")  # admin: every staff route lets it in
    good = csrf_token(client)
    foreign = csrf_token(auth_app.test_client())  # valid, for another browser
    rules = _cookie_post_rules(auth_app)
    assert KNOWN_POST_RULES <= {r.rule for r in rules}
    attempts: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("no token", {}, {}),
        ("wrong token", {"csrf_token": "0" * 64}, {}),
        ("another browser's token", {"csrf_token": foreign}, {}),
        ("empty token", {"csrf_token": ""}, {}),
        ("cross-origin", {"csrf_token": good}, {"Origin": "https://evil.example"}),
        ("cross-site", {"csrf_token": good}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    before = db_snapshot(auth_app)
    accepted = []
    for rule in rules:
        for what, data, headers in attempts:
            resp = client.post(fill(rule), data=data, headers=headers)
            if not 400 <= resp.status_code < 500:
                accepted.append(f"{rule.rule} ({rule.endpoint}) with {what}: "
                                f"{resp.status_code}")
    assert not accepted, "\n".join(accepted)
    assert db_snapshot(auth_app) == before
    # The refusals were refusals: the browser is still signed in, and its own token works.
    assert client.get("/desk").status_code == 200
    resp = client.post("/auth/signin", data={"csrf_token": good, "name": "nobody",
                                             "password": "not-a-password"})
    assert resp.status_code == 403  # past the CSRF check, refused on the password


def test_a_refused_form_says_it_expired_without_detail(auth_app: Any) -> None:
    client = auth_app.test_client()
    resp = client.post("/auth/signin?lang=en", data={"name": "a", "password": "b"})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert "This form has expired. Please try again." in page and "CSRF" not in page


def test_token_apis_ignore_the_cookies_of_a_signed_in_browser(auth_app: Any) -> None:
    browser = signed_in_client(auth_app, "admin", client=bare_client(auth_app))
    token = csrf_token(browser)
    checked = []
    for rule in auth_app.url_map.iter_rules():
        if not is_token_rule(rule) or rule.rule in OPEN_BY_STANDARD:
            continue
        for method in methods(rule):
            data = {"csrf_token": token} if method != "GET" else None
            resp = browser.open(fill(rule), method=method, data=data)
            assert resp.status_code in (401, 403), (rule.rule, method, resp.status_code)
            assert "Set-Cookie" not in resp.headers, rule.rule
            checked.append(rule.rule)
    assert {"/api/intakes", "/metrics", "/fhir/QuestionnaireResponse",
            "/cds-services/<service_id>"} <= set(checked)
    # Control: with the bearer token the same client gets past the check.
    api_token = state(auth_app).api_token
    resp = browser.get("/api/intakes/00000000-0000-4000-8000-000000000000",
                       headers={"Authorization": f"Bearer {api_token}"})
    assert resp.status_code == 404
