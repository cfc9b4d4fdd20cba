"""The front-desk page: user sign-in (no PIN), the list by urgency, and the alert stream,
bounded by its own limit and by the end of the sign-in."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kiosk_helpers import PIN

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.storage.models import Intake
from support import case

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "auth"))
from auth_helpers import (  # noqa: E402
    age_sessions,
    audit_events,
    make_user,
    sign_in,
    sign_out,
    signed_in_client,
)

DESK_USER = "desk.front"


@pytest.fixture
def desk_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, kiosk_pin=PIN, desk_stream_seconds="2")


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
    for url in ("/desk/rows", "/desk/stream", "/desk/state"):
        assert client.get(url).status_code == 401, url
    signin = client.get(page.headers["Location"]).get_data(as_text=True)
    assert 'name="pin"' not in signin and 'name="password"' in signin
    # The PIN sign-in is gone, and the staff PIN is no password.
    assert client.post("/desk/signin", data={"pin": PIN}).status_code == 404
    make_user(desk_app, DESK_USER, "front_desk")
    assert sign_in(client, DESK_USER, PIN).status_code == 403
    # The tablet keeps its PIN.
    assert 'name="pin"' in client.get("/kiosk").get_data(as_text=True)

    resp = sign_in(client, DESK_USER, next_path="/desk")
    assert resp.status_code == 303 and resp.headers["Location"] == "/desk"
    html = client.get("/desk?lang=en").get_data(as_text=True)
    assert "Front-desk alerts" in html and f"{DESK_USER} (front desk)" in html
    assert 'action="/auth/signout"' in html and "/auth/static/staff.js" in html
    assert "/desk/static/desk.css" in html and "/desk/static/desk.js" in html
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
    assert client.get("/desk/stream").status_code == 401
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
    for private in ("MRN-D", "秘密", "PE_SUSPECT", "DVT", "chest"):
        assert private not in html
    # The alert area lists the open emergency.
    assert f"Emergency: intake {emergency.business_id}" in html
    rows = client.get("/desk/rows?lang=ja").get_data(as_text=True)
    assert "救急(今すぐ)" in rows
    # The audit trail names who looked.
    viewed = audit_events(desk_app, "desk.viewed")
    assert [(e.actor, e.detail) for e in viewed] == [(DESK_USER, {"rows": 4})]


def test_stream_sends_alerts_from_the_database_without_redis(desk_app: Any) -> None:
    client = _desk_client(desk_app)
    first = _intake(desk_app, "pub-01", "MRN-S1")
    emergency = _intake(desk_app, "pub-06", "MRN-S2")
    resp = client.get("/desk/stream?after=0&lang=en")
    assert resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_data(as_text=True)  # the stream ends by itself (2 s here)
    assert body.startswith("retry: 1000\n\n")
    events = _events(body)
    kinds = [(e[1], e[2].get("business_id")) for e in events if e[1] in ("alert", "update")]
    assert kinds == [("update", first.business_id), ("alert", emergency.business_id)]
    alert = next(e for e in events if e[1] == "alert")
    assert set(alert[2]) == {"business_id", "urgency", "urgency_label", "department_label",
                             "time"}
    assert events[-1][1] == "bye"
    # Reconnecting with Last-Event-ID continues after what was received.
    again = client.get("/desk/stream", headers={"Last-Event-ID": alert[0]})
    assert [e for e in _events(again.get_data(as_text=True))
            if e[1] in ("alert", "update")] == []


def test_stream_ends_when_the_sign_in_would(make_app: Callable[..., Any],
                                            sqlite_url: str) -> None:
    """An unattended desk's stream stops at the idle time-out, not 25 s later, and the
    reconnection is refused."""
    app = make_app(sqlite_url, desk_stream_seconds="25")
    client = _desk_client(app)
    age_sessions(app, idle=timedelta(minutes=15) - timedelta(seconds=3))
    started = time.monotonic()
    body = client.get("/desk/stream?after=0").get_data(as_text=True)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed <= 8, elapsed
    assert _events(body)[-1][1] == "bye"
    time.sleep(max(0.0, 3.2 - elapsed))
    assert client.get("/desk/stream").status_code == 401
    assert [e.detail for e in audit_events(app, "signin.expired")] == [{"why": "idle"}]
