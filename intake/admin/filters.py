"""The audit screen's query string: loaded with marshmallow, turned into
:class:`intake.audit.AuditFilters` (dates in the clinic's time zone become UTC times).

A bad value is a :class:`BadFilter` naming the parameter and why, never a 500 and never
an echo of the value (it could be anything typed, patient data included).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from intake.audit import AuditFilters

ACTION_RE = re.compile(r"^[a-z0-9_.:-]{1,50}$")
TEXT_MAX = {"actor": 100, "entity": 64}
# The query parameters, in the order a problem is reported.
PARAMS = ("from", "to", "actor", "action", "entity", "page")
# Far enough from the calendar's ends that a time-zone shift cannot overflow.
_EARLIEST, _LATEST = date(1900, 1, 1), date(9998, 12, 31)


class BadFilter(ValueError):
    """``name`` is the query parameter at fault; ``why`` a key of the admin catalog."""

    def __init__(self, name: str, why: str, **values: Any) -> None:
        super().__init__(f"bad filter {name}: {why}")
        self.name, self.why, self.values = name, why, values


class _Query(Schema):
    class Meta:
        unknown = EXCLUDE  # lang and anything else are not filters

    from_date = fields.Date(data_key="from", load_default=None,
                            validate=validate.Range(_EARLIEST, _LATEST))
    to_date = fields.Date(data_key="to", load_default=None,
                          validate=validate.Range(_EARLIEST, _LATEST))
    actor = fields.Str(load_default=None, validate=validate.Length(1, TEXT_MAX["actor"]))
    action = fields.Str(load_default=None, validate=validate.Regexp(ACTION_RE))
    entity = fields.Str(load_default=None, validate=validate.Length(1, TEXT_MAX["entity"]))
    page = fields.Int(load_default=1, validate=validate.Range(1, 1_000_000))


_WHY = {"from": "why_date", "to": "why_date", "actor": "why_text", "action": "why_action",
        "entity": "why_text", "page": "why_page"}


@dataclass(frozen=True)
class AuditQuery:
    """What the screen asked for: the filters, the page, and the names of the filters
    given (recorded in the audit trail instead of their values)."""

    filters: AuditFilters
    page: int
    given: list[str]
    values: dict[str, str]  # as typed, to fill the form again and build download links


def parse(args: dict[str, str], tz: ZoneInfo) -> AuditQuery:
    """Load the query string (first value of each parameter); raise :class:`BadFilter`."""
    raw = {k: v.strip() for k, v in args.items() if k in PARAMS and v.strip()}
    try:
        data = _Query().load(raw)
    except ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {}
        name = next((p for p in PARAMS if p in messages), "page")
        raise BadFilter(name, _WHY[name], n=TEXT_MAX.get(name, 0)) from None
    start: date | None = data["from_date"]
    end: date | None = data["to_date"]
    if start is not None and end is not None and end < start:
        raise BadFilter("to", "why_range")
    filters = AuditFilters(
        since=_local_midnight(start, tz) if start else None,
        before=_local_midnight(end + timedelta(days=1), tz) if end else None,  # inclusive day
        actor=data["actor"], action=data["action"], entity_id=data["entity"])
    given = [p for p in PARAMS[:-1] if p in raw]
    values = {k: v for k, v in raw.items() if k != "page"}
    return AuditQuery(filters, data["page"], given, values)


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
