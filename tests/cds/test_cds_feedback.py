"""The feedback endpoint: accepted and overridden cards are recorded with the reason;
a repeat is stored once; bad feedback is refused whole and stores nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from intake import state
from intake.constants import CS_CDS_OVERRIDE_REASON
from intake.storage.models import AuditEvent, CdsFeedback
from support.cds import AUTH, FEEDBACK, SERVICE, hook_request, response_for, stored

COMMENT = "診察で確認済み、患者は既に救急搬送を手配"


def _card(app: Any, case_id: str = "pub-03") -> str:
    resp = app.test_client().post(SERVICE, json=hook_request(response_for(case_id)),
                                  headers=AUTH)
    assert resp.status_code == 200
    uuid: str = resp.get_json()["cards"][0]["uuid"]
    return uuid


def _send(app: Any, body: Any) -> Any:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return app.test_client().post(FEEDBACK, data=data,
                                  headers={**AUTH, "Content-Type": "application/json"})


def test_accepted_and_overridden_are_recorded(cds_app: Any) -> None:
    first, second = _card(cds_app, "pub-03"), _card(cds_app, "pub-02")
    body = {"feedback": [
        {"card": first, "outcome": "accepted", "outcomeTimestamp": "2026-11-21T01:00:00Z"},
        {"card": second, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T01:05:00Z",
         "overrideReason": {"reason": {"system": CS_CDS_OVERRIDE_REASON,
                                       "code": "already-assessed",
                                       "display": "診察で評価済み"},
                            "userComment": COMMENT}},
    ]}
    resp = _send(cds_app, body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"stored": 2, "repeated": 0}
    # The client reports the same interactions again: stored once.
    assert _send(cds_app, body).get_json() == {"stored": 0, "repeated": 2}

    with state(cds_app).sessions() as s:
        rows = s.execute(select(CdsFeedback).order_by(CdsFeedback.id)).scalars().all()
        assert [(r.card_uuid, r.outcome) for r in rows] == [(first, "accepted"),
                                                              (second, "overridden")]
        assert rows[0].override_reason_code is None and rows[0].user_comment is None
        assert (rows[1].override_reason_system, rows[1].override_reason_code,
                rows[1].user_comment) == (CS_CDS_OVERRIDE_REASON, "already-assessed", COMMENT)
        assert rows[1].outcome_at == datetime(2026, 11, 21, 1, 5, tzinfo=UTC)
        assert rows[1].client == "shared-token"
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "cds.feedback")
                           .order_by(AuditEvent.id)).scalars().all()
        assert [(e.entity_id, e.detail) for e in events] == [
            (first, {"outcome": "accepted", "reason": None}),
            (second, {"outcome": "overridden", "reason": "already-assessed"})]
        # The clinician's free text stays in the feedback row, out of the audit trail.
        assert all(COMMENT not in json.dumps(e.detail, ensure_ascii=False) for e in events)


def test_a_clients_own_override_reason_is_kept(sqlite_cds_app: Any) -> None:
    """CDS clients may add reasons of their own; an overridden card may have none."""
    card = _card(sqlite_cds_app)
    body = {"feedback": [
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T02:00:00+09:00",
         "overrideReason": {"reason": {"system": "https://ehr.example/reasons",
                                       "code": "r-17"}}},
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T03:00:00Z"},
    ]}
    assert _send(sqlite_cds_app, body).get_json() == {"stored": 2, "repeated": 0}


def _item(card: str = "{card}", **changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"card": card, "outcome": "overridden",
                            "outcomeTimestamp": "2026-11-21T01:00:00Z"}
    item.update(changes)
    return {k: v for k, v in item.items() if v is not None}


BAD: list[tuple[str, Any, str]] = [
    ("not json", "{oops", "_body"),
    ("not an object", [1], "_body"),
    ("no feedback", {}, "feedback"),
    ("empty feedback", {"feedback": []}, "feedback"),
    ("unknown card", {"feedback": [_item("6f1c1b1e-9d3a-4f7e-9a55-0c1d2e3f4a5b")]}, "card"),
    ("card not a uuid", {"feedback": [_item("card-1")]}, "card"),
    ("no outcome", {"feedback": [_item(outcome=None)]}, "outcome"),
    ("unknown outcome", {"feedback": [_item(outcome="ignored")]}, "outcome"),
    ("no time", {"feedback": [_item(outcomeTimestamp=None)]}, "outcomeTimestamp"),
    ("time without zone", {"feedback": [_item(outcomeTimestamp="2026-11-21T01:00:00")]},
     "outcomeTimestamp"),
    ("not a time", {"feedback": [_item(outcomeTimestamp="yesterday")]}, "outcomeTimestamp"),
    ("reason on accepted", {"feedback": [_item(outcome="accepted", overrideReason={
        "reason": {"system": CS_CDS_OVERRIDE_REASON, "code": "other"}})]}, "overrideReason"),
    ("reason without code", {"feedback": [_item(overrideReason={
        "reason": {"system": CS_CDS_OVERRIDE_REASON}})]}, "code"),
    ("comment too long", {"feedback": [_item(overrideReason={"userComment": "x" * 3000})]},
     "userComment"),
    ("suggestions the card never had", {"feedback": [_item(
        outcome="accepted", acceptedSuggestions=[{"id": "s-1"}])]}, "acceptedSuggestions"),
    # One good entry and one bad: all or nothing.
    ("good then bad", {"feedback": [_item(), _item(outcome="maybe")]}, "outcome"),
    ("good then unknown card", {"feedback": [
        _item(), _item("6f1c1b1e-9d3a-4f7e-9a55-0c1d2e3f4a5b")]}, "card"),
]


@pytest.mark.parametrize(("label", "body", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_feedback_is_refused_and_nothing_stored(sqlite_cds_app: Any, label: str,
                                                    body: Any, field: str) -> None:
    card = _card(sqlite_cds_app)
    before = stored(sqlite_cds_app)
    if not isinstance(body, str):
        body = json.loads(json.dumps(body).replace("{card}", card))
    resp = _send(sqlite_cds_app, body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    out = resp.get_json()
    assert field in json.dumps(out), out
    assert stored(sqlite_cds_app) == before
