"""The CDS Hooks use cases: answer a hook call with cards, record feedback on a card.

The service is decision support on the client's own data: it evaluates the
QuestionnaireResponse in the request with the pure rules engine, synchronously, and
stores **no intake**. It keeps one row per card issued (codes only: rule set, urgency,
flag codes, the client's hook instance) so feedback can be tied to what the card said.

Which response is triaged (hook ``patient-view``):

* ``context.questionnaireResponse`` when the client puts one there (a convenience for
  clients that hold the response in hand), else
* the prefetch ``questionnaireResponse``: a QuestionnaireResponse, or a searchset
  Bundle from which the newest response to the knee questionnaire is taken;
  ``null`` or a Bundle without one means the patient has no such response: no cards.
  A response marked ``entered-in-error`` counts as none.
* The prefetch key missing means the client did not or could not prefetch; this
  service does not query the client's FHIR server, so it answers 412 as CDS Hooks
  asks.

A response whose subject is a literal ``Patient/<id>`` other than
``context.patientId`` is refused (400): a card about another patient's answers on this
chart is the worst possible output.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from intake import audit
from intake.cds.cards import Card, not_evaluated_card, triage_card
from intake.clinical import evaluate
from intake.constants import CDS_HOOK, CDS_PREFETCH_KEY, CDS_SERVICE_ID, QUESTIONNAIRE_URL
from intake.fhirapi.outcome import FhirError
from intake.fhirapi.validation import check_resource, parse_answers
from intake.storage.models import CdsCard, CdsFeedback, utcnow

log = logging.getLogger(__name__)

QR = "QuestionnaireResponse"


class CdsError(Exception):
    """A request this service refuses: HTTP status, a message and per-field details."""

    def __init__(self, status: int, message: str,
                 errors: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = dict(errors or {})


def discovery() -> dict[str, Any]:
    """The discovery document: one service on ``patient-view``."""
    return {"services": [{
        "hook": CDS_HOOK,
        "id": CDS_SERVICE_ID,
        "title": "膝の裏の痛み 問診トリアージ / Posterior knee pain intake triage",
        "description": (
            "Triages the patient's newest answers to the posterior knee pain questionnaire "
            f"({QUESTIONNAIRE_URL}) and returns one card: critical for an emergency, "
            "warning for same day, info otherwise, with the answers behind every finding. "
            "Triage support for staff and clinicians; it does not diagnose."
        ),
        "prefetch": {
            CDS_PREFETCH_KEY: (
                "QuestionnaireResponse?subject={{context.patientId}}"
                f"&questionnaire={QUESTIONNAIRE_URL}&_sort=-authored&_count=1"
            ),
        },
    }]}


@dataclass(frozen=True)
class HookCall:
    """The parts of a validated hook request this service uses."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any] | None


def select_response(call: HookCall) -> dict[str, Any] | None:
    """The QuestionnaireResponse to triage, or None when the patient has none."""
    if call.hook != CDS_HOOK:
        raise CdsError(400, f"this service answers the {CDS_HOOK} hook only",
                       {"hook": [f"must be {CDS_HOOK}"]})
    patient_id = call.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise CdsError(400, "context.patientId is required",
                       {"context": {"patientId": ["required"]}})
    in_context = call.context.get("questionnaireResponse")
    chosen: dict[str, Any] | None
    if in_context is not None:
        chosen = _as_response(in_context, "context.questionnaireResponse")
    else:
        if call.prefetch is None or CDS_PREFETCH_KEY not in call.prefetch:
            raise CdsError(412, f"prefetch {CDS_PREFETCH_KEY} is missing and this service "
                           "does not query the FHIR server; prefetch it as the discovery "
                           "document asks", {"prefetch": {CDS_PREFETCH_KEY: ["missing"]}})
        chosen = _from_prefetch(call.prefetch[CDS_PREFETCH_KEY])
    if chosen is None or chosen.get("status") == "entered-in-error":
        return None  # a response withdrawn as an error is no response
    _check_patient(chosen, patient_id)
    return chosen


def _as_response(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("resourceType") != QR:
        raise CdsError(400, f"{where} must be a QuestionnaireResponse",
                       {where: ["not a QuestionnaireResponse"]})
    return value


def _from_prefetch(value: Any) -> dict[str, Any] | None:
    where = f"prefetch.{CDS_PREFETCH_KEY}"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise CdsError(400, f"{where} must be a resource, a Bundle or null",
                       {where: ["not an object"]})
    if value.get("resourceType") == QR:
        return value
    if value.get("resourceType") != "Bundle":
        raise CdsError(400, f"{where} must be a QuestionnaireResponse or a searchset Bundle",
                       {where: ["unexpected resourceType"]})
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        raise CdsError(400, f"{where}.entry must be a list", {where: ["entry not a list"]})
    candidates = []
    for position, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != QR:
            continue  # e.g. an OperationOutcome the server added to the searchset
        if resource.get("status") == "entered-in-error":
            continue
        canonical = resource.get("questionnaire")
        if isinstance(canonical, str) and canonical.partition("|")[0] == QUESTIONNAIRE_URL:
            candidates.append((_authored_key(resource.get("authored")), -position, resource))
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c[0], c[1]))[2]


