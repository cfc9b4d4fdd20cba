"""Units of the live process: what a staff stream is told it missed
(:meth:`Hub.changes_since`), one stream's queue (:class:`Stream`), the cap per board or
user (:meth:`Hub.add`), and the reader of changes (:func:`changes_after`), which must
report a row committed late (a lower id, visible after a higher one) exactly once."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import sessionmaker

from intake import state
from intake.config import load_settings
from intake.live import changes
from intake.live.hub import CHANGE_HISTORY, QUEUE_SIZE, SINCE_SLACK, Hub, Stream, sse
from intake.storage.models import DeliveryAttempt, ReviewAction, TriageRecord, utcnow
from support import case
from support.auth import make_user
from support.live import submit

ROUTINE = case("pub-01")["answers"]


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    settings = load_settings(environ={}, overrides={"data_dir": tmp_path})
    made = Hub(settings, reads=sessionmaker(), writes=sessionmaker())
    made.started_wall = time.time() - 1000  # a process that has run for a while
    return made


def add_batch(hub: Hub, *intakes: str, at: float) -> None:
    """What :meth:`Hub.tick` records for one read that found changes."""
    hub.seq += 1
    hub.history.append((hub.seq, at, json.dumps([["result", i, 0] for i in sorted(intakes)])))


def parse(text: str) -> tuple[str | None, str, Any]:
    fields = dict(line.split(": ", 1) for line in text.strip().splitlines())
    return fields.get("id"), fields["event"], json.loads(fields["data"])


def missed(hub: Hub, last: str | None = None, since: float | None = None) -> Any:
    event_id, name, data = parse(hub.changes_since(last, since))
    assert name == "changed" and event_id == f"{hub.epoch}-{hub.seq}"
    return data


ALL = {"intakes": [], "all": True}


def some(*intakes: str) -> dict[str, Any]:
    return {"intakes": sorted(intakes), "all": False}


# --- Hub.changes_since --------------------------------------------------------------


def test_a_reconnect_of_this_process_gets_exactly_the_batches_after_its_id(hub: Hub) -> None:
    start = hub.started_wall
    add_batch(hub, "a", at=start + 10)
    add_batch(hub, "b", "c", at=start + 20)
    add_batch(hub, "c", "d", at=start + 30)
    assert missed(hub, f"{hub.epoch}-1") == some("b", "c", "d")
    assert missed(hub, f"{hub.epoch}-2") == some("c", "d")
    assert missed(hub, f"{hub.epoch}-3") == some()  # saw everything
    assert missed(hub, f"{hub.epoch}-0") == some("a", "b", "c", "d")  # saw none of them
    # The id wins over since (a page rendered long before its last event).
    assert missed(hub, f"{hub.epoch}-2", since=start + 5) == some("c", "d")


def test_an_id_this_process_cannot_place_means_reload_everything(hub: Hub) -> None:
    start = hub.started_wall
    for n in range(CHANGE_HISTORY + 20):
        add_batch(hub, f"i{n}", at=start + n / 100)
    oldest = hub.history[0][0]
    assert oldest == 21
    for last in ("00000000-3",  # another process (or this one before a restart)
                 f"{hub.epoch}-{oldest - 2}",  # older than the history kept
                 f"{hub.epoch}-{hub.seq + 1}",  # from the future
                 f"{hub.epoch}-", f"{hub.epoch}-x", f"{hub.epoch}--1", f"{hub.epoch}-1e3",
                 f"{hub.epoch}-{'9' * 30}", "", hub.epoch):
        assert missed(hub, last) == ALL, last
    # Just inside the history: the batches after it.
    assert missed(hub, f"{hub.epoch}-{oldest - 1}") == some(
        *(f"i{n}" for n in range(20, CHANGE_HISTORY + 20)))


def test_since_before_this_process_started_means_reload_everything(hub: Hub) -> None:
    start = hub.started_wall
    add_batch(hub, "a", at=start + 10)
    assert missed(hub) == ALL  # a page that says nothing
    assert missed(hub, since=start - 100) == ALL
    assert missed(hub, since=start) == ALL
    assert missed(hub, since=start + SINCE_SLACK - 0.01) == ALL  # within the clocks' slack


def test_since_after_the_start_gets_the_batches_after_it(hub: Hub) -> None:
    start = hub.started_wall
    add_batch(hub, "a", at=start + 10)
    add_batch(hub, "b", at=start + 20)
    add_batch(hub, "c", "b", at=start + 30)
    assert missed(hub, since=start + SINCE_SLACK) == some("a", "b", "c")
    assert missed(hub, since=start + 12) == some("a", "b", "c")  # 10 is within the slack
    assert missed(hub, since=start + 12.5) == some("b", "c")
    assert missed(hub, since=start + 31) == some("b", "c")
    assert missed(hub, since=start + 32.5) == some()
    # A full history that does not reach back to since: it cannot tell.
    for n in range(CHANGE_HISTORY):
        add_batch(hub, f"i{n}", at=start + 100 + n)
    assert missed(hub, since=start + 50) == ALL
    assert missed(hub, since=start + 100 + CHANGE_HISTORY - 1 + SINCE_SLACK) == some(
        f"i{CHANGE_HISTORY - 1}")


def test_a_process_with_no_changes_yet(hub: Hub) -> None:
    assert missed(hub, f"{hub.epoch}-0") == some()
    assert missed(hub, since=hub.started_wall + 60) == some()
    assert missed(hub, f"{hub.epoch}-1") == ALL


# --- Stream -------------------------------------------------------------------------


def queued(stream: Stream) -> list[str | None]:
    out: list[str | None] = []
    while not stream.queue.empty():
        out.append(stream.queue.get_nowait())
    return out


def test_close_sends_bye_then_the_end() -> None:
    stream = Stream("board", "device:1", "device:受付1", device_token="t" * 64)
    assert stream.send("one") and stream.send("two")
    stream.close("revoked")
    assert stream.closed == "revoked"
    assert queued(stream) == ["one", "two", sse("bye", {"reason": "revoked"}), None]
    # Closed once: a second close and later sends add nothing.
    stream.close("shutdown")
    assert stream.send("three") is False
    assert queued(stream) == [] and stream.closed == "revoked"


def test_a_stream_that_does_not_keep_up_is_closed_as_slow() -> None:
    stream = Stream("staff", "session:k", "dr-a", session_key="k")
    for n in range(QUEUE_SIZE):
        assert stream.send(f"event {n}")
    assert stream.send("one too many") is False
    assert stream.closed == "slow"
    items = queued(stream)
    assert len(items) <= QUEUE_SIZE
    assert items[-2:] == [sse("bye", {"reason": "slow"}), None]
    assert "one too many" not in items
    # The oldest (stale: the page reloads anyway) made room for the goodbye.
    assert items[:-2] == [f"event {n}" for n in range(QUEUE_SIZE - len(items) + 2, QUEUE_SIZE)]


def test_the_cap_per_board_closes_the_oldest(hub: Hub) -> None:
    streams = [Stream("board", "device:7", "device:b") for _ in range(3)]
    for n, stream in enumerate(streams):
        stream.opened = 100.0 + n
    neighbour = Stream("board", "device:8", "device:c")
    hub.add(neighbour, per_principal=2)
    for stream in streams:
        hub.add(stream, per_principal=2)
    assert hub.streams == {neighbour, streams[1], streams[2]}
    assert streams[0].closed == "replaced"
    assert queued(streams[0])[-2:] == [sse("bye", {"reason": "replaced"}), None]
    # Every stream starts with the state of its audience.
    assert queued(streams[2]) == [hub.board_state]
    staff = Stream("staff", "user:1", "dr-a", session_key="k")
    hub.add(staff, per_principal=2)
    assert queued(staff) == [hub.staff_state]
    assert hub.counts() == {"streams": 4, "boards": 3, "staff": 1}


# --- changes_after ------------------------------------------------------------------


def test_a_late_commit_is_reported_once_and_nothing_twice(make_app: Any,
                                                         database_url: str) -> None:
    app = make_app(database_url)
    sessions = state(app).sessions
    before = submit(app, ROUTINE, triage=False)
    seen = changes.Seen()
    with sessions() as s:  # as the hub starts: what is stored now is not news
        cursor = changes.latest_cursor(s)
        changes.changes_after(s, cursor, seen)  # the look-back, noted as seen
    reported: list[tuple[str, str]] = []

    def read() -> list[tuple[str, str]]:
        nonlocal cursor
        with sessions() as s:
            found, cursor = changes.changes_after(s, cursor, seen)
        pairs = [(kind, intake) for kind, intake, _ in found]
        reported.extend(pairs)
        return pairs

    assert read() == []
    a, b, c = (submit(app, ROUTINE, triage=False) for _ in range(3))
    assert sorted(read()) == sorted([("intake", a), ("intake", b), ("intake", c)])
    user = make_user(app, "dr-late", "practitioner")
    now = utcnow()

    def result(row_id: int, intake_id: str) -> TriageRecord:
        return TriageRecord(id=row_id, intake_id=intake_id, revision=1, ruleset="test",
                            urgency="routine", department="orthopedics", red_flag=False,
                            flag_codes=",", result={}, created_at=now)

    def attempt(row_id: int, intake_id: str) -> DeliveryAttempt:
        return DeliveryAttempt(id=row_id, intake_id=intake_id, revision=1, attempt_no=1,
                               adapter="folder", target="outbox", outcome="delivered",
                               started_at=now, finished_at=now)

    def action(row_id: int, intake_id: str) -> ReviewAction:
        return ReviewAction(id=row_id, intake_id=intake_id, seq=row_id, kind="reviewed",
                            revision=1, user_id=user, at=now)

    for kind, make in (("result", result), ("delivery", attempt), ("review", action)):
        # Ids 20 and then 30 are committed; 25 (handed out before 30) commits last.
        with sessions.begin() as s:
            s.add(make(20, a))
        assert read() == [(kind, a)]
        with sessions.begin() as s:
            s.add(make(30, b))
        assert read() == [(kind, b)]
        assert read() == []
        with sessions.begin() as s:
            s.add(make(25, c))
        assert read() == [(kind, c)], kind  # behind the cursor, still reported
        assert read() == []
    # An arrival committed late: received (its clock) before the newest one read.
    late = submit(app, ROUTINE, triage=False, at=utcnow() - timedelta(seconds=3))
    assert read() == [("intake", late)]
    assert read() == []
    # Each row once, over all those reads; nothing from before the start.
    assert len(reported) == 3 + 3 * 3 + 1 == len(set(reported))
    assert before not in {i for _, i in reported}


def test_a_new_page_is_told_only_what_its_cursor_had_not(hub: Hub) -> None:
    """A page rendered at a database cursor: the changes of the margin before its time
    that it already showed are left out (a case page would otherwise reload for them)."""
    start = hub.started_wall
    hub.seq += 1
    hub.history.append((hub.seq, start + 10, json.dumps(
        [["result", "a", 7], ["delivery", "a", 3], ["intake", "b", 1_000]])))
    hub.seq += 1
    hub.history.append((hub.seq, start + 11, json.dumps(
        [["review", "c", 5], ["intake", "d", 2_000]])))
    seen_all = changes.Cursor(result=7, attempt=3, action=5, received_us=2_000)
    event_id, _, data = parse(hub.changes_since(None, start + 11, seen_all))
    assert data == some() and event_id == f"{hub.epoch}-{hub.seq}"
    partly = changes.Cursor(result=7, attempt=2, action=5, received_us=1_500)
    assert parse(hub.changes_since(None, start + 11, partly))[2] == some("a", "d")
    # Without a cursor, everything in the margin.
    assert parse(hub.changes_since(None, start + 11))[2] == some("a", "b", "c", "d")
    assert changes.Cursor.parse(str(partly)) == partly
    for bad in ("", "1.2.3", "a.b.c.d", "1.2.3.4.5", "-1.2.3.4", "1" * 19 + ".2.3.4"):
        assert changes.Cursor.parse(bad) is None, bad
