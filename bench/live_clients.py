"""The client side of ``bench_live.py``: many open live streams and slow clients, in a
process of their own (so they never share the live process's event loop, nor the
bench's).

Run by the bench as ``python bench/live_clients.py``; it reads one JSON command per line
on standard input and answers each with one JSON line on standard output:

* ``open``: open streams (``[path, cookie]`` pairs); a stream counts as open once its
  first ``state`` event has arrived;
* ``close``: close them all;
* ``reset`` / ``stats``: start a measuring window / what happened in it (pings per
  stream and the gaps between them, this process's own event-loop lag and CPU, streams
  dropped by the server and why);
* ``await``: for each record number (with the wall-clock time it was submitted), wait
  until every open stream has had a ``state`` event carrying it; the delays per stream;
* ``quiet``: wait until no stream has had a ``state`` event for a while;
* ``slow_start`` / ``slow_stats`` / ``slow_stop``: clients that each hold a half-sent
  request (part of the headers, then one byte every few seconds), reconnecting when the
  server drops them.

Only the standard library and aiohttp: nothing of the application is imported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

RECORD_RE = re.compile(rb'"record":"([^"]+)"')
LAG_TICK = 0.1  # seconds: the event-loop lag probe's period
OPEN_CONCURRENCY = 100
OPEN_TIMEOUT = 60.0


@dataclass(eq=False)
class Stream:
    """One open stream and what it has received."""

    path: str
    cookie: str
    task: asyncio.Task[None] | None = None
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    failed: str | None = None  # never opened: why
    ended: str | None = None  # opened, then ended: why
    seen: dict[str, float] = field(default_factory=dict)  # record -> first state with it
    last_ping: float | None = None
    pings: int = 0  # in the window
    gaps: list[float] = field(default_factory=list)  # between pings, in the window
    states: int = 0

    @property
    def live(self) -> bool:
        return self.opened.is_set() and self.failed is None and self.ended is None


@dataclass
class SlowStats:
    holding: int = 0
    connects: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    drops: list[float] = field(default_factory=list)  # seconds from connect to drop
    how: dict[str, int] = field(default_factory=dict)  # what the server did on a drop


class Clients:
    """Everything this process holds; one instance, driven by the commands."""

    def __init__(self) -> None:
        self.streams: list[Stream] = []
        self.session: aiohttp.ClientSession | None = None
        self.records: dict[bytes, tuple[str, ...]] = {}  # state payload -> its records
        self.last_state_at = 0.0
        self.state_bytes = 0
        self.lags: list[float] = []
        self.window_start = time.monotonic()
        self.cpu_start = time.process_time()
        self.ended_reasons: dict[str, int] = {}
        self.slow_tasks: list[asyncio.Task[None]] = []
        self.slow = SlowStats()
        self.slow_running = False

    # --- streams ----------------------------------------------------------------------

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), read_bufsize=1 << 20,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None))
        asyncio.get_running_loop().create_task(self._lag_probe())

    async def _lag_probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            self.lags.append(loop.time() - before - LAG_TICK)

    def _records_of(self, data: bytes) -> tuple[str, ...]:
        # Every stream of one audience gets the same payload: parse it once.
        found = self.records.get(data)
        if found is None:
            if len(self.records) > 32:
                self.records.clear()
            found = tuple(m.decode() for m in RECORD_RE.findall(data))
            self.records[data] = found
        return found

    def _dispatch(self, stream: Stream, event: str, data: bytes) -> None:
        now = time.time()
        if event == "state":
            stream.states += 1
            self.last_state_at = time.monotonic()
            self.state_bytes = max(self.state_bytes, len(data))
            for record in self._records_of(data):
                stream.seen.setdefault(record, now)
            stream.opened.set()
        elif event == "ping":
            mono = time.monotonic()
            if stream.last_ping is not None:
                stream.gaps.append(mono - stream.last_ping)
            stream.last_ping = mono
            stream.pings += 1
        elif event == "bye":
            reason = "bye"
            with contextlib.suppress(ValueError, AttributeError):
                reason = "bye:" + str(json.loads(data).get("reason"))
            stream.ended = reason

    async def _run(self, base: str, stream: Stream) -> None:
        assert self.session is not None
        try:
            async with self.session.get(base + stream.path, headers={
                    "Cookie": stream.cookie, "Accept": "text/event-stream"}) as resp:
                if resp.status != 200:
                    stream.failed = f"HTTP {resp.status}"
                    return
                event, data = "", b""
                async for raw in resp.content:
                    line = raw.rstrip(b"\r\n")
                    if not line:
                        if event:
                            self._dispatch(stream, event, data)
                        event, data = "", b""
                    elif line.startswith(b"event:"):
                        event = line[6:].strip().decode()
                    elif line.startswith(b"data:"):
                        data = line[5:].lstrip()
                if stream.ended is None and stream.opened.is_set():
                    stream.ended = "closed by server"
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            text = _error_name(exc)
            if stream.opened.is_set():
                stream.ended = stream.ended or text
            else:
                stream.failed = text
        finally:
            if stream.ended is not None and stream.failed is None:
                self.ended_reasons[stream.ended] = self.ended_reasons.get(stream.ended, 0) + 1
            if not stream.opened.is_set():
                stream.failed = stream.failed or "no first state"
                stream.opened.set()  # release whoever waits for it

    async def open(self, base: str, specs: list[list[str]]) -> dict[str, Any]:
        """Open streams, at most OPEN_CONCURRENCY at a time; return when every one has
        its first state (or failed)."""
        gate = asyncio.Semaphore(OPEN_CONCURRENCY)
        fresh = [Stream(path, cookie) for path, cookie in specs]
        started = time.monotonic()

        async def one(stream: Stream) -> None:
            async with gate:
                stream.task = asyncio.create_task(self._run(base, stream))
                try:
                    await asyncio.wait_for(stream.opened.wait(), OPEN_TIMEOUT)
                except TimeoutError:
                    stream.failed = "timed out opening"
                    stream.task.cancel()

        await asyncio.gather(*(one(s) for s in fresh))
        self.streams.extend(fresh)
        failures: dict[str, int] = {}
        for s in fresh:
            if s.failed is not None:
                failures[s.failed] = failures.get(s.failed, 0) + 1
        return {"opened": sum(1 for s in fresh if s.failed is None), "failed": failures,
                "open": sum(1 for s in self.streams if s.live),
                "seconds": round(time.monotonic() - started, 2)}

    async def close(self) -> dict[str, Any]:
        tasks = [s.task for s in self.streams if s.task is not None and not s.task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        closed = len(self.streams)
        self.streams = []
        self.ended_reasons = {}
        return {"closed": closed}

    def reset(self) -> dict[str, Any]:
        for s in self.streams:
            s.pings, s.gaps = 0, []
        self.lags = []
        self.ended_reasons = {}
        self.state_bytes = 0
        self.window_start = time.monotonic()
        self.cpu_start = time.process_time()
        return {}

    def stats(self) -> dict[str, Any]:
        live = [s for s in self.streams if s.live]
        pings = sorted(s.pings for s in live)
        gaps = sorted(g for s in live for g in s.gaps)
        lags = sorted(self.lags)
        window = time.monotonic() - self.window_start
        return {
            "open": len(live), "held": len(self.streams),
            "ended": dict(self.ended_reasons),
            "window": window,
            "pings_min": pings[0] if pings else 0,
            "pings_median": pings[len(pings) // 2] if pings else 0,
            "silent": sum(1 for p in pings if p == 0),
            "gap_p99": _pick(gaps, 0.99), "gap_max": gaps[-1] if gaps else None,
            "lag_p99": _pick(lags, 0.99), "lag_max": lags[-1] if lags else None,
            "cpu": (time.process_time() - self.cpu_start) / window if window > 0 else 0.0,
            "state_bytes": self.state_bytes,
        }

    async def wait_records(self, submitted: dict[str, float], timeout: float
                           ) -> dict[str, Any]:
        """Per record: the delay (s) from its submission to the first state event that
        carried it, on each stream open when the wait began; and how many never had it."""
        watched = [s for s in self.streams if s.live]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(r in s.seen for s in watched if s.live for r in submitted):
                break
            await asyncio.sleep(0.05)
        out: dict[str, Any] = {}
        for record, at in submitted.items():
            delays = [s.seen[record] - at for s in watched if record in s.seen]
            out[record] = {"delays": delays, "missing": len(watched) - len(delays),
                           "ended": sum(1 for s in watched if not s.live)}
        return out

    async def quiet(self, seconds: float, timeout: float) -> dict[str, Any]:
        """Wait until no stream has had a state event for ``seconds``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_state_at >= seconds:
                return {"quiet": True}
            await asyncio.sleep(0.05)
        return {"quiet": False}

    # --- slow clients -----------------------------------------------------------------

    async def _slow_one(self, host: str, port: int, path: str, every: float) -> None:
        loop = asyncio.get_running_loop()
        head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: slow\r\nX-Slow: "
        while self.slow_running:
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                name = _error_name(exc)
                self.slow.connect_errors[name] = self.slow.connect_errors.get(name, 0) + 1
                await asyncio.sleep(1.0)
                continue
            began = loop.time()
            self.slow.connects += 1
            self.slow.holding += 1
            how = ""
            try:
                writer.write(head.encode())
                await writer.drain()
                reading = asyncio.ensure_future(reader.read(4096))
                while self.slow_running and not how:
                    done, _ = await asyncio.wait({reading}, timeout=every)
                    if done:
                        first = reading.result()
                        how = ("closed without an answer" if not first else
                               "answered " + first.split(b"\r\n", 1)[0].decode(errors="replace"))
                        break
                    writer.write(b"a")
                    await writer.drain()
                if not reading.done():
                    reading.cancel()
            except (ConnectionError, OSError) as exc:
                how = "reset: " + _error_name(exc)
            finally:
                self.slow.holding -= 1
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if how:
                self.slow.drops.append(loop.time() - began)
                self.slow.how[how] = self.slow.how.get(how, 0) + 1

    def slow_start(self, host: str, port: int, path: str, n: int, every: float
                   ) -> dict[str, Any]:
        self.slow = SlowStats()
        self.slow_running = True
        self.slow_tasks = [asyncio.ensure_future(self._slow_one(host, port, path, every))
                           for _ in range(n)]
        return {}

    def slow_stats(self) -> dict[str, Any]:
        return {"holding": self.slow.holding, "connects": self.slow.connects,
                "connect_errors": self.slow.connect_errors, "drops": self.slow.drops,
                "how": self.slow.how}

    async def slow_stop(self) -> dict[str, Any]:
        self.slow_running = False
        for task in self.slow_tasks:
            task.cancel()
        for task in self.slow_tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.slow_tasks = []
        return self.slow_stats()

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        name = cmd["cmd"]
        if name == "open":
            return await self.open(cmd["base"], cmd["specs"])
        if name == "close":
            return await self.close()
        if name == "reset":
            return self.reset()
        if name == "stats":
            return self.stats()
        if name == "await":
            return await self.wait_records(cmd["submitted"], cmd["timeout"])
        if name == "quiet":
            return await self.quiet(cmd["seconds"], cmd["timeout"])
        if name == "slow_start":
            return self.slow_start(cmd["host"], cmd["port"], cmd["path"], cmd["n"],
                                   cmd["every"])
        if name == "slow_stats":
            return self.slow_stats()
        if name == "slow_stop":
            return await self.slow_stop()
        raise ValueError(f"unknown command {name!r}")


def _pick(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _error_name(exc: BaseException) -> str:
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__name__}" + (f" errno {errno}" if errno else "")


async def serve_commands() -> None:
    clients = Clients()
    await clients.start()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        try:
            reply = await clients.handle(cmd)
        except Exception as exc:  # reported to the bench, which stops
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
    await clients.slow_stop()
    await clients.close()
    if clients.session is not None:
        await clients.session.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_commands())
