"""The front-desk page: user sign-in (no PIN), the list by urgency, and the alert list
it shares with the boards (filled by the live process's stream: tests/live)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.storage.models import Intake
from support import case, enroll_client
from support.auth import (
    age_sessions,
    audit_events,
    make_user,
    sign_in,
    sign_out,
    signed_in_client,
)
from support.kiosk import PIN

DESK_USER = "desk.front"


@pytest.fixture
def desk_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, kiosk_pin=PIN)


def _desk_client(app: Any) -> Any:
    return signed_in_client(app, "front_desk", DESK_USER)


def _intake(app: Any, case_id: str, record_number: str, *, triage: bool = True) -> Intake:
    with state(app).sessions.begin() as s:
        submitted = pipeline.submit_intake(
            s, answers=parse_simple_answers(case(case_id)["answers"]), source="kiosk",
            record_number=record_number, demographics={"family_name": "秘密"})
        intake = submitted.intake
        if triage:
            pipeline.run_triage(s, intake.id)
        return intake


def _events(body: str) -> list[tuple[str | None, str, dict[str, Any]]]:
    out = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines()
                      if ": " in line and not line.startswith(":"))
        if "event" in fields:
            out.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return out


def test_desk_needs_a_signed_in_user_not_the_pin(desk_app: Any) -> None:
    client = desk_app.test_client()
    page = client.get("/desk")
    assert page.status_code == 303 and page.headers["Location"] == "/auth/signin?next=%2Fdesk"
    assert page.headers["Cache-Control"] == "no-store"
    for url in ("/desk/rows", "/desk/state"):
        assert client.get(url).status_code == 401, url
    signin = client.get(page.headers["Location"]).get_data(as_text=True)
    assert 'name="pin"' not in signin and 'name="password"' in signin
    # The PIN sign-in is gone, and the staff PIN is no password.
    assert client.post("/desk/signin", data={"pin": PIN}).status_code == 404
    make_user(desk_app, DESK_USER, "front_desk")
    assert sign_in(client, DESK_USER, PIN).status_code == 403
    # The tablet keeps its PIN (on an enrolled tablet; any other browser is sent to the
    # enrollment page).
    assert client.get("/kiosk").headers["Location"].startswith("/devices/enroll?kind=tablet")
    tablet = enroll_client(desk_app, desk_app.test_client(), "tablet")
    assert 'name="pin"' in tablet.get("/kiosk").get_data(as_text=True)

    resp = sign_in(client, DESK_USER, next_path="/desk")
    assert resp.status_code == 303 and resp.headers["Location"] == "/desk"
    html = client.get("/desk?lang=en").get_data(as_text=True)
    assert "Front-desk alerts" in html and f"{DESK_USER} (front desk)" in html
    assert 'action="/auth/signout"' in html and "/auth/static/staff.js" in html
    assert "/desk/static/desk.css" in html and "/desk/static/desk.js" in html
    # The alerts: the live process's staff stream, answered as the signed-in user.
    assert 'data-stream="/live/staff"' in html and 'data-via="desk"' in html
    assert "/alerts/static/live.js" in html and "use the front-desk board (/board)" in html
    assert 'href="/review' not in html and 'href="/admin' not in html  # not for this role
    data = client.get("/desk/state").get_json()
    assert data["signed_in"] is True and 890 <= data["seconds_left"] <= 900
    sign_out(client)
    assert client.get("/desk/state").status_code == 401


@pytest.mark.parametrize("role", ["practitioner", "admin"])
def test_clinicians_and_admins_may_open_the_desk(desk_app: Any, role: str) -> None:
    client = signed_in_client(desk_app, role)
    assert client.get("/desk").status_code == 200
    assert client.get("/desk/rows").status_code == 200


def test_sign_in_ends_after_its_lifetime(desk_app: Any) -> None:
    client = _desk_client(desk_app)
    assert client.get("/desk/state").status_code == 200
    age_sessions(desk_app, idle=timedelta(0), lifetime_over=timedelta(seconds=1))
    assert client.get("/desk/state").status_code == 401
    assert client.get("/desk").status_code == 303


def test_list_is_by_urgency_without_names_or_answers(desk_app: Any) -> None:
    routine = _intake(desk_app, "pub-07", "MRN-D1")
    emergency = _intake(desk_app, "pub-03", "MRN-D2")
    pending = _intake(desk_app, "pub-01", "MRN-D3", triage=False)
    same_day = _intake(desk_app, "pub-02", "MRN-D4")
    client = _desk_client(desk_app)
    html = client.get("/desk?lang=en").get_data(as_text=True)
    order = [m.group(1) for m in re.finditer(r'class="mono">([^<]+)<', html)]
    assert order == [emergency.business_id, pending.business_id, same_day.business_id,
                     routine.business_id]
    assert "emergency, now" in html and "Awaiting triage" in html
    assert "vascular surgery" in html
    for private in ("MRN-D", "秘密", "PE_SUSPECT", "DVT"):
        assert private not in html
    table = html.split('<tbody id="rows">', 1)[1]
    assert "chest" not in table  # (the alert list's wording, for its script, is above)
    rows = client.get("/desk/rows?lang=ja").get_data(as_text=True)
    assert "救急(今すぐ)" in rows
    # The audit trail names who looked.
    viewed = audit_events(desk_app, "desk.viewed")
    assert [(e.actor, e.detail) for e in viewed] == [(DESK_USER, {"rows": 4})]