def _authored_key(value: Any) -> float:
    """Sort key of ``authored`` (newest wins; unknown or partial dates sort first)."""
    if not isinstance(value, str):
        return float("-inf")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return float("-inf")
    if parsed.tzinfo is None:
        return float("-inf")
    return parsed.timestamp()


def _check_patient(response: Mapping[str, Any], patient_id: str) -> None:
    subject = response.get("subject")
    reference = subject.get("reference") if isinstance(subject, Mapping) else None
    if not isinstance(reference, str) or "?" in reference or reference.startswith("#"):
        return  # a logical or conditional reference cannot be compared; trust the prefetch
    parts = reference.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1] != patient_id:
        raise CdsError(400, "the QuestionnaireResponse is about another patient than "
                       "context.patientId; no card is given",
                       {"questionnaireResponse": {"subject": ["not context.patientId"]}})


def evaluate_response(response: Mapping[str, Any], card_uuid: str) -> Card:
    """A triage card, or a 'could not evaluate' card naming the problem."""
    try:
        check_resource(response)
        answers = parse_answers(dict(response))
    except FhirError as exc:
        issue = exc.issues[0]
        where = f" ({issue.expression})" if issue.expression else ""
        return not_evaluated_card(f"{issue.diagnostics}{where}", card_uuid=card_uuid)
    status = str(response.get("status"))
    return triage_card(evaluate(answers), card_uuid=card_uuid, qr_status=status)


def issue_cards(sessions: sessionmaker[Session], call: HookCall, *,
                client: str) -> list[dict[str, Any]]:
    """The cards for one hook call, recorded (codes only) and audited."""
    response = select_response(call)
    if response is None:
        return []
    card = evaluate_response(response, str(uuid.uuid4()))
    with sessions.begin() as session:
        session.add(CdsCard(
            uuid=card.uuid, service_id=CDS_SERVICE_ID, hook_instance=call.hook_instance,
            ruleset=card.ruleset, urgency=card.urgency, indicator=card.indicator,
            flag_codes=list(card.flag_codes), issued_at=utcnow(),
        ))
        audit.record(session, actor=_actor(client), action="cds.card_issued",
                     entity_type="cds_card", entity_id=card.uuid,
                     detail={"service": CDS_SERVICE_ID, "indicator": card.indicator,
                             "urgency": card.urgency, "ruleset": card.ruleset})
    return [card.to_json()]


def _actor(client: str) -> str:
    return f"cds:{client}"[:100]


# --- feedback ---------------------------------------------------------------


def record_feedback(sessions: sessionmaker[Session], items: Sequence[Mapping[str, Any]], *,
                    client: str) -> dict[str, int]:
    """Store every feedback entry, or none: an entry about a card this service did not
    issue, or one that does not fit the card, refuses the whole request (400).

    A repeated entry (same card, outcome and time) is recognised and stored once.
    """
    counts = {"stored": 0, "repeated": 0}
    with sessions.begin() as session:
        for position, item in enumerate(items):
            _check_feedback(session, position, item)
        for item in items:
            card_uuid = str(item["card"])
            outcome = str(item["outcome"])
            outcome_at: datetime = item["outcomeTimestamp"]
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            comment = (item.get("overrideReason") or {}).get("userComment")
            if _already(session, card_uuid, outcome, outcome_at):
                counts["repeated"] += 1
                continue
            try:
                with session.begin_nested():
                    session.add(CdsFeedback(
                        card_uuid=card_uuid, outcome=outcome,
                        override_reason_system=reason.get("system"),
                        override_reason_code=reason.get("code"), user_comment=comment,
                        outcome_at=outcome_at, received_at=utcnow(), client=client[:300],
                    ))
            except IntegrityError:  # the same entry arrived in a concurrent request
                counts["repeated"] += 1
                continue
            counts["stored"] += 1
            audit.record(session, actor=_actor(client), action="cds.feedback",
                         entity_type="cds_card", entity_id=card_uuid,
                         detail={"outcome": outcome, "reason": reason.get("code")})
    return counts


def _check_feedback(session: Session, position: int, item: Mapping[str, Any]) -> None:
    where = f"feedback[{position}]"
    card = session.get(CdsCard, str(item["card"]))
    if card is None or card.service_id != CDS_SERVICE_ID:
        raise CdsError(400, f"{where}.card: no card with this uuid was issued by this "
                       "service; nothing was stored", {where: {"card": ["unknown card"]}})
    if item.get("acceptedSuggestions"):
        raise CdsError(400, f"{where}.acceptedSuggestions: this service's cards have no "
                       "suggestions; nothing was stored",
                       {where: {"acceptedSuggestions": ["the card has no suggestions"]}})
    if item["outcome"] == "accepted" and item.get("overrideReason") is not None:
        raise CdsError(400, f"{where}.overrideReason: only an overridden card has an "
                       "override reason; nothing was stored",
                       {where: {"overrideReason": ["given with outcome accepted"]}})


def _already(session: Session, card_uuid: str, outcome: str, outcome_at: datetime) -> bool:
    return session.execute(
        select(CdsFeedback.id).where(CdsFeedback.card_uuid == card_uuid,
                                     CdsFeedback.outcome == outcome,
                                     CdsFeedback.outcome_at == outcome_at)
    ).first() is not None
