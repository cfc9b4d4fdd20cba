"""Heartbeats and the live process's limits: a ``ping`` every
``INTAKE_LIVE_HEARTBEAT_SECONDS``; at most ``INTAKE_LIVE_STREAMS_PER_CLIENT`` streams per
board or staff sign-in (a new one closes the oldest: ``bye replaced``); at most
``INTAKE_LIVE_MAX_STREAMS`` in all (then 503 with Retry-After), except that a board is
never refused while a staff page holds a stream it can take; no HEAD on a stream."""

from __future__ import annotations

import http.client
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from support import wait_for
from support.auth import signed_in_client
from support.live import EventStream, enroll_board, session_cookies
from support.processes import LiveProcess

PER_CLIENT = 2
MAX_STREAMS = 10  # the smallest the setting allows


@dataclass
class Limits:
    world: Any
    app: Any
    live: LiveProcess


@pytest.fixture(scope="module")
def limits(make_world: Any) -> Limits:
    world = make_world()
    live = world.live(redis=False, live_streams_per_client=str(PER_CLIENT),
                      live_max_streams=str(MAX_STREAMS))
    return Limits(world, world.app, live)


@pytest.fixture
def streams(limits: Limits) -> Iterator[list[EventStream]]:
    """Streams a test opens; closed afterwards, and the process has let them go."""
    opened: list[EventStream] = []
    yield opened
    for stream in opened:
        stream.close()
    wait_for(lambda: limits.live.health()["streams"] == 0, timeout=5,
             message="the live process to drop the closed streams")


def open_stream(limits: Limits, streams: list[EventStream], path: str,
                cookies: dict[str, str]) -> EventStream:
    stream = EventStream(limits.live.base, path, cookies=cookies)
    streams.append(stream)
    return stream


def test_a_ping_every_heartbeat(limits: Limits, streams: list[EventStream]) -> None:
    board = enroll_board(limits.app)
    stream = open_stream(limits, streams, "/live/board", board.cookies)
    doctor = signed_in_client(limits.app, "practitioner", "dr-ping")
    staff = open_stream(limits, streams, "/live/staff", session_cookies(doctor))
    for each in (stream, staff):
        assert each.status == 200
    pings = [stream.until("ping", 2) for _ in range(3)]
    gaps = [b.at - a.at for a, b in zip(pings, pings[1:], strict=False)]
    assert all(0.7 <= gap <= 1.4 for gap in gaps), gaps
    assert all("t" in p.data for p in pings), [p.data for p in pings]
    assert staff.until("ping", 2).name == "ping"


def test_a_new_stream_of_the_same_board_closes_its_oldest(
        limits: Limits, streams: list[EventStream]) -> None:
    board, neighbour = enroll_board(limits.app), enroll_board(limits.app)
    oldest = open_stream(limits, streams, "/live/board", board.cookies)
    oldest.until("state", 1)
    second = open_stream(limits, streams, "/live/board", board.cookies)
    other = open_stream(limits, streams, "/live/board", neighbour.cookies)
    second.until("state", 1)
    other.until("state", 1)
    third = open_stream(limits, streams, "/live/board", board.cookies)
    third.until("state", 1)
    bye = oldest.until("bye", 2)
    assert bye.data == {"reason": "replaced"}
    assert oldest.rest(2) == []
    for alive in (second, third, other):
        alive.drain()
        assert alive.until("ping", 2).at > bye.at
        assert not any(e.name == "bye" for e in alive.events)
    assert limits.live.health()["boards"] == 3


def test_the_cap_counts_per_sign_in(limits: Limits, streams: list[EventStream]) -> None:
    """One person's pages on two PCs never push each other out: the cap is per sign-in."""
    app = limits.app
    desk = signed_in_client(app, "front_desk", "desk-tabs")
    laptop = signed_in_client(app, "front_desk", "desk-tabs")  # the same user elsewhere
    oldest = open_stream(limits, streams, "/live/staff", session_cookies(desk))
    oldest.until("state", 1)
    elsewhere = [open_stream(limits, streams, "/live/staff", session_cookies(laptop))
                 for _ in range(PER_CLIENT)]
    for stream in elsewhere:
        stream.until("state", 1)
    newer = [open_stream(limits, streams, "/live/staff", session_cookies(desk))
             for _ in range(PER_CLIENT - 1)]
    for stream in newer:
        stream.until("state", 1)
    oldest.drain()
    assert not any(e.name == "bye" for e in oldest.events)  # the desk's own cap not reached
    newest = open_stream(limits, streams, "/live/staff", session_cookies(desk))
    newest.until("state", 1)
    assert oldest.until("bye", 2).data == {"reason": "replaced"}
    assert oldest.rest(2) == []
    for alive in (*elsewhere, *newer, newest):
        alive.drain()
        alive.until("ping", 2)
        assert not any(e.name == "bye" for e in alive.events)


