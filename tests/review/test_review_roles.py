"""Who may use /review: practitioners and admins. The front desk gets 403 on every
route; without a sign-in a page redirects to the sign-in form (and back), the page's
own requests (list refresh) and the forms get 401. The routes are taken from the
app's URL map, so a new one cannot be forgotten here."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from intake import state
from intake.review.views import ACTIONS
from intake.storage.models import ReviewAction
from support.review import EMERGENCY, Browser, signed_in, submit


def review_routes(app: Any, intake_id: str) -> list[tuple[str, str]]:
    """(method, path) of every /review route except the static files."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/review") or rule.endpoint == "review.static":
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if "<action>" in rule.rule:
                for action in ACTIONS:
                    out.append((method, rule.rule.replace("<intake_id>", intake_id)
                                .replace("<action>", action)))
            else:
                out.append((method, rule.rule.replace("<intake_id>", intake_id)))
    return out


def test_every_route_is_declared_for_practitioners_and_admins(review_app: Any) -> None:
    for rule in review_app.url_map.iter_rules():
        if rule.rule.startswith("/review") and rule.endpoint != "review.static":
            view = review_app.view_functions[rule.endpoint]
            assert {r.value for r in view.required_roles} == {"practitioner", "admin"}, rule


def test_front_desk_gets_403_everywhere(review_app: Any) -> None:
    made = submit(review_app, EMERGENCY)
    desk = signed_in(review_app, "desk.one", "front_desk")
    routes = review_routes(review_app, made)
    assert len(routes) >= 8  # (the live stream is the live process's: tests/live)
    for method, path in routes:
        resp = desk.client.open(path, method=method,
                                data={"csrf_token": desk.token, "revision": "1",
                                      "flag": "PE_SUSPECT"} if method == "POST" else None)
        assert resp.status_code == 403, (method, path)
        if resp.mimetype == "text/html":
            assert "MRN" not in resp.get_data(as_text=True)
    with state(review_app).sessions() as s:
        assert s.query(ReviewAction).count() == 0


def test_not_signed_in(review_app: Any) -> None:
    made = submit(review_app, EMERGENCY)
    anonymous = Browser(review_app)
    anonymous.get("/auth/signin")  # a CSRF token, as a browser would have
    for method, path in review_routes(review_app, made):
        if method == "POST":
            resp = anonymous.post(path, {"revision": "1", "flag": "PE_SUSPECT"})
            assert resp.status_code == 401, path
            continue
        resp = anonymous.client.get(path + "?lang=en")
        if path.endswith("/rows"):
            assert resp.status_code == 401, path
        else:
            assert resp.status_code == 303, path
            target = urlsplit(resp.headers["Location"])
            assert target.path == "/auth/signin"
            assert parse_qs(target.query)["next"] == [path + "?lang=en"]
    with state(review_app).sessions() as s:
        assert s.query(ReviewAction).count() == 0


@pytest.mark.parametrize("role", ["practitioner", "admin"])
def test_practitioner_and_admin_may_act(review_app: Any, role: str) -> None:
    made = submit(review_app, EMERGENCY)
    user = signed_in(review_app, f"user.{role}", role)
    assert user.get("/review").status_code == 200
    assert user.get(f"/review/{made}").status_code == 200
    assert user.get("/review/rows").status_code == 200
    assert user.act(made, "acknowledge", {"flag": "PE_SUSPECT"}).status_code == 303
    with state(review_app).sessions() as s:
        assert s.query(ReviewAction).count() == 1


def test_sign_in_returns_to_the_case(review_app: Any) -> None:
    from support.review import PASSWORD, make_user

    made = submit(review_app, EMERGENCY)
    make_user(review_app, "dr.back", "practitioner")
    browser = Browser(review_app)
    browser.get(f"/auth/signin?next=/review/{made}")
    resp = browser.post("/auth/signin", {"name": "dr.back", "password": PASSWORD,
                                         "next": f"/review/{made}"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/review/{made}"
