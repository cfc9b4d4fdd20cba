"""Exporting: the filtered trail as CSV (streamed) or as a FHIR R4 Bundle of
AuditEvents. Both carry every hashed field, the hash, the previous hash and the seal,
so anyone can recompute the chain from an export."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select
from sqlalchemy.orm import Session

from intake.audit.record import iso
from intake.audit.verify import all_columns, event_rows
from intake.constants import (
    CS_AUDIT_ACTION,
    CS_AUDIT_ENTITY_TYPE,
    CS_AUDIT_EVENT_TYPE,
    CS_AUDIT_EVENT_TYPE_HL7,
    CS_RESTFUL_INTERACTION,
    CS_SECURITY_SOURCE_TYPE,
    EXT_AUDIT_CHAIN,
    IDENTIFIER_SYSTEM_AUDIT_ENTITY,
    IDENTIFIER_SYSTEM_STAFF_USER,
    PLUGIN_DEVICE_NAME,
)
from intake.storage.models import AuditEvent, User, utcnow

# A FHIR export is one JSON document built in memory; beyond this, narrow the filters
# (the CSV export streams and has no limit).
FHIR_EXPORT_MAX = 20_000
# Actors that are people although they are no user account.
PERSON_ACTORS = frozenset({"anonymous", "front_desk"})


@dataclass(frozen=True)
class AuditFilters:
    """Which events to list or export. Times are aware datetimes: ``since`` inclusive,
    ``before`` exclusive. Values are matched exactly."""

    since: datetime | None = None
    before: datetime | None = None
    actor: str | None = None
    action: str | None = None
    entity_id: str | None = None

    def names(self) -> list[str]:
        """The filters in use, by name (for the audit record of a view or an export:
        the names, never the values typed)."""
        return [n for n in ("since", "before", "actor", "action", "entity_id")
                if getattr(self, n) is not None]


def apply_filters(query: Select[Any], filters: AuditFilters) -> Select[Any]:
    if filters.since is not None:
        query = query.where(AuditEvent.at >= filters.since)
    if filters.before is not None:
        query = query.where(AuditEvent.at < filters.before)
    if filters.actor is not None:
        query = query.where(AuditEvent.actor == filters.actor)
    if filters.action is not None:
        query = query.where(AuditEvent.action == filters.action)
    if filters.entity_id is not None:
        query = query.where(AuditEvent.entity_id == filters.entity_id)
    return query


def _filtered_rows(session: Session, filters: AuditFilters) -> Iterator[Row[Any]]:
    own = not session.in_transaction()
    return event_rows(session, apply_filters(all_columns(), filters), after=0, upto=None,
                      own=own)


def utc_text(at: datetime) -> str:
    """An event time as exported: UTC, ISO 8601 with microseconds and ``Z``."""
    return iso(at).replace("+00:00", "Z")


def _detail_text(detail: Mapping[str, Any]) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


CSV_HEADER = ("id", "time_utc", "actor", "action", "entity_type", "entity_id", "source",
              "detail", "hash", "prev_hash", "key_id", "seal")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: str) -> str:
    """A cell a spreadsheet shows as text: a leading quote before = + - @ (and tab or
    carriage return), which would otherwise start a formula."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_line(cells: Sequence[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow([csv_cell(c) for c in cells])
    return buf.getvalue()


def export_csv(session: Session, filters: AuditFilters) -> Iterator[str]:
    """The filtered events as CSV lines (header first), oldest first, streamed batch by
    batch. Times are UTC; ``detail`` is compact JSON; hash, previous hash and seal let
    the chain be rechecked from the file."""
    yield _csv_line(CSV_HEADER)
    for ev in _filtered_rows(session, filters):
        yield _csv_line([str(ev.id), utc_text(ev.at), ev.actor, ev.action, ev.entity_type,
                         ev.entity_id, ev.source, _detail_text(ev.detail), ev.hash,
                         ev.prev_hash, ev.key_id or "", ev.seal or ""])


class ExportTooLarge(ValueError):
    """More events match than one FHIR export holds; the message says how to narrow."""

    def __init__(self, count: int) -> None:
        super().__init__(f"{count} events match; one FHIR export holds at most "
                         f"{FHIR_EXPORT_MAX}: narrow the date range, or use the CSV")
        self.count = count


# What an action did, by the last part of its name: the FHIR AuditEvent.action code
# (Create, Read, Update, Delete, Execute) and the FHIR RESTful interaction it amounts to.
_VERBS: dict[str, tuple[str, str | None]] = {
    "read": ("R", "read"),
    "case_viewed": ("R", "read"),
    "search": ("R", "search-type"),
    "viewed": ("R", "search-type"),  # lists: the desk, the worklist, the audit trail
    "worklist_viewed": ("R", "search-type"),
    "users_viewed": ("R", "search-type"),
    "exported": ("R", "search-type"),
    "received": ("C", "create"),
    "created": ("C", "create"),
    "started": ("C", "create"),
    "card_issued": ("C", "create"),
    "feedback": ("C", "create"),
    "triaged": ("U", "update"),
    "triage_failed": ("U", "update"),
    "delivered": ("U", "update"),
    "delivery_failed": ("U", "update"),
    "disabled": ("U", "update"),
    "enabled": ("U", "update"),
    "password_reset": ("U", "update"),
    "acknowledge_flag": ("U", "update"),
    "change_department": ("U", "update"),
    "exam_findings": ("U", "update"),
    "reviewed": ("U", "update"),
    "ended": ("D", "delete"),  # a tablet session ends: its draft answers are deleted
}


