"""The CDS Hooks service: discovery, the cards for the shared clinical cases, which
response is triaged, and refused requests (nothing stored)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from intake import state
from intake.clinical.questionnaire import default_form_index
from intake.constants import CDS_SERVICE_ID, CS_CDS_OVERRIDE_REASON, QUESTIONNAIRE_URL
from intake.storage.models import AuditEvent, CdsCard
from support import case
from support.cds import (
    AUTH,
    PATIENT_ID,
    SERVICE,
    hook_request,
    response_for,
    searchset,
    stored,
)
from support.databases import sqlite_only

# Advice the seeds got wrong: never to press or massage the back of the knee.
FORBIDDEN = re.compile(r"膝(の)?裏[^。]*(押|揉|もみ|マッサージ)|massag|press(ing)? (on )?the "
                       r"back of the knee", re.IGNORECASE)


def _call(client: Any, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(SERVICE, data=json.dumps(body, ensure_ascii=False),
                       headers={"Content-Type": "application/json", **(headers or AUTH)})


def _one_card(resp: Any) -> dict[str, Any]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    cards = resp.get_json()["cards"]
    assert len(cards) == 1
    card: dict[str, Any] = cards[0]
    return card


def test_discovery_lists_the_triage_service(sqlite_cds_app: Any) -> None:
    resp = sqlite_cds_app.test_client().get("/cds-services")  # open, as discovery is
    assert resp.status_code == 200
    (service,) = resp.get_json()["services"]
    assert service["id"] == CDS_SERVICE_ID and service["hook"] == "patient-view"
    assert service["title"] and "does not diagnose" in service["description"]
    template = service["prefetch"]["questionnaireResponse"]
    assert template.startswith("QuestionnaireResponse?subject={{context.patientId}}")
    assert f"questionnaire={QUESTIONNAIRE_URL}" in template and "_count=1" in template


@sqlite_only
@pytest.mark.parametrize(("case_id", "indicator"), [
    ("pub-03", "critical"), ("pub-02", "warning"), ("pub-01", "info")])
def test_cards_for_the_cases(cds_app: Any, case_id: str, indicator: str) -> None:
    app = cds_app
    card = _one_card(_call(app.test_client(), hook_request(response_for(case_id))))
    expect = case(case_id)["expect"]
    assert card["indicator"] == indicator
    assert 0 < len(card["summary"]) < 140
    assert str(uuid.UUID(card["uuid"])) == card["uuid"]
    assert card["source"]["label"]
    reasons = card["overrideReasons"]
    assert reasons and all(r["system"] == CS_CDS_OVERRIDE_REASON and r["display"]
                           for r in reasons)
    detail = card["detail"]
    assert "診断ではありません" in detail and "does not diagnose" in detail
    assert not FORBIDDEN.search(detail), FORBIDDEN.search(detail)
    questions = default_form_index().questions
    for code in expect["flags"]:
        assert f"`{code}`" in detail
    # Every answer behind every fired flag is listed, with its question, in both languages.
    from intake.clinical import evaluate, parse_simple_answers

    result = evaluate(parse_simple_answers(case(case_id)["answers"]))
    for flag in result.flags:
        for ev in flag.evidence:
            assert questions[ev.link_id].text.ja in detail, ev.link_id
            assert questions[ev.link_id].text.en in detail, ev.link_id
    if expect["urgency"] == "self_care":
        assert "セルフケア" in detail and "Self-care points" in detail
    else:
        assert "Self-care points" not in detail

    with state(app).sessions() as s:
        row = s.get(CdsCard, card["uuid"])
        assert row is not None
        assert (row.urgency, row.indicator, row.service_id) == (
            expect["urgency"], indicator, CDS_SERVICE_ID)
        assert set(row.flag_codes) >= set(expect["flags"])
        events = s.execute(select(AuditEvent).where(AuditEvent.entity_id == card["uuid"])
                           ).scalars().all()
        assert [e.action for e in events] == ["cds.card_issued"]
        assert events[0].actor == "cds:shared-token"
        # Codes only: no patient id, answers or texts in what is kept.
        kept = json.dumps([row.flag_codes, row.ruleset, row.hook_instance, events[0].detail],
                          ensure_ascii=False)
        assert PATIENT_ID not in kept and "Patient" not in kept


def test_which_response_is_triaged(sqlite_cds_app: Any) -> None:
    client = sqlite_cds_app.test_client()
    older = response_for("pub-03", authored="2026-10-01T09:00:00+09:00")
    newer = response_for("pub-01", authored="2026-11-20T09:00:00Z")
    other = dict(response_for("pub-03"), questionnaire="http://example.org/Questionnaire/x")
    # A searchset: the newest response to the knee questionnaire, other entries ignored.
    bundle = searchset(older, other, newer, {"resourceType": "OperationOutcome", "issue": []})
    assert _one_card(_call(client, hook_request(bundle)))["indicator"] == "info"
    # A response in the context wins over the prefetch.
    in_context = hook_request(bundle)
    in_context["context"]["questionnaireResponse"] = older
    assert _one_card(_call(client, in_context))["indicator"] == "critical"
    # No response for this patient (or only one withdrawn as an error): no cards.
    withdrawn = dict(newer, status="entered-in-error")
    assert _one_card(_call(client, hook_request(searchset(older, withdrawn)))
                     )["indicator"] == "critical"
    before = stored(sqlite_cds_app)
    for empty in (None, searchset(), searchset(other), withdrawn, searchset(withdrawn)):
        resp = _call(client, hook_request(empty))
        assert resp.status_code == 200 and resp.get_json() == {"cards": []}
    assert stored(sqlite_cds_app) == before


def test_a_response_that_cannot_be_triaged_gets_a_warning_card(sqlite_cds_app: Any) -> None:
    """Silence would read as 'no red flags': the card says the answers need a look."""
    broken = response_for("pub-03")
    broken["item"].append({"linkId": "shoe_size", "answer": [{"valueInteger": 42}]})
    card = _one_card(_call(sqlite_cds_app.test_client(), hook_request(broken)))
    assert card["indicator"] == "warning" and len(card["summary"]) < 140
    assert "自動評価できませんでした" in card["summary"]
    assert "shoe\\_size" in card["detail"] or "shoe_size" in card["detail"]
    with state(sqlite_cds_app).sessions() as s:
        row = s.get(CdsCard, card["uuid"])
        assert row is not None and row.urgency is None and row.flag_codes == []


def _bad(label: str, body: Any, status: int, headers: dict[str, str] | None = None,
         path: str = SERVICE) -> tuple[Any, ...]:
    return (label, body, status, headers, path)


BAD: list[tuple[Any, ...]] = [
    _bad("not json", "{nope", 400),
    _bad("array", [], 400),
    _bad("too deep", json.loads("[" * 80 + "]" * 80), 400),
    _bad("no hook", {k: v for k, v in hook_request(response_for("pub-03")).items()
                     if k != "hook"}, 400),
    _bad("no hookInstance", {k: v for k, v in hook_request(response_for("pub-03")).items()
                             if k != "hookInstance"}, 400),
    _bad("another hook", hook_request(response_for("pub-03"), hook="order-sign"), 400),
    _bad("context not an object", hook_request(response_for("pub-03"), context=[1]), 400),
    _bad("no patientId", hook_request(response_for("pub-03"), context={"userId": "x"}), 400),
    _bad("prefetch not a resource", hook_request("QuestionnaireResponse/1"), 400),
    _bad("prefetch another resource", hook_request({"resourceType": "Patient"}), 400),
    _bad("response of another patient",
         hook_request(response_for("pub-03", patient_id="someone-else")), 400),
    _bad("prefetch key missing", hook_request(prefetch=False), 412),
    _bad("unknown service", hook_request(response_for("pub-03")), 404, None,
         "/cds-services/no-such-service"),
    _bad("text/plain", "hook=patient-view", 415,
         {**AUTH, "Content-Type": "text/plain"}),
    _bad("oversized", hook_request(response_for("pub-03"), pad="x" * 70_000), 413),
]


@pytest.mark.parametrize(("label", "body", "status", "headers", "path"), BAD,
                         ids=[b[0] for b in BAD])
def test_refused_requests_store_nothing(sqlite_cds_app: Any, label: str, body: Any,
                                        status: int, headers: dict[str, str] | None,
                                        path: str) -> None:
    client = sqlite_cds_app.test_client()
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    resp = client.post(path, data=data,
                       headers=headers or {**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == status, resp.get_data(as_text=True)
    out = resp.get_json()
    assert isinstance(out, dict) and out["error"], out
    assert PATIENT_ID not in resp.get_data(as_text=True)
    assert stored(sqlite_cds_app) == (0, 0, 0)
