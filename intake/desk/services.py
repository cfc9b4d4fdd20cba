"""What the front desk's table shows: recent intakes by urgency (no names, no answers),
and the urgency and department labels the staff pages share. The alerts above the table
come from ``intake.alerts`` through the live process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.clinical import Text, terminology
from intake.constants import CS_DEPARTMENT, CS_URGENCY
from intake.kiosk.form import pick
from intake.kiosk.i18n import t
from intake.storage import queries
from intake.storage.models import Intake, TriageRecord, utcnow

log = logging.getLogger(__name__)

RECENT = timedelta(hours=24)
PENDING_RANK = 1.5  # not yet triaged: shown just below emergencies, above same-day


@dataclass(frozen=True)
class Label:
    text: Text
    rank: float


def _concepts(system: str) -> dict[str, Label]:
    out: dict[str, Label] = {}
    for concept in terminology.concepts(system):
        ja = concept.display or concept.code
        out[concept.code] = Label(Text(ja, concept.en or ja),
                                  float(concept.properties.get("rank", 99)))
    return out


@lru_cache(maxsize=1)
def urgency_labels() -> dict[str, Label]:
    """Urgency codes with their Japanese/English names and rank, from the CodeSystem."""
    return _concepts(CS_URGENCY)


@lru_cache(maxsize=1)
def department_labels() -> dict[str, Label]:
    return _concepts(CS_DEPARTMENT)


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
    found = session.execute(
        select(Intake.business_id, Intake.received_at, TriageRecord.urgency,
               TriageRecord.department, Intake.status, Intake.source)
        .outerjoin(TriageRecord, queries.is_newest_record_of_intake())
        .where(Intake.received_at >= now - RECENT)
        .order_by(Intake.received_at.desc()).limit(limit)
    ).all()
    rows = [DeskRow(*row) for row in found]
    rows.sort(key=lambda r: (r.rank, -r.received_at.timestamp()))
    return rows


def format_time(value: datetime, tz: ZoneInfo, now: datetime | None = None) -> str:
    """A staff-facing time: HH:MM today, MM/DD HH:MM otherwise, in the clinic's zone."""
    local = value.astimezone(tz)
    today = (now or utcnow()).astimezone(tz).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime("%m/%d %H:%M")
