"""The CSV and FHIR AuditEvent exports: their content, filters, formula escaping, FHIR
validity and codes, and that the chain can be rechecked from an export alone."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from intake import audit, state
from intake.audit import AuditFilters
from intake.constants import (
    CS_AUDIT_ACTION,
    CS_AUDIT_EVENT_TYPE,
    CS_AUDIT_EVENT_TYPE_HL7,
    CS_RESTFUL_INTERACTION,
    EXT_AUDIT_CHAIN,
    IDENTIFIER_SYSTEM_AUDIT_ENTITY,
    IDENTIFIER_SYSTEM_STAFF_USER,
    PLUGIN_DEVICE_NAME,
)
from intake.storage.models import AuditEvent
from support.audit import edit_event, make_staff, record_events
from support.databases import sqlite_only


def _record(app: Any, **kw: Any) -> int:
    values = {"actor": "system", "action": "intake.read", "entity_type": "intake",
              "entity_id": "i-1", "detail": {}, "source": "10.0.0.9", **kw}
    with app.app_context(), state(app).sessions.begin() as s:
        return audit.record(s, **values).id


def _csv(app: Any, filters: AuditFilters | None = None) -> list[list[str]]:
    with state(app).sessions() as s:
        text = "".join(audit.export_csv(s, filters or AuditFilters()))
    return list(csv.reader(io.StringIO(text)))


def _fhir(app: Any, filters: AuditFilters | None = None) -> dict[str, Any]:
    with state(app).sessions() as s:
        return audit.export_fhir(s, filters or AuditFilters())


def _unquote(cell: str) -> str:
    """The value behind an escaped cell (the export adds one leading quote)."""
    return cell[1:] if cell[:2] in ("'=", "'+", "'-", "'@", "'\t", "'\r") else cell


@sqlite_only
def test_csv_rows_and_formula_escaping(trail_app: Any) -> None:
    _record(trail_app, actor="=HYPERLINK(\"http://x\")", entity_id="-1+2",
            detail={"note": "@SUM(A1)"}, source="+81")
    _record(trail_app, actor="alice", action="review.case_viewed", entity_id="i-2",
            detail={"rows": 3, "名前": "なし"})
    rows = _csv(trail_app)
    assert rows[0] == list(audit.CSV_HEADER)
    assert len(rows) == 3
    first, second = dict(zip(rows[0], rows[1], strict=True)), dict(zip(rows[0], rows[2],
                                                                       strict=True))
    # A spreadsheet would run these as formulas: they are prefixed with a quote.
    assert first["actor"] == "'=HYPERLINK(\"http://x\")"
    assert first["entity_id"] == "'-1+2"
    assert first["source"] == "'+81"
    assert json.loads(first["detail"]) == {"note": "@SUM(A1)"}  # starts with {: as is
    assert second["actor"] == "alice" and second["action"] == "review.case_viewed"
    assert json.loads(second["detail"]) == {"rows": 3, "名前": "なし"}
    for row in (first, second):
        at = datetime.fromisoformat(row["time_utc"])
        assert row["time_utc"].endswith("Z") and at.utcoffset() == timedelta(0)
        assert len(row["hash"]) == 64 and len(row["seal"]) == 64 and row["key_id"]
    assert audit.csv_cell("-cmd") == "'-cmd" and audit.csv_cell("a-b") == "a-b"
    assert audit.csv_cell("\tx") == "'\tx" and audit.csv_cell("@") == "'@"


def test_the_chain_can_be_rechecked_from_the_csv(trail_app: Any) -> None:
    record_events(trail_app, 3)
    _record(trail_app, actor="=1+1", entity_id="x")
    rows = _csv(trail_app)
    header, body = rows[0], rows[1:]
    prev = audit.GENESIS
    for raw in body:
        row = {k: _unquote(v) for k, v in zip(header, raw, strict=True)}
        assert row["prev_hash"] == prev
        digest = audit.digest(prev, datetime.fromisoformat(row["time_utc"]), row["actor"],
                               row["action"], row["entity_type"], row["entity_id"],
                               json.loads(row["detail"]), row["source"])
        assert digest == row["hash"]
        prev = row["hash"]
    # An edited event no longer hashes to what the export says.
    edit_event(trail_app, 2, actor="mallory")
    row = dict(zip(header, _csv(trail_app)[2], strict=True))
    assert audit.digest(row["prev_hash"], datetime.fromisoformat(row["time_utc"]),
                         row["actor"], row["action"], row["entity_type"], row["entity_id"],
                         json.loads(row["detail"]), row["source"]) != row["hash"]


def test_filters(trail_app: Any) -> None:
    a = _record(trail_app, actor="alice", action="intake.read", entity_id="i-1")
    b = _record(trail_app, actor="bob", action="review.case_viewed", entity_id="i-2")
    c = _record(trail_app, actor="alice", action="review.case_viewed", entity_id="i-2")

    def ids(f: AuditFilters) -> list[int]:
        return [int(r[0]) for r in _csv(trail_app, f)[1:]]

    assert ids(AuditFilters()) == [a, b, c]
    assert ids(AuditFilters(actor="alice")) == [a, c]
    assert ids(AuditFilters(action="review.case_viewed")) == [b, c]
    assert ids(AuditFilters(entity_id="i-2", actor="alice")) == [c]
    assert ids(AuditFilters(actor="nobody")) == []
    with state(trail_app).sessions() as s:
        times = {r.id: r.at for r in s.execute(select(AuditEvent.id, AuditEvent.at))}
    assert ids(AuditFilters(since=times[b])) == [b, c]  # since is inclusive
    assert ids(AuditFilters(before=times[b])) == [a]  # before is exclusive
    bundle = _fhir(trail_app, AuditFilters(actor="bob"))
    assert [e["resource"]["id"] for e in bundle["entry"]] == [str(b)]


def test_verify_and_exports_read_in_batches(trail_app: Any) -> None:
    record_events(trail_app, 7)
    with state(trail_app).sessions() as s, trail_app.app_context():
        assert audit.verify(s, batch=2).checked == 7
    edit_event(trail_app, 5, source="10.1.1.1")
    with state(trail_app).sessions() as s, trail_app.app_context():
        report = audit.verify(s, batch=2)
    assert report.first is not None and report.first.event_id == 5


def _resource(bundle: dict[str, Any], event_id: int) -> dict[str, Any]:
    found: dict[str, Any] = next(e["resource"] for e in bundle["entry"]
                                 if e["resource"]["id"] == str(event_id))
    return found


def _codings(resource: dict[str, Any], system: str) -> list[str]:
    return [c["code"] for c in resource.get("subtype", []) if c["system"] == system]


@sqlite_only
def test_fhir_export_is_a_valid_bundle_with_the_right_codes(trail_app: Any) -> None:
    make_staff(trail_app, "dr-sato", "practitioner")  # user.created, by "cli"
    read = _record(trail_app, actor="dr-sato", action="review.case_viewed",
                   entity_id="3f1c", source="192.0.2.10")
    fhir_read = _record(trail_app, actor="fhir-api", action="fhir.risk_assessment.read",
                        entity_id="3f1c", source="192.0.2.11")
    signin = _record(trail_app, actor="dr-sato", action="signin.failed", entity_type="user",
                     entity_id="dr-sato", detail={"reason": "wrong password"})
    ack = _record(trail_app, actor="dr-sato", action="review.acknowledge_flag",
                  entity_id="3f1c", detail={"flag": "DVT"})
    triaged = _record(trail_app, action="intake.triaged", source="worker-host:4242")
    bundle = _fhir(trail_app)
    Bundle.model_validate(bundle)  # fhir.resources (R4B) accepts it as it is
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert len(bundle["entry"]) == 6
    assert len({e["fullUrl"] for e in bundle["entry"]}) == 6

    r = _resource(bundle, read)
    assert r["action"] == "R" and r["outcome"] == "0"
    assert r["type"] == {"system": CS_AUDIT_EVENT_TYPE, "code": "review"}
    assert _codings(r, CS_AUDIT_ACTION) == ["review.case_viewed"]
    assert _codings(r, CS_RESTFUL_INTERACTION) == ["read"]
    agent = r["agent"][0]
    assert agent["requestor"] is True and agent["who"]["display"] == "dr-sato"
    assert agent["who"]["identifier"] == {"system": IDENTIFIER_SYSTEM_STAFF_USER,
                                          "value": "dr-sato"}
    assert agent["network"] == {"address": "192.0.2.10", "type": "2"}
    assert PLUGIN_DEVICE_NAME in r["source"]["observer"]["display"]
    entity = r["entity"][0]
    assert entity["what"]["identifier"] == {"system": IDENTIFIER_SYSTEM_AUDIT_ENTITY,
                                            "value": "3f1c"}
    assert entity["type"]["code"] == "intake"

    f = _resource(bundle, fhir_read)
    assert f["type"]["system"] == CS_AUDIT_EVENT_TYPE_HL7 and f["type"]["code"] == "rest"
    assert _codings(f, CS_RESTFUL_INTERACTION) == ["read"]
    assert f["agent"][0]["requestor"] is False  # a system, not a person

    s = _resource(bundle, signin)
    assert s["action"] == "E" and s["outcome"] == "4"
    assert _codings(s, CS_RESTFUL_INTERACTION) == []
    created = _resource(bundle, 1)
    assert created["action"] == "C" and _codings(created, CS_RESTFUL_INTERACTION) == [
        "create"]
    assert _resource(bundle, ack)["action"] == "U"
    t = _resource(bundle, triaged)
    assert t["agent"][0]["network"] == {"address": "worker-host:4242", "type": "1"}
    assert t["agent"][0]["requestor"] is False


def test_the_chain_can_be_rechecked_from_the_fhir_export(trail_app: Any) -> None:
    record_events(trail_app, 3)
    _record(trail_app, detail={"flags": ["DVT"], "revision": 2})
    prev = audit.GENESIS
    for entry in _fhir(trail_app)["entry"]:
        r = entry["resource"]
        chain = {e["url"]: next(v for k, v in e.items() if k.startswith("value"))
                 for e in next(x for x in r["extension"]
                               if x["url"] == EXT_AUDIT_CHAIN)["extension"]}
        assert chain["sequence"] == int(r["id"]) and chain["previousHash"] == prev
        entity = r["entity"][0]
        digest = audit.digest(
            prev, datetime.fromisoformat(r["recorded"]), r["agent"][0]["who"]["display"],
            _codings(r, CS_AUDIT_ACTION)[0], entity["type"]["code"],
            entity["what"]["identifier"]["value"],
            json.loads(entity["detail"][0]["valueString"]),
            r["agent"][0]["network"]["address"])
        assert digest == chain["hash"]
        assert len(chain["seal"]) == 64 and chain["keyId"]
        prev = chain["hash"]


@sqlite_only
def test_fhir_export_has_a_size_limit(trail_app: Any, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    record_events(trail_app, 3)
    monkeypatch.setattr("intake.audit.export.FHIR_EXPORT_MAX", 2)
    with pytest.raises(audit.ExportTooLarge) as exc:
        _fhir(trail_app)
    assert exc.value.count == 3
    assert len(_fhir(trail_app, AuditFilters(entity_id="intake-1"))["entry"]) == 1