def fhir_action(action: str) -> tuple[str, str | None]:
    """(AuditEvent.action code, restful-interaction code or None) of an action name.
    Sign-ins, sign-outs and anything unknown are E (execute) with no interaction."""
    return _VERBS.get(action.rsplit(".", 1)[-1], ("E", None))


def _is_failure(action: str) -> bool:
    return action.endswith(("failed", "refused_locked"))


def _plugin_display() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{PLUGIN_DEVICE_NAME} {version('knee-intake')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return PLUGIN_DEVICE_NAME


def _network_type(address: str) -> str:
    """AuditEvent.agent.network.type: 2 an IP address, 1 a machine name (host:pid)."""
    try:
        ipaddress.ip_address(address)
        return "2"
    except ValueError:
        return "1"


def audit_event_resource(ev: Any, *, people: frozenset[str], observer: str) -> dict[str, Any]:
    """One event as a FHIR R4 AuditEvent (a plain dict; validated with the bundle).

    Ids and codes only: the entity is named by its type and id as the trail holds them,
    the agent by sign-in name (staff) or component name. The chain extension carries the
    id, hashes and seal, so an export can be checked link by link."""
    code, interaction = fhir_action(ev.action)
    category = ev.action.split(".", 1)[0]
    if category == "fhir":
        event_type = {"system": CS_AUDIT_EVENT_TYPE_HL7, "code": "rest",
                      "display": "RESTful Operation"}
    else:
        event_type = {"system": CS_AUDIT_EVENT_TYPE, "code": category}
    subtype = [{"system": CS_AUDIT_ACTION, "code": ev.action}]
    if interaction is not None:
        subtype.append({"system": CS_RESTFUL_INTERACTION, "code": interaction})
    person = ev.actor in people or ev.actor in PERSON_ACTORS
    who: dict[str, Any] = {"display": ev.actor}
    if ev.actor in people:
        who["identifier"] = {"system": IDENTIFIER_SYSTEM_STAFF_USER, "value": ev.actor}
    agent: dict[str, Any] = {"who": who, "requestor": person}
    if ev.source:
        agent["network"] = {"address": ev.source, "type": _network_type(ev.source)}
    chain = [{"url": "sequence", "valueInteger": ev.id},
             {"url": "previousHash", "valueString": ev.prev_hash},
             {"url": "hash", "valueString": ev.hash}]
    if ev.key_id is not None and ev.seal is not None:
        chain += [{"url": "keyId", "valueString": ev.key_id},
                  {"url": "seal", "valueString": ev.seal}]
    return {
        "resourceType": "AuditEvent",
        "id": str(ev.id),
        "extension": [{"url": EXT_AUDIT_CHAIN, "extension": chain}],
        "type": event_type,
        "subtype": subtype,
        "action": code,
        "recorded": utc_text(ev.at),
        "outcome": "4" if _is_failure(ev.action) else "0",
        "agent": [agent],
        "source": {"observer": {"display": observer},
                   "type": [{"system": CS_SECURITY_SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
        "entity": [{
            "what": {"identifier": {"system": IDENTIFIER_SYSTEM_AUDIT_ENTITY,
                                    "value": ev.entity_id}},
            "type": {"system": CS_AUDIT_ENTITY_TYPE, "code": ev.entity_type},
            "detail": [{"type": "detail", "valueString": _detail_text(ev.detail)}],
        }],
    }


def export_fhir(session: Session, filters: AuditFilters) -> dict[str, Any]:
    """The filtered events, oldest first, as a FHIR R4 Bundle of type ``collection``,
    validated with fhir.resources (R4B). At most :data:`FHIR_EXPORT_MAX` events."""
    from fhir.resources.R4B.bundle import Bundle

    own = not session.in_transaction()
    total = session.execute(apply_filters(select(func.count()).select_from(AuditEvent),
                                          filters)).scalar_one()
    people = frozenset(session.execute(select(User.name)).scalars())
    if own:
        session.rollback()
    if total > FHIR_EXPORT_MAX:
        raise ExportTooLarge(total)
    observer = _plugin_display()
    entries = []
    for ev in _filtered_rows(session, filters):
        entries.append({
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'audit:{ev.id}:{ev.hash}')}",
            "resource": audit_event_resource(ev, people=people, observer=observer),
        })
    bundle = {"resourceType": "Bundle", "type": "collection",
              "timestamp": utc_text(utcnow()), "entry": entries}
    out: dict[str, Any] = Bundle.model_validate(bundle).model_dump(mode="json",
                                                                    exclude_none=True)
    return out
