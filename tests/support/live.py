"""The live process (``intake live``) as a real subprocess, and a small server-sent
events client that reads its streams the way a browser's EventSource does.

The tests make the web app with :func:`build_app` on the same data folder and database
as the live process, so both seal the audit trail with one key and see the same rows;
cookies come from a Flask test client that enrolled a board or signed in against that
app.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.devices import services as devices
from intake.live.notify import publish
from intake.storage.models import Alert, AuditEvent, Intake, TriageRecord, utcnow
from support import add_device, case, databases, enroll_client

DEVICE_COOKIE = "intake_device"
SESSION_COOKIE = "intake_session"


def on_databases(*kinds: str) -> pytest.MarkDecorator:
    """A module's tests on each of these databases ("sqlite", "postgresql"): the module's
    world (``make_world``) is made once per database."""
    return pytest.mark.parametrize("module_database", list(kinds), indirect=True,
                                   scope="module")

# --- the web app --------------------------------------------------------------------


def build_app(data_dir: Path, database_url: str, redis_url: str | None = None,
              **extra: Any) -> Any:
    """The Flask app as ``make_app`` builds it, for fixtures wider than one test."""
    from intake import create_app

    databases.ensure_migrated(database_url)
    config: dict[str, Any] = {"data_dir": str(data_dir), "database_url": database_url,
                              "redis_url": redis_url, "broker_timeout": "1", **extra}
    app = create_app(config)
    app.testing = True
    return app


# --- a server-sent events client ----------------------------------------------------


@dataclass
class Event:
    """One event as EventSource delivers it (``data`` parsed as JSON when it is)."""

    name: str
    data: Any
    id: str | None
    retry: str | None
    at: float  # time.monotonic() of its arrival


_END = object()


class EventStream:
    """A GET to a stream, read by a thread line by line (``http.client`` undoes the
    chunked encoding without waiting for more than one chunk); events go to a queue so
    a test waits for them with a deadline. ``raw`` keeps every byte received."""

    def __init__(self, base: str, path: str, *, cookies: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, timeout: float = 30) -> None:
        parts = urlsplit(base)
        self.opened = time.monotonic()
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1",
                                               parts.port or 80, timeout=timeout)
        sent = {"Accept": "text/event-stream", **dict(headers or {})}
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self.conn.request("GET", path, headers=sent)
        self.sock = self.conn.sock
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.headers = {k.lower(): v for k, v in self.resp.getheaders()}
        self.raw = bytearray()
        self.events: list[Event] = []  # everything taken from the queue so far
        self.ended_at: float | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ended = False
        self._reader: threading.Thread | None = None
        if self.status == 200:
            self.body = b""
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        else:
            self.body = self.resp.read()
            self.close()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        data: list[str] = []
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    break
                self.raw += line
                text = line.decode("utf-8").rstrip("\r\n")
                if text == "":
                    if data or fields:
                        self._dispatch(fields, data)
                    fields, data = {}, []
                    continue
                if text.startswith(":"):
                    continue
                key, _, value = text.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if key == "data":
                    data.append(value)
                else:
                    fields[key] = value
        except Exception:  # noqa: S110 - closed by the test, or the server went away
            pass
        finally:
            self.ended_at = time.monotonic()
            self._queue.put(_END)
            with _quiet():
                self.resp.close()

    def _dispatch(self, fields: dict[str, str], data: list[str]) -> None:
        payload: Any = "\n".join(data) if data else None
        if payload is not None:
            try:
                payload = json.loads(payload)
            except ValueError:
                pass
        self._queue.put(Event(fields.get("event", "message" if data else ""), payload,
                              fields.get("id"), fields.get("retry"), time.monotonic()))

    @property
    def text(self) -> str:
        """Everything received so far, as text."""
        return bytes(self.raw).decode("utf-8", errors="replace")

    def next(self, timeout: float = 5) -> Event | None:
        """The next event, or None once the stream has ended."""
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s; received so far:\n"
                                 + self.text[-2000:]) from None
        if item is _END:
            self._ended = True
            return None
        self.events.append(item)
        assert isinstance(item, Event)
        return item

    def drain(self) -> None:
        """Forget what has arrived but not been taken (a long-open stream's backlog), so
        the next event waited for is a new one."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _END:
                self._ended = True
                return
            self.events.append(item)

    def until(self, name: str, timeout: float = 5,
              where: Callable[[Event], Any] = lambda e: True) -> Event:
        """The next event called ``name`` that satisfies ``where`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} event within {timeout}s; received:\n"
                                     + self.text[-3000:])
            found = self.next(left)
            if found is None:
                raise AssertionError(f"the stream ended before a {name} event:\n"
                                     + self.text[-3000:])
            if found.name == name and where(found):
                return found

    def rest(self, timeout: float = 5) -> list[Event]:
        """Every event until the stream ends (fails if it does not end in time)."""
        out: list[Event] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the stream did not end within {timeout}s:\n"
                                     + self.text[-2000:])
            found = self.next(left)
            if found is None:
                return out
            out.append(found)

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def close(self) -> None:
        """Hang up (the reader thread sees the end and closes the response)."""
        with _quiet():
            if self.sock is not None:
                self.sock.shutdown(socket.SHUT_RDWR)
        if self._reader is not None:
            self._reader.join(timeout=5)
        else:
            with _quiet():
                self.resp.close()
        with _quiet():
            self.conn.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except Exception:  # noqa: S110 - hanging up twice, or a connection already gone
        pass


# --- what the streams carry ---------------------------------------------------------


def alerts_of(event: Event) -> dict[int, dict[str, Any]]:
    """The alerts of a ``state`` event, by id."""
    assert event.name == "state", event
    return {a["id"]: a for a in event.data["alerts"]}


def state_with(stream: EventStream, alert_id: int, timeout: float = 2,
               check: Callable[[dict[str, Any]], Any] = lambda a: True) -> dict[str, Any]:
    """Wait for a ``state`` whose alert ``alert_id`` passes ``check``; that alert."""
    event = stream.until("state", timeout,
                         lambda e: alert_id in alerts_of(e) and check(alerts_of(e)[alert_id]))
    return alerts_of(event)[alert_id]


# --- cookies of a board and of a staff sign-in ----------------------------------------


@dataclass
class Board:
    """An enrolled board: its name, device id, cookie and the Flask client that holds it
    (for answering alerts as the board)."""

    name: str
    id: int
    cookie: str
    client: Any

    @property
    def cookies(self) -> dict[str, str]:
        return {DEVICE_COOKIE: self.cookie}


_boards = 0


def enroll_board(app: Any, name: str | None = None) -> Board:
    global _boards
    _boards += 1
    name = name or f"受付-{_boards}-{os.urandom(3).hex()}"
    client = enroll_client(app, app.test_client(), "board", name)
    cookie = client.get_cookie(DEVICE_COOKIE)
    assert cookie is not None
    with state(app).sessions() as s:
        device = devices.find(s, name)
        assert device is not None
        return Board(name, device.id, cookie.value, client)


def enroll_tablet(app: Any, name: str) -> int:
    """A tablet device (named on the alerts of the intakes answered on it); its id."""
    add_device(app, "tablet", name)
    with state(app).sessions() as s:
        device = devices.find(s, name)
        assert device is not None
        return device.id


def session_cookies(client: Any) -> dict[str, str]:
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None, "the client is not signed in"
    return {SESSION_COOKIE: cookie.value}


# --- intakes, alerts and the audit trail ------------------------------------------------


def submit(app: Any, answers: Mapping[str, Any], *, record_number: str | None = None,
           demographics: Mapping[str, Any] | None = None, device_id: int | None = None,
           triage: bool = True, at: datetime | None = None) -> str:
    """An intake as the tablet stores it, triaged (raising its alert) unless told not to.
    Inside the app's context, so the audit trail is sealed with the app's key. With the
    app's Redis, a notice follows each commit, as the worker sends after its steps (live
    processes that listen read at once; the others within their second)."""
    sessions = state(app).sessions
    when = at or utcnow()
    with app.app_context():
        with sessions.begin() as s:
            intake_id = str(pipeline.submit_intake(
                s, answers=parse_simple_answers(dict(answers)), source="kiosk",
                record_number=record_number, demographics=demographics,
                device_id=device_id, actor="kiosk", clock=lambda: when).intake.id)
        publish(state(app).settings.redis_url, "change", intake=intake_id)
        if triage:
            run_triage(app, intake_id, at=when)
    return intake_id


def run_triage(app: Any, intake_id: str, at: datetime | None = None) -> str:
    when = at or utcnow()
    with app.app_context(), state(app).sessions.begin() as s:
        outcome = pipeline.run_triage(s, intake_id, clock=lambda: when)
    assert outcome.status == "triaged", outcome
    publish(state(app).settings.redis_url, "alert" if outcome.urgency in
            ("emergency", "same_day") else "change", intake=intake_id)
    return outcome.urgency or ""


def emergency(app: Any, **kwargs: Any) -> str:
    """pub-03: calf swelling with sudden breathlessness (PE_SUSPECT, DVT_SUSPECT)."""
    return submit(app, case("pub-03")["answers"], **kwargs)


def same_day(app: Any, **kwargs: Any) -> str:
    """pub-02: long flight, one calf swollen and tender (DVT_SUSPECT, same day)."""
    return submit(app, case("pub-02")["answers"], **kwargs)


def alert_of(app: Any, intake_id: str) -> Alert:
    with state(app).sessions() as s:
        return s.execute(select(Alert).where(Alert.intake_id == intake_id)).scalar_one()


def intake_row(app: Any, intake_id: str) -> Intake:
    with state(app).sessions() as s:
        row = s.get(Intake, intake_id)
        assert row is not None
        return row


def triage_result(app: Any, intake_id: str) -> dict[str, Any]:
    with state(app).sessions() as s:
        result: dict[str, Any] = s.execute(
            select(TriageRecord.result).where(TriageRecord.intake_id == intake_id)
            .order_by(TriageRecord.revision.desc())).scalars().first()
        return result


def audit_rows(app: Any, action: str, entity_id: str | None = None) -> list[AuditEvent]:
    with state(app).sessions() as s:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if entity_id is not None:
            query = query.where(AuditEvent.entity_id == entity_id)
        return list(s.execute(query.order_by(AuditEvent.id)).scalars())
