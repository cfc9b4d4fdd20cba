"""The front-desk page: PIN sign-in, the list by urgency, and the bounded alert stream."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import itsdangerous.timed
import pytest
from kiosk_helpers import PIN, TOKEN_RE

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.storage.models import Intake
from support import case


@pytest.fixture
def desk_app(make_app: Callable[..., Any], sqlite_url: str) -> Any:
    return make_app(sqlite_url, kiosk_pin=PIN, desk_stream_seconds="2")


def _sign_in(client: Any, pin: str = PIN, lang: str = "en") -> Any:
    page = client.get(f"/desk?lang={lang}")
    token = TOKEN_RE.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    return client.post(f"/desk/signin?lang={lang}", data={"pin": pin, "csrf_token": token})


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


def test_desk_needs_the_staff_pin(desk_app: Any) -> None:
    client = desk_app.test_client()
    page = client.get("/desk")
    assert page.status_code == 200 and 'name="pin"' in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/desk/rows").status_code == 401
    assert client.get("/desk/stream").status_code == 401
    assert client.get("/desk/state").get_json() == {"signed_in": False}
    assert _sign_in(client, pin="999999").status_code == 403
    assert client.get("/desk/state").get_json() == {"signed_in": False}
    resp = _sign_in(client)
    assert resp.status_code == 303
    assert client.get("/desk/state").get_json() == {"signed_in": True}
    page = client.get("/desk?lang=en").get_data(as_text=True)
    token = TOKEN_RE.search(page).group(1)  # type: ignore[union-attr]
    client.post("/desk/signout", data={"csrf_token": token})
    assert client.get("/desk/state").get_json() == {"signed_in": False}


def test_sign_in_ends_after_its_lifetime(desk_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    client = desk_app.test_client()
    hours = state(desk_app).settings.desk_session_hours
    real = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real() - hours * 3600 - 5)
    _sign_in(client)
    monkeypatch.undo()
    assert client.get("/desk/state").get_json() == {"signed_in": False}
    assert client.get("/desk/stream").status_code == 401


def test_list_is_by_urgency_without_names_or_answers(desk_app: Any) -> None:
    routine = _intake(desk_app, "pub-07", "MRN-D1")
    emergency = _intake(desk_app, "pub-03", "MRN-D2")
    pending = _intake(desk_app, "pub-01", "MRN-D3", triage=False)
    same_day = _intake(desk_app, "pub-02", "MRN-D4")
    client = desk_app.test_client()
    _sign_in(client)
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


def test_stream_sends_alerts_from_the_database_without_redis(desk_app: Any) -> None:
    client = desk_app.test_client()
    _sign_in(client)
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
