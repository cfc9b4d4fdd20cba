"""The hub of the live process: one reader of the database for every open stream.

Once a second, and at once when a notice arrives on Redis, the hub reads (in a thread of
its own, so the event loop never waits on the database and a storm of reconnecting
screens never queues ahead of it):

* the alerts every screen shows (:func:`intake.alerts.services.board_alerts`); when they
  differ from the last read, the whole list goes to every stream (``state``). A screen's
  alerts are therefore always the database's, whatever it missed while disconnected: a
  reconnect starts with the list;
* what changed for the worklist (:func:`intake.live.changes.changes_after`), sent to
  staff streams as ``changed`` with a sequence number, so a reconnecting page learns
  whether it missed something.

The read only reads. What the hub writes (escalating emergencies nobody answered in
time, closing day-old alerts, auditing which screen showed which alert, noting which
boards are connected) is done beside it by a writer of its own, so a busy database
delays those writes, never the screens.

The cost per second is a few indexed queries however many screens are open; a stream
costs a queue and a coroutine. A stream that cannot keep up (its queue is full) is
closed, and its page reconnects to a fresh list. Every ``heartbeat`` seconds each stream
gets a ``ping``, so a page can tell a dead connection from a quiet clinic; while the hub
cannot read the database there is none, and no new stream is let in, so the screens say
they are cut off then too.

Streams end when what let them in ends: a revoked board or one whose enrollment another
browser took over (at once on the ``device`` notice, else within :data:`REVALIDATE`
seconds), or a staff sign-in that has timed out, signed out or been disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from intake import audit
from intake.alerts import services as alerts
from intake.auth import users
from intake.config import Settings
from intake.devices import services as devices
from intake.live import changes
from intake.live.notify import CHANNEL
from intake.storage.models import AlertLevel, AlertState, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
REVALIDATE = 10.0  # seconds between checks that every stream's sign-in or device holds
SEEN_EVERY = 60.0  # seconds between notes of which boards are connected
QUEUE_SIZE = 64
CHANGE_HISTORY = 512
SINCE_SLACK = 2.0  # seconds: clocks of the web and live processes, and the poll
AUDIT_BATCH = 200  # "alert shown" events written per transaction
T = TypeVar("T")


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event (data as compact JSON, one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"{head}event: {event}\ndata: {payload}\n\n"


@dataclass(eq=False)
class Stream:
    """One open stream: a board (its enrollment, ``device_token``) or a staff sign-in
    (``session_key``)."""

    audience: str  # "board" or "staff"
    principal: str  # "device:<id>" or "session:<key>": the cap counts per principal
    viewer: str  # who the audit trail names as having seen an alert
    device_token: str | None = None
    session_key: str | None = None
    queue: asyncio.Queue[str | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))
    opened: float = field(default_factory=time.monotonic)
    closed: str | None = None

    def send(self, text: str) -> bool:
        if self.closed is not None:
            return False
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.close("slow")
            return False
        return True

    def close(self, reason: str) -> None:
        """End the stream: a last ``bye`` (if there is room), then the end marker."""
        if self.closed is not None:
            return
        self.closed = reason
        # Make room for the goodbye and the end marker: what is queued is stale anyway.
        while self.queue.qsize() > QUEUE_SIZE - 2:
            self.queue.get_nowait()
        self.queue.put_nowait(sse("bye", {"reason": reason}))
        self.queue.put_nowait(None)


@dataclass(frozen=True)
class Snapshot:
    """What one read of the database found."""

    views: list[alerts.AlertView]
    more: int
    changes: list[tuple[str, str, int]]
    now: datetime
    boards: tuple[int, int]  # enrolled, connected


class Hub:
    """Every open stream of this process and the one reader that feeds them."""

    def __init__(self, settings: Settings, *, reads: sessionmaker[Session],
                 writes: sessionmaker[Session], clock: Callable[[], datetime] = utcnow,
                 poll: float = POLL_SECONDS, revalidate: float = REVALIDATE) -> None:
        self.settings = settings
        self.reads = reads
        self.writes = writes
        self.clock = clock
        self.poll = poll
        self.revalidate_every = revalidate
        self.stale_after = max(5.0, 5 * poll)
        self.tz = ZoneInfo(settings.display_timezone)
        self.streams: set[Stream] = set()
        self._by_principal: dict[str, list[Stream]] = {}  # oldest first
        self.epoch = secrets.token_hex(4)
        self.seq = 0
        # (seq, wall time, [[kind, intake id, key], ...] as JSON) of the newest batches.
        self.history: deque[tuple[int, float, str]] = deque(maxlen=CHANGE_HISTORY)
        self.started_wall = time.time()
        self.cursor = changes.Cursor()
        self.seen = changes.Seen()
        self.board_state = sse("state", {"alerts": [], "more": 0})
        self.staff_state = sse("state", {"alerts": [], "more": 0})
        self._state_key: Any = None
        self._board_key: Any = None
        self._shown_ids: set[int] = set()
        self._displayed: dict[str, set[int]] = {}
        self._to_audit: list[tuple[str, int]] = []
        self._wake = asyncio.Event()
        self._revalidate_now = asyncio.Event()
        self._write_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # One thread reads for the hub, one writes: neither queues behind the other,
        # nor behind the sign-in checks of streams being opened (the default pool).
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="hub-read")
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="hub-write")
        self.ticks = 0
        self.last_tick: float | None = None
        self._primed = False

    # --- life -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start reading (at once) and serving. Until the first read succeeds the hub
        is not fresh: no stream is let in, so screens say they are cut off, and a
        database that does not answer yet never keeps the process from starting."""
        self._tasks = [asyncio.create_task(self._run(), name="hub"),
                       asyncio.create_task(self._heartbeats(), name="heartbeats"),
                       asyncio.create_task(self._checks(), name="checks"),
                       asyncio.create_task(self._writes(), name="writes")]
        if self.settings.redis_url:
            self._tasks.append(asyncio.create_task(self._listen(), name="notices"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for stream in list(self.streams):
            stream.close("shutdown")
        self._reader.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=False, cancel_futures=True)

    @property
    def fresh(self) -> bool:
        """The last read of the database is recent: what the streams get is current."""
        return self.last_tick is not None and time.monotonic() - self.last_tick \
            <= self.stale_after

    def wake(self) -> None:
        self._wake.set()

    async def _in(self, executor: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the database is away: the screens will say so
                if not failing:  # once per outage, not once a second
                    log.warning("live: cannot read the database (%s); the screens hear "
                                "no heartbeat and say they are cut off",
                                type(exc).__name__)
                failing = True
            else:
                if failing:
                    log.warning("live: the database answers again")
                failing = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            self._wake.clear()

    async def _heartbeats(self) -> None:
        """A heartbeat says "alerts reach you": none while the hub is not fresh."""
        while True:
            await asyncio.sleep(self.settings.live_heartbeat_seconds)
            if not self.fresh:
                continue
            now = self.clock()
            ping = sse("ping", {"t": now.isoformat(timespec="seconds"),
                                "clock": now.astimezone(self.tz).strftime("%H:%M:%S")})
            for stream in list(self.streams):
                stream.send(ping)

    async def _checks(self) -> None:
        """Every REVALIDATE seconds, or at once on a device or sign-out notice."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._revalidate_now.wait(),
                                       timeout=self.revalidate_every)
            self._revalidate_now.clear()
            try:
                await self.revalidate()
            except Exception as exc:
                log.warning("live: could not check the open streams (%s)", type(exc).__name__)

    async def _listen(self) -> None:
        """Notices from Redis wake the hub at once; without Redis it polls."""
        import redis.asyncio as aredis

        delay = 1.0
        while True:
            client = aredis.Redis.from_url(self.settings.redis_url or "",
                                           socket_connect_timeout=2)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    delay = 1.0
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        self._notice(message.get("data"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live: notices unavailable (%s); polling the database",
                            type(exc).__name__)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)

    def _notice(self, raw: Any) -> None:
        try:
            kind = json.loads(raw).get("kind")
        except (ValueError, TypeError, AttributeError):
            return
        if kind in ("device", "session"):
            self._revalidate_now.set()
        self.wake()

    # --- streams ----------------------------------------------------------------------

    def add(self, stream: Stream, *, per_principal: int,
            first: Callable[[], str] | None = None) -> None:
        """Register a stream and give it ``first()`` (if any) and then the alerts; the
        oldest of the same principal over the cap is closed (a board that reloads must
        get in; its old connection may be half dead)."""
        same = self._by_principal.setdefault(stream.principal, [])  # oldest first
        while len(same) >= per_principal:
            self._close(same[0], "replaced")
        same.append(stream)
        self.streams.add(stream)
        if first is not None:
            stream.send(first())
        stream.send(self.board_state if stream.audience == "board" else self.staff_state)
        self._queue_displayed(stream, self._shown_ids)

    def make_room(self, stream: Stream) -> bool:
        """At the most streams: room for ``stream`` by closing its own principal's oldest
        one, or, for a board, the oldest staff stream (boards are the screens that must
        never be refused). False when there is none to close."""
        same = self._by_principal.get(stream.principal)
        if same:
            self._close(same[0], "replaced")
            return True
        if stream.audience == "board":
            staff = [s for s in self.streams if s.audience == "staff"]
            if staff:
                self._close(min(staff, key=lambda s: s.opened), "replaced")
                return True
        return False

    def _close(self, stream: Stream, reason: str) -> None:
        stream.close(reason)
        self.remove(stream)

    def remove(self, stream: Stream) -> None:
        self.streams.discard(stream)
        same = self._by_principal.get(stream.principal)
        if same is not None and stream in same:
            same.remove(stream)
            if not same:
                del self._by_principal[stream.principal]

    def held_by(self, principal: str) -> int:
        """How many streams a board or sign-in holds here now."""
        return len(self._by_principal.get(principal, ()))

    def changes_since(self, last_event_id: str | None, since: float | None = None,
                      cursor: changes.Cursor | None = None) -> str:
        """The first ``changed`` event of a staff stream: the intakes of the changes it
        missed, by its last event id (a reconnect), or by ``since`` (when its page was
        rendered, epoch seconds) less what its ``cursor`` (the database's at render)
        says the page already had (a new page); or ``all`` when this process cannot
        tell (it started after the page, or its history is too short)."""
        event_id = f"{self.epoch}-{self.seq}"
        batches: list[tuple[int, float, str]] | None = None
        seq = None
        if last_event_id and last_event_id.startswith(self.epoch + "-"):
            tail = last_event_id[len(self.epoch) + 1:]
            seq = int(tail) if tail.isdigit() and len(tail) < 12 else None
        oldest = self.history[0][0] if self.history else self.seq + 1
        if seq is not None and oldest - 1 <= seq <= self.seq:
            batches = [b for b in self.history if b[0] > seq]
        elif since is not None and since - SINCE_SLACK >= self.started_wall:
            oldest_time = self.history[0][1] if self.history else time.time()
            if len(self.history) < CHANGE_HISTORY or since - SINCE_SLACK >= oldest_time:
                batches = [b for b in self.history if b[1] >= since - SINCE_SLACK]
        else:
            cursor = None
        if batches is None:
            return sse("changed", {"intakes": [], "all": True}, event_id)
        intakes = sorted({intake for _, _, rows in batches
                          for kind, intake, key in json.loads(rows)
                          if seq is not None or cursor is None
                          or not cursor.covers(kind, key)})
        return sse("changed", {"intakes": intakes, "all": False}, event_id)

    # --- one read ---------------------------------------------------------------------

    def _prime(self) -> None:
        with self.reads() as session:
            self.cursor = changes.latest_cursor(session)
            changes.changes_after(session, self.cursor, self.seen)

    def _read(self) -> Snapshot:
        if not self._primed:
            self._prime()  # changes are counted from the first successful read
            self._primed = True
        now = self.clock()
        with self.reads() as session:
            views, more = alerts.board_alerts(session, now)
            found, cursor = changes.changes_after(session, self.cursor, self.seen)
            boards = devices.boards_connected(session, now)
        self.cursor = cursor
        return Snapshot(views, more, found, now, boards)

    async def tick(self) -> None:
        snap = await self._in(self._reader, self._read)
        self.ticks += 1
        self.last_tick = time.monotonic()
        board_key = (tuple(snap.views), snap.more)
        staff_key = (board_key, snap.boards)  # staff screens also show the boards' count
        boards_changed = board_key != self._board_key
        if boards_changed or staff_key != self._state_key:
            self._board_key, self._state_key = board_key, staff_key
            self.board_state = sse("state", self._state_data(snap, staff=False))
            self.staff_state = sse("state", self._state_data(snap, staff=True))
            for stream in list(self.streams):
                if stream.audience == "staff":
                    stream.send(self.staff_state)
                elif boards_changed:
                    stream.send(self.board_state)
        if boards_changed:
            self._shown_ids = {v.id for v in snap.views}
            for viewer in list(self._displayed):  # forget alerts no screen shows any more
                self._displayed[viewer] &= self._shown_ids
            for stream in list(self.streams):
                self._queue_displayed(stream, self._shown_ids)
        if any(self._due(v, snap.now) for v in snap.views) or self._to_audit:
            self._write_now.set()
        if snap.changes:
            self.seq += 1
            intakes = sorted({intake_id for _, intake_id, _ in snap.changes})
            self.history.append((self.seq, time.time(), json.dumps(snap.changes)))
            text = sse("changed", {"intakes": intakes, "all": False,
                                   "kinds": sorted({k for k, _, _ in snap.changes})},
                       f"{self.epoch}-{self.seq}")
            for stream in list(self.streams):
                if stream.audience == "staff":
                    stream.send(text)

    def _due(self, view: alerts.AlertView, now: datetime) -> bool:
        """An emergency nobody answered in time, not yet escalated; or an alert old
        enough to be closed as expired."""
        age = (now - view.raised_at).total_seconds()
        if view.level == AlertLevel.EMERGENCY and view.state == AlertState.OPEN:
            return not view.escalated and age >= self.settings.alert_escalate_seconds
        return view.state != AlertState.DONE and age >= alerts.EXPIRE_AFTER.total_seconds()

    def _state_data(self, snap: Snapshot, *, staff: bool) -> dict[str, Any]:
        extra = {"boards": {"enrolled": snap.boards[0], "connected": snap.boards[1]}} \
            if staff else {}
        return {**extra,
                "alerts": [self._alert(v, staff=staff) for v in snap.views],
                "more": snap.more, "t": snap.now.isoformat(timespec="seconds"),
                "clock": snap.now.astimezone(self.tz).strftime("%H:%M:%S"),
                "escalate_after": self.settings.alert_escalate_seconds}

    def _alert(self, v: alerts.AlertView, *, staff: bool) -> dict[str, Any]:
        def who(w: alerts.Who | None) -> dict[str, str] | None:
            if w is None:
                return None
            kind, _, name = w.via.partition(":")
            return {"by": w.by, "via": kind, "via_name": name,
                    "time": w.at.astimezone(self.tz).strftime("%H:%M")}

        data: dict[str, Any] = {
            "id": v.id, "level": v.level, "state": v.state, "escalated": v.escalated,
            "time": v.raised_at.astimezone(self.tz).strftime("%H:%M"),
            "reasons": list(v.reasons), "patient": dict(v.patient), "tablet": v.tablet,
            "source": v.source, "in_progress": who(v.in_progress), "done": who(v.done)}
        if staff:
            data["intake_id"] = v.intake_id
            data["business_id"] = v.business_id
        return data

    # --- what the hub writes, beside the reads ------------------------------------------

    def _queue_displayed(self, stream: Stream, ids: set[int]) -> None:
        """Note, once per viewer and alert in this process, that a screen showed an
        alert (it names the patient): written to the audit trail by the writer."""
        shown = self._displayed.setdefault(stream.viewer, set())
        for alert_id in sorted(ids - shown):
            shown.add(alert_id)
            self._to_audit.append((stream.viewer, alert_id))
        if self._to_audit:
            self._write_now.set()

    async def _writes(self) -> None:
        last_seen_note = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._write_now.wait(), timeout=SEEN_EVERY)
            self._write_now.clear()
            batch, self._to_audit = self._to_audit[:AUDIT_BATCH], self._to_audit[AUDIT_BATCH:]
            boards: list[int] = []
            if time.monotonic() - last_seen_note >= SEEN_EVERY:
                last_seen_note = time.monotonic()
                boards = sorted({int(s.principal.split(":", 1)[1]) for s in self.streams
                                 if s.audience == "board"})
            try:
                changed = await self._in(self._writer, self._write, batch, boards)
            except Exception as exc:
                log.warning("live: could not write (%s); trying again", type(exc).__name__)
                self._to_audit[:0] = batch
                await asyncio.sleep(self.poll)
                self._write_now.set()
                continue
            if changed:
                self.wake()  # the screens get the new state at once
            if self._to_audit:
                self._write_now.set()

    def _write(self, batch: list[tuple[str, int]], boards: list[int]) -> bool:
        """Escalate, expire, audit what was shown, note connected boards. True when an
        alert changed."""
        now = self.clock()
        with self.writes.begin() as session:
            escalated = alerts.escalate_due(session, after=self.settings.alert_escalate_seconds,
                                            now=now)
            expired = alerts.expire_old(session, now=now)
        if escalated:
            log.warning("live: %d emergency alert(s) unanswered for %d s: escalated",
                        len(escalated), int(self.settings.alert_escalate_seconds))
        if batch:
            with self.writes.begin() as session:
                for viewer, alert_id in batch:
                    audit.record(session, actor=viewer, action="alert.displayed",
                                 entity_type="alert", entity_id=str(alert_id),
                                 source=f"live:{audit.current_source()}")
        if boards:
            with self.writes.begin() as session:
                devices.mark_seen(session, boards, now)
        return bool(escalated or expired)

    # --- do the streams' sign-ins and devices still hold? -----------------------------

    async def revalidate(self) -> None:
        streams = list(self.streams)
        tokens = sorted({s.device_token for s in streams if s.device_token is not None})
        keys = sorted({s.session_key for s in streams if s.session_key is not None})
        if not tokens and not keys:
            return
        current, valid = await self._in(self._reader, self._holding, tokens, keys)
        for stream in streams:
            if stream.device_token is not None and stream.device_token not in current:
                self._close(stream, "revoked")
            elif stream.session_key is not None and stream.session_key not in valid:
                self._close(stream, "signed_out")

    def _holding(self, tokens: list[str], keys: list[str]) -> tuple[set[str], set[str]]:
        idle = timedelta(minutes=self.settings.session_idle_minutes)
        with self.reads() as session:
            return (devices.current_tokens(session, tokens),
                    users.still_valid(session, keys, now=self.clock(), idle=idle))

    def counts(self) -> dict[str, int]:
        boards = sum(1 for s in self.streams if s.audience == "board")
        return {"streams": len(self.streams), "boards": boards,
                "staff": len(self.streams) - boards}
