"""What the front desk sees: recent intakes by urgency, and the live alert stream.

The stream's source of truth is the database: every triage result has an increasing id,
which is the SSE event id, so a browser that reconnects (``Last-Event-ID``) gets exactly
what it missed. The Redis channel ``intake:alerts`` only wakes the stream early; when a
publish is lost, or Redis is down, the next database poll (once a second) still finds the
result. Payloads carry the business id, urgency, department and time: no names, no
answers.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import redis
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.alerts import CHANNEL
from intake.clinical import Text
from intake.kiosk.form import pick
from intake.kiosk.i18n import t
from intake.resources import fhir_profiles_dir
from intake.storage.models import Intake, TriageResult, utcnow

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
RECENT = timedelta(hours=24)
ALERT_WINDOW = timedelta(hours=2)
PENDING_RANK = 1.5  # not yet triaged: shown just below emergencies, above same-day


@dataclass(frozen=True)
class Label:
    text: Text
    rank: float


def _concepts(filename: str) -> dict[str, Label]:
    data = json.loads((fhir_profiles_dir() / filename).read_text(encoding="utf-8"))
    out: dict[str, Label] = {}
    for concept in data["concept"]:
        en = next((d["value"] for d in concept.get("designation", ())
                   if d.get("language") == "en"), concept["display"])
        rank = next((p["valueInteger"] for p in concept.get("property", ())
                     if p.get("code") == "rank"), 99)
        out[concept["code"]] = Label(Text(concept["display"], en), float(rank))
    return out


@lru_cache(maxsize=1)
def urgency_labels() -> dict[str, Label]:
    """Urgency codes with their Japanese/English names and rank, from the CodeSystem."""
    return _concepts("CodeSystem-triage-urgency.json")


@lru_cache(maxsize=1)
def department_labels() -> dict[str, Label]:
    return _concepts("CodeSystem-department.json")


def urgency_text(code: str | None, lang: str) -> str:
    if code is None:
        return t("pending_triage", lang)
    label = urgency_labels().get(code)
    return pick(label.text, lang) if label else code


def department_text(code: str | None, lang: str) -> str:
    if code is None:
        return ""
    label = department_labels().get(code)
    return pick(label.text, lang) if label else code


@dataclass(frozen=True)
class DeskRow:
    """One intake as the desk lists it."""

    business_id: str
    received_at: datetime
    urgency: str | None
    department: str | None
    status: str
    source: str

    @property
    def rank(self) -> float:
        if self.urgency is None:
            return PENDING_RANK
        label = urgency_labels().get(self.urgency)
        return label.rank if label else 99.0


def recent_intakes(session: Session, now: datetime, limit: int = 200) -> list[DeskRow]:
    """Intakes of the last 24 hours, most urgent first, newest first within a level.

    Selects the listed columns only: the desk never loads answers or demographics (and
    decoding them would make the page slow as the day goes on).
    """
    newest = (select(func.max(TriageResult.revision))
              .where(TriageResult.intake_id == Intake.id).correlate(Intake)
              .scalar_subquery())
    found = session.execute(
        select(Intake.business_id, Intake.received_at, TriageResult.urgency,
               TriageResult.department, Intake.status, Intake.source)
        .outerjoin(TriageResult, and_(TriageResult.intake_id == Intake.id,
                                      TriageResult.revision == newest))
        .where(Intake.received_at >= now - RECENT)
        .order_by(Intake.received_at.desc()).limit(limit)
    ).all()
    rows = [DeskRow(*row) for row in found]
    rows.sort(key=lambda r: (r.rank, -r.received_at.timestamp()))
    return rows


def open_alerts(rows: list[DeskRow], now: datetime) -> list[DeskRow]:
    """Emergencies of the last two hours not yet acknowledged, for the alert area."""
    return [r for r in rows if r.urgency == "emergency" and r.status != "acknowledged"
            and now - r.received_at <= ALERT_WINDOW]


def latest_cursor(session: Session) -> int:
    """The id of the newest triage result: a new stream starts after it."""
    return int(session.scalar(select(func.max(TriageResult.id))) or 0)


@dataclass(frozen=True)
class DeskEvent:
    cursor: int
    kind: str  # "alert" for an emergency result, "update" for any other
    payload: dict[str, Any]


def events_after(session: Session, cursor: int, lang: str, tz: ZoneInfo,
                 limit: int = 100) -> list[DeskEvent]:
    """Triage results stored after ``cursor``, oldest first, as desk events."""
    found = session.execute(
        select(TriageResult.id, TriageResult.urgency, TriageResult.department,
               Intake.business_id, Intake.received_at)
        .join(Intake, Intake.id == TriageResult.intake_id)
        .where(TriageResult.id > cursor).order_by(TriageResult.id).limit(limit)
    ).all()
    events = []
    for result_id, urgency, department, business_id, received_at in found:
        payload = {
            "business_id": business_id,
            "urgency": urgency,
            "urgency_label": urgency_text(urgency, lang),
            "department_label": department_text(department, lang),
            "time": received_at.astimezone(tz).strftime("%H:%M"),
        }
        kind = "alert" if urgency == "emergency" else "update"
        events.append(DeskEvent(int(result_id), kind, payload))
    return events


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Wakeup:
    """The alert channel, used only to wake the stream early; never required."""

    def __init__(self, redis_url: str | None) -> None:
        self._pubsub: Any = None
        if not redis_url:
            return
        try:
            client = redis.Redis.from_url(redis_url, socket_timeout=5,
                                          socket_connect_timeout=2)
            self._pubsub = client.pubsub(  # type: ignore[no-untyped-call]
                ignore_subscribe_messages=True)
            self._pubsub.subscribe(CHANNEL)
        except redis.exceptions.RedisError as exc:
            log.warning("desk stream without the alert channel (%s); polling the database",
                        type(exc).__name__)
            self._pubsub = None

    def wait(self, seconds: float, sleep: Callable[[float], None]) -> None:
        if self._pubsub is None:
            sleep(seconds)
            return
        try:
            self._pubsub.get_message(timeout=seconds)
        except redis.exceptions.RedisError:
            self.close()
            sleep(seconds)

    def close(self) -> None:
        if self._pubsub is not None:
            try:
                self._pubsub.close()
            except redis.exceptions.RedisError:
                pass
            self._pubsub = None


def stream(sessions: sessionmaker[Session], *, redis_url: str | None, cursor: int,
           duration: float, lang: str, tz: ZoneInfo,
           clock: Callable[[], float] = time.monotonic,
           sleep: Callable[[float], None] = time.sleep) -> Iterator[str]:
    """The alert stream for one connection: bounded in time, then the browser reconnects.

    Bounded so that a web worker is never held for long (gunicorn's sync workers must
    answer within their timeout) and a signed-out desk stops receiving within
    ``duration``. The first line asks the browser to reconnect after one second.
    """
    wakeup = _Wakeup(redis_url)
    end = clock() + duration
    next_beat = clock() + HEARTBEAT_SECONDS
    try:
        yield "retry: 1000\n\n"
        yield sse("ping", {})
        while True:
            with sessions() as session:
                events = events_after(session, cursor, lang, tz)
            for event in events:
                cursor = event.cursor
                yield sse(event.kind, event.payload, event.cursor)
            now = clock()
            if now >= end:
                yield sse("bye", {})
                return
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                yield sse("ping", {})
            wakeup.wait(min(POLL_SECONDS, max(0.0, end - now)), sleep)
    finally:
        wakeup.close()


def format_time(value: datetime, tz: ZoneInfo, now: datetime | None = None) -> str:
    """A staff-facing time: HH:MM today, MM/DD HH:MM otherwise, in the clinic's zone."""
    local = value.astimezone(tz)
    today = (now or utcnow()).astimezone(tz).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%m/%d %H:%M")
