"""The staff pages' stream (/live/staff) from a real live process: only a signed-in staff
user gets in; it starts with what the page missed (``changed``) and the alerts with
their intake ids (``state``); each arrival, result, delivery attempt and review action
names its intake; a reconnecting page learns exactly what it missed; signing out ends
the stream at once (Redis notice)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest

from intake import state
from intake.live.hub import SINCE_SLACK
from intake.live.notify import publish
from support import REVISION_RE, TOKEN_RE, case, wait_for
from support.adapters import deliver_once
from support.auth import csrf_token, sign_out, signed_in_client
from support.live import (
    DEVICE_COOKIE,
    SESSION_COOKIE,
    Event,
    EventStream,
    alert_of,
    alerts_of,
    audit_rows,
    emergency,
    enroll_board,
    intake_row,
    on_databases,
    run_triage,
    same_day,
    session_cookies,
    state_with,
    submit,
)
from support.processes import LiveProcess

pytestmark = on_databases("sqlite", "postgresql")

ROUTINE = case("pub-01")["answers"]  # self care: no alert


@dataclass
class Desk:
    app: Any
    live: LiveProcess
    watcher: EventStream  # a practitioner's stream, open for the whole module


@pytest.fixture(scope="module")
def desk(make_world: Any, live_redis: str) -> Any:
    world = make_world(live_redis)
    live = world.live(wait=False)
    watcher_client = signed_in_client(world.app, "practitioner", "dr-watch")
    live.wait_ready()
    watcher = EventStream(live.base, "/live/staff", cookies=session_cookies(watcher_client))
    assert watcher.status == 200
    yield Desk(world.app, live, watcher)
    watcher.close()


def open_staff(live: LiveProcess, client: Any, **kwargs: Any) -> EventStream:
    stream = EventStream(live.base, "/live/staff" + kwargs.pop("query", ""),
                         cookies=session_cookies(client), **kwargs)
    assert stream.status == 200, (stream.status, stream.body)
    return stream


def first_named(stream: EventStream) -> Event:
    """The first event with a name (the ``retry`` line comes before it)."""
    event = stream.next(timeout=2)
    while event is not None and not event.name:
        event = stream.next(timeout=2)
    assert event is not None, "the stream ended"
    return event


def missed(stream: EventStream) -> dict[str, Any]:
    """What the stream's first ``changed`` says the page missed (its later ones name
    the kinds of change as well)."""
    event = stream.until("changed", 2)
    assert "kinds" not in event.data, event
    data: dict[str, Any] = event.data
    return data


def changed_for(stream: EventStream, intake_id: str, kind: str, timeout: float = 2) -> Event:
    return stream.until("changed", timeout,
                        lambda e: intake_id in e.data["intakes"]
                        and kind in e.data.get("kinds", []))


def seen(stream: EventStream, *intake_ids: str, kind: str = "intake",
         timeout: float = 3) -> None:
    """Wait until the stream has named each of these intakes in a ``changed`` of this
    kind (then the hub has read that change, and the alerts read with it)."""
    missing = set(intake_ids)
    deadline = time.monotonic() + timeout
    while missing:
        event = stream.until("changed", max(0.01, deadline - time.monotonic()),
                             lambda e: kind in e.data.get("kinds", []))
        missing -= set(event.data["intakes"])


def test_only_a_signed_in_staff_user_gets_a_stream(desk: Desk) -> None:
    app = desk.app
    board = enroll_board(app)
    gone = signed_in_client(app, "front_desk", "desk-gone")
    gone_cookies = session_cookies(gone)
    assert sign_out(gone).status_code == 303
    for cookies in ({}, {SESSION_COOKIE: "not-a-session"}, {SESSION_COOKIE: "x" * 500},
                    {SESSION_COOKIE: board.cookie},  # a board's token is no sign-in
                    {DEVICE_COOKIE: board.cookie},
                    gone_cookies):  # signed out
        refused = EventStream(desk.live.base, "/live/staff", cookies=cookies)
        assert refused.status == 401, cookies
        assert b"changed" not in refused.body


def test_the_first_event_says_what_the_page_missed(desk: Desk) -> None:
    """The page learns first whether it must reload, then gets the alerts."""
    client = signed_in_client(desk.app, "front_desk", "desk-first")
    with open_staff(desk.live, client) as stream:
        assert stream.next(timeout=1).retry == "2000"
        assert [first_named(stream).name, first_named(stream).name] == ["changed", "state"]


@pytest.mark.parametrize("role", ["front_desk", "practitioner", "admin"])
def test_each_staff_role_gets_what_changed_and_the_alerts(desk: Desk, role: str) -> None:
    app = desk.app
    intake_id = emergency(app, record_number=f"MRN-{role}")
    alert = alert_of(app, intake_id)
    seen(desk.watcher, intake_id, kind="result")  # the hub has read it
    client = signed_in_client(app, role, f"{role.replace('_', '-')}-roles")
    with open_staff(desk.live, client) as stream:
        assert stream.next(timeout=1).retry == "2000"
        opening = {e.name: e for e in (first_named(stream), first_named(stream))}
        assert set(opening) == {"changed", "state"}
        changed, shown = opening["changed"], opening["state"]
        # A page that says nothing about itself is told to reload everything.
        assert changed.data == {"intakes": [], "all": True}
        assert re.fullmatch(r"[0-9a-f]{8}-\d+", changed.id or "")
        assert shown.at - stream.opened < 1 and changed.at - stream.opened < 1
        got = alerts_of(shown)[alert.id]
        assert got["intake_id"] == intake_id
        assert got["business_id"] == intake_row(app, intake_id).business_id
        assert got["level"] == "emergency" and got["patient"] == {"record": f"MRN-{role}"}


def test_each_kind_of_change_names_its_intake(desk: Desk) -> None:
    app = desk.app
    stream = desk.watcher
    made = submit(app, ROUTINE, record_number="MRN-CHANGES", triage=False)
    arrival = changed_for(stream, made, "intake")
    run_triage(app, made)
    result = changed_for(stream, made, "result")
    st = state(app)
    with app.app_context():
        step = deliver_once(st.sessions, st.settings, made)
    assert step.status == "delivered", step
    publish(st.settings.redis_url, "change", intake=made)  # as the worker does
    delivery = changed_for(stream, made, "delivery")
    doctor = signed_in_client(app, "practitioner", "dr-acts")
    page = doctor.get(f"/review/{made}").get_data(as_text=True)
    revision, token = REVISION_RE.search(page), TOKEN_RE.search(page)
    assert revision and token
    resp = doctor.post(f"/review/{made}/reviewed",
                       data={"csrf_token": token.group(1), "revision": revision.group(1)})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    review = changed_for(stream, made, "review")
    ids = [arrival.id, result.id, delivery.id, review.id]
    seqs = [int((i or "").rsplit("-", 1)[1]) for i in ids]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4, ids
    assert len({(i or "").rsplit("-", 1)[0] for i in ids}) == 1  # one process epoch


def test_a_reconnecting_page_gets_exactly_what_it_missed(desk: Desk) -> None:
    app = desk.app
    client = signed_in_client(app, "front_desk", "desk-reconnects")
    before = submit(app, ROUTINE, record_number="MRN-BEFORE", triage=False)
    seen(desk.watcher, before)
    with open_staff(desk.live, client) as stream:
        missed(stream)
        during = submit(app, ROUTINE, record_number="MRN-DURING", triage=False)
        last = changed_for(stream, during, "intake").id
    assert last is not None
    # Offline: a new intake, and another's triage result.
    offline = submit(app, ROUTINE, record_number="MRN-MISSED", triage=False)
    seen(desk.watcher, offline)
    run_triage(app, during)
    seen(desk.watcher, during, kind="result")
    # The browser's reconnection sends the last id it saw; a page can pass it as ?last=.
    for kwargs in ({"headers": {"Last-Event-ID": last}}, {"query": f"?last={last}"}):
        with open_staff(desk.live, client, **kwargs) as again:
            assert missed(again) == {"intakes": sorted([offline, during]), "all": False}
    # An id this process never gave (another process, before a restart) or nonsense:
    # the page cannot know what it missed, and reloads everything.
    epoch = last.rsplit("-", 1)[0]
    for other in ("00000000-1", f"{epoch}-999999", f"{epoch}-x", f"{epoch}-", "-1", "x" * 99):
        with open_staff(desk.live, client, headers={"Last-Event-ID": other}) as again:
            assert missed(again) == {"intakes": [], "all": True}, other


def test_a_new_page_gets_what_changed_since_it_was_rendered(desk: Desk) -> None:
    app = desk.app
    client = signed_in_client(app, "front_desk", "desk-since")
    # A page rendered before this process started: it cannot tell.
    for since in (desk.live.ready_wall - 60, 0.0):
        with open_staff(desk.live, client, query=f"?since={since:.3f}") as stream:
            assert missed(stream) == {"intakes": [], "all": True}
    old = submit(app, ROUTINE, record_number="MRN-OLD", triage=False)
    seen(desk.watcher, old)
    # The page is rendered later than the clocks' slack after the hub read `old`.
    rendered = max(time.time(), desk.live.ready_wall) + SINCE_SLACK + 0.2
    time.sleep(max(0.0, rendered - time.time()))
    new = submit(app, ROUTINE, record_number="MRN-NEW", triage=False)
    seen(desk.watcher, new)
    with open_staff(desk.live, client, query=f"?since={rendered:.3f}") as stream:
        assert missed(stream) == {"intakes": [new], "all": False}
    # An event id of another process (a restart) falls back on since.
    with open_staff(desk.live, client, query=f"?since={rendered:.3f}",
                    headers={"Last-Event-ID": "00000000-3"}) as stream:
        assert missed(stream) == {"intakes": [new], "all": False}
    # Nonsense is no time.
    with open_staff(desk.live, client, query="?since=soon") as stream:
        assert missed(stream) == {"intakes": [], "all": True}


def test_signing_out_ends_the_stream_at_once(desk: Desk) -> None:
    app = desk.app
    leaving = signed_in_client(app, "front_desk", "desk-leaves")
    other_tab = signed_in_client(app, "front_desk", "desk-leaves")  # a second sign-in
    cookies = session_cookies(leaving)
    stream, other = open_staff(desk.live, leaving), open_staff(desk.live, other_tab)
    try:
        stream.until("state", 1)
        other.until("state", 1)
        started = time.monotonic()
        assert leaving.post("/auth/signout",
                            data={"csrf_token": csrf_token(leaving)}).status_code == 303
        bye = stream.until("bye", 2)
        assert bye.data == {"reason": "signed_out"}
        assert bye.at - started < 2
        assert stream.rest(2) == []
        # The user's other sign-in, and everyone else's, go on.
        desk.watcher.drain()
        other.drain()
        assert other.until("ping", 2).at > bye.at
        assert desk.watcher.until("ping", 2).at > bye.at
    finally:
        stream.close()
        other.close()
    assert EventStream(desk.live.base, "/live/staff", cookies=cookies).status == 401


def shown_to(app: Any, viewer: str, alert_id: int) -> int:
    return sum(1 for e in audit_rows(app, "alert.displayed", str(alert_id))
               if e.actor == viewer)


def test_each_staff_viewer_of_an_alert_is_audited_once(desk: Desk) -> None:
    """The desk shows the alerts (patients' names) as a board does: who saw which is
    audited once per viewer and alert, from the moment the stream shows it."""
    app = desk.app
    intake_id = emergency(app, record_number="MRN-SEEN")
    first = alert_of(app, intake_id).id
    seen(desk.watcher, intake_id, kind="result")
    client = signed_in_client(app, "front_desk", "desk-sees")
    with open_staff(desk.live, client) as stream:
        assert first in alerts_of(stream.until("state", 1))
        wait_for(lambda: shown_to(app, "desk-sees", first) == 1, timeout=3,
                 message="alert.displayed for the desk")
    with open_staff(desk.live, client) as stream:  # the page reloads
        second = alert_of(app, emergency(app, record_number="MRN-SEEN-2")).id
        state_with(stream, second, 2)
        wait_for(lambda: shown_to(app, "desk-sees", second) == 1, timeout=3,
                 message="alert.displayed for the new alert")
        stream.until("ping", 2)
        stream.until("ping", 2)
    assert (shown_to(app, "desk-sees", first), shown_to(app, "desk-sees", second)) == (1, 1)


def test_same_day_alerts_are_listed_for_staff_too(desk: Desk) -> None:
    app = desk.app
    intake_id = same_day(app, record_number="MRN-SAME-DAY")
    alert = alert_of(app, intake_id)
    shown = desk.watcher.until("state", 2, lambda e: alert.id in alerts_of(e))
    got = alerts_of(shown)[alert.id]
    assert got["level"] == "same_day" and got["intake_id"] == intake_id