def test_beyond_the_most_streams_a_new_one_is_refused(
        limits: Limits, streams: list[EventStream]) -> None:
    boards = [enroll_board(limits.app) for _ in range(MAX_STREAMS // PER_CLIENT + 1)]
    for board in boards[:-1]:
        for _ in range(PER_CLIENT):
            opened = open_stream(limits, streams, "/live/board", board.cookies)
            assert opened.status == 200
            opened.until("state", 1)
    assert limits.live.health()["streams"] == MAX_STREAMS
    refused = open_stream(limits, streams, "/live/board", boards[-1].cookies)
    assert refused.status == 503
    assert refused.headers["retry-after"] == "5"
    assert limits.live.health()["streams"] == MAX_STREAMS
    # Once one closes (and the process notices), there is room again.
    streams[0].close()
    wait_for(lambda: limits.live.health()["streams"] == MAX_STREAMS - 1, timeout=3,
             message="the closed stream to be dropped")
    admitted = open_stream(limits, streams, "/live/board", boards[-1].cookies)
    assert admitted.status == 200
    admitted.until("state", 1)


def test_at_the_most_streams_a_reloading_board_still_gets_in(
        limits: Limits, streams: list[EventStream]) -> None:
    """A board that reloads replaces its own oldest stream (which may be half dead), so
    it must get in even when the process is full: the alarm must not go silent."""
    boards = [enroll_board(limits.app) for _ in range(MAX_STREAMS // PER_CLIENT)]
    for board in boards:
        for _ in range(PER_CLIENT):
            opened = open_stream(limits, streams, "/live/board", board.cookies)
            assert opened.status == 200
            opened.until("state", 1)
    assert limits.live.health()["streams"] == MAX_STREAMS
    reloaded = open_stream(limits, streams, "/live/board", boards[0].cookies)
    assert reloaded.status == 200, (reloaded.status, reloaded.body)
    assert streams[0].until("bye", 2).data == {"reason": "replaced"}


def test_a_stopping_process_says_goodbye(limits: Limits) -> None:
    live = limits.world.live(redis=False)
    board = enroll_board(limits.app)
    doctor = signed_in_client(limits.app, "practitioner", "dr-bye")
    streams = [EventStream(live.base, "/live/board", cookies=board.cookies),
               EventStream(live.base, "/live/staff", cookies=session_cookies(doctor))]
    try:
        for stream in streams:
            stream.until("state", 1)
        live.proc.send_signal(signal.SIGTERM)
        for stream in streams:
            assert stream.until("bye", 3).data == {"reason": "shutdown"}
            assert stream.rest(3) == []
        assert live.proc.wait(timeout=10) == 0
    finally:
        for stream in streams:
            stream.close()


def test_at_the_most_streams_a_new_board_takes_a_staff_pages_place(
        limits: Limits, streams: list[EventStream]) -> None:
    """The boards are the screens that must never be refused."""
    doctor = signed_in_client(limits.app, "practitioner", "dr-full")
    staff = [open_stream(limits, streams, "/live/staff", session_cookies(
        signed_in_client(limits.app, "practitioner", "dr-full"))) for _ in range(2)]
    boards = [enroll_board(limits.app) for _ in range(MAX_STREAMS - 2)]
    for board in boards:
        opened = open_stream(limits, streams, "/live/board", board.cookies)
        opened.until("state", 1)
    for page in staff:
        page.until("state", 1)
    assert limits.live.health()["streams"] == MAX_STREAMS
    refused = open_stream(limits, streams, "/live/staff", session_cookies(doctor))
    assert refused.status == 503  # a new staff page waits
    late = open_stream(limits, streams, "/live/board", enroll_board(limits.app).cookies)
    assert late.status == 200  # a new board gets in...
    late.until("state", 1)
    assert staff[0].until("bye", 2).data == {"reason": "replaced"}  # ...in the oldest's place
    assert limits.live.health()["streams"] == MAX_STREAMS


def test_a_head_request_opens_no_stream(limits: Limits) -> None:
    board = enroll_board(limits.app)
    conn = http.client.HTTPConnection(limits.live.host, limits.live.port, timeout=10)
    try:
        conn.request("HEAD", "/live/board", headers={"Cookie": f"intake_device={board.cookie}"})
        status = conn.getresponse().status
    finally:
        conn.close()
    assert status == 405
    assert limits.live.health()["streams"] == 0
