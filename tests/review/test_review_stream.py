"""The live stream /review/stream: a new intake, a new result (an emergency as an alert),
a delivery and another practitioner's action each arrive as an event; the event id lets
a reconnecting page continue where it stopped; the stream is bounded in time and ends
with the sign-in. Payloads carry ids, codes and labels only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from review_helpers import DVT, EMERGENCY, SOON, Browser, deliver, signed_in, submit
from sqlalchemy import update

from intake import pipeline, state
from intake.review import worklist
from intake.storage.models import UserSession, utcnow


@pytest.fixture
def stream_app(make_app: Any, sqlite_url: str) -> Any:
    return make_app(sqlite_url, desk_stream_seconds="4")


@pytest.fixture
def watcher(stream_app: Any) -> Browser:
    return signed_in(stream_app, "dr.watch")


class Events:
    """Reads a streamed response event by event (the test client runs the generator in
    this thread, so whatever the test stores between reads is seen by the next poll)."""

    def __init__(self, resp: Any) -> None:
        assert resp.status_code == 200, resp.status_code
        assert resp.mimetype == "text/event-stream"
        self.chunks: Iterator[Any] = iter(resp.response)
        self.resp = resp

    def next(self) -> dict[str, Any]:
        raw = next(self.chunks)
        text = raw.decode() if isinstance(raw, bytes) else raw
        fields: dict[str, Any] = {}
        for line in text.strip().splitlines():
            key, _, value = line.partition(": ")
            fields[key] = value
        if "data" in fields:
            fields["data"] = json.loads(fields["data"])
        return fields

    def until(self, name: str, limit: int = 50) -> dict[str, Any]:
        for _ in range(limit):
            found = self.next()
            if found.get("event") == name:
                return found
        raise AssertionError(f"no {name} event")

    def rest(self) -> list[dict[str, Any]]:
        out = []
        for _ in range(200):
            try:
                out.append(self.next())
            except StopIteration:
                return out
        raise AssertionError("the stream did not end")

    def close(self) -> None:
        self.resp.close()


def test_a_new_intake_and_its_result_arrive(stream_app: Any, watcher: Browser) -> None:
    events = Events(watcher.client.get("/review/stream?lang=en", buffered=False))
    try:
        assert events.next() == {"retry": "1000"}
        assert events.next()["event"] == "ping"
        made = submit(stream_app, EMERGENCY, record_number="MRN-LIVE", triage=False)
        arrived = events.until("intake")
        assert arrived["data"]["intake_id"] == made
        with state(stream_app).sessions.begin() as s:
            pipeline.run_triage(s, made)
        alert = events.until("alert")
        assert alert["data"]["intake_id"] == made
        assert alert["data"]["urgency"] == "emergency"
        assert alert["data"]["urgency_label"] == "emergency, now"
        assert "MRN-LIVE" not in json.dumps(arrived) + json.dumps(alert)
        cursor = events.until("cursor")
        assert worklist.Cursor.parse(cursor["id"]) is not None
    finally:
        events.close()


def test_other_results_deliveries_and_actions(stream_app: Any, watcher: Browser) -> None:
    made = submit(stream_app, SOON)
    events = Events(watcher.client.get("/review/stream", buffered=False))
    try:
        events.until("ping")
        assert deliver(stream_app, made).status == "delivered"
        delivered = events.until("delivery")
        assert delivered["data"] == {"intake_id": made, "outcome": "delivered"}
        other = signed_in(stream_app, "dr.other")
        assert other.act(made, "reviewed").status_code == 303
        review = events.until("review")
        assert review["data"] == {"intake_id": made, "kind": "reviewed"}
        second = submit(stream_app, DVT)
        result = events.until("result")
        assert result["data"]["intake_id"] == second
        assert result["data"]["urgency"] == "same_day" and result["data"]["revision"] == 1
    finally:
        events.close()


def test_reconnect_continues_after_the_last_event_id(stream_app: Any,
                                                      watcher: Browser) -> None:
    page = watcher.get("/review").get_data(as_text=True)
    after = page.split('data-after="')[1].split('"')[0]
    missed = submit(stream_app, DVT)  # stored while the page had no stream open
    events = Events(watcher.client.get(f"/review/stream?after={after}", buffered=False))
    try:
        assert events.until("result")["data"]["intake_id"] == missed
        last = events.until("cursor")["id"]
    finally:
        events.close()
    newer = submit(stream_app, SOON)
    # The browser's automatic reconnection sends Last-Event-ID (it wins over ?after=).
    events = Events(watcher.client.get(f"/review/stream?after={after}", buffered=False,
                                       headers={"Last-Event-ID": last}))
    try:
        seen = []
        for found in events.rest():
            if found.get("event") == "result":
                seen.append(found["data"]["intake_id"])
        assert seen == [newer]
    finally:
        events.close()


def test_bounded_in_time(stream_app: Any, watcher: Browser) -> None:
    started = time.monotonic()
    events = Events(watcher.client.get("/review/stream", buffered=False))
    kinds = [e.get("event") for e in events.rest()]
    assert kinds[-1] == "bye"
    assert 3.5 <= time.monotonic() - started <= 8


def test_ends_when_the_sign_in_ends(make_app: Any, sqlite_url: str) -> None:
    app = make_app(sqlite_url, desk_stream_seconds="600", session_idle_minutes="1")
    browser = signed_in(app, "dr.idle")
    # The sign-in was last used 58 s ago: 2 s are left before the idle time-out.
    with state(app).sessions.begin() as s:
        s.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(seconds=58)))
    started = time.monotonic()
    events = Events(browser.client.get("/review/stream", buffered=False))
    assert events.rest()[-1].get("event") == "bye"
    assert time.monotonic() - started < 6
    # The stream did not count as activity: the sign-in has ended.
    time.sleep(0.5)
    assert browser.client.get("/review/stream").status_code == 401


def test_events_after_announces_each_arrival_once(stream_app: Any) -> None:
    sessions = state(stream_app).sessions
    with sessions() as s:
        start = worklist.latest_cursor(s)
    first = submit(stream_app, SOON, triage=False)
    seen: set[str] = set()
    tz = worklist.ZoneInfo("Asia/Tokyo")
    with sessions() as s:
        events, cursor = worklist.events_after(s, start, lang="ja", tz=tz, seen=seen)
    assert [(e.kind, e.payload["intake_id"]) for e in events] == [("intake", first)]
    # The look-back finds it again; the connection has announced it already.
    with sessions() as s:
        again, same = worklist.events_after(s, cursor, lang="ja", tz=tz, seen=seen)
    assert again == [] and same == cursor
    # A fresh connection from the same cursor announces arrivals in the look-back window
    # again (the page only refreshes its list once more): nothing can slip between them.
    with sessions() as s:
        fresh, _ = worklist.events_after(s, cursor, lang="ja", tz=tz, seen=set())
    assert [e.payload["intake_id"] for e in fresh] == [first]
    assert str(worklist.Cursor.parse(str(cursor))) == str(cursor)
    for bad in ("", "1.2.3", "a.b.c.d", "1.2.3.4.5", "-1.2.3.4", "1" * 19 + ".0.0.0"):
        assert worklist.Cursor.parse(bad) is None, bad
