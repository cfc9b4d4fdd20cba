"""Views of the JSON API. Errors are JSON with the problem per field."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, jsonify, request, url_for
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from intake import audit, intakes, pipeline, state
from intake.api import bp
from intake.api.schemas import IdempotencyKeySchema, SubmitIntakeSchema
from intake.bearer import bearer_matches
from intake.clinical import AnswerError, parse_simple_answers
from intake.lifecycle import STATUS_TIME
from intake.storage import queries
from intake.storage.models import DeliveryAttempt, Intake

_submit_schema = SubmitIntakeSchema()
_key_schema = IdempotencyKeySchema()


def _error(status: int, errors: Any, message: str) -> tuple[Response, int]:
    return jsonify({"error": message, "errors": errors}), status


def http_error(exc: HTTPException) -> tuple[Response, int]:
    """Errors under /api are JSON too, including 404s for unknown paths (app-level)."""
    status = exc.code or 500
    messages = {413: "request body too large", 404: "not found",
                405: "method not allowed", 415: "send application/json"}
    return _error(status, {}, messages.get(status, exc.name))


def internal_error(_exc: Exception) -> tuple[Response, int]:
    # Never echo the exception: it may carry patient data.
    return _error(500, {}, "internal error; the request was not applied")


@bp.before_request
def _authenticate() -> tuple[Response, int] | None:
    if not bearer_matches(request.headers.get("Authorization"), state().api_token):
        return _error(401, {}, "a valid bearer token is required")
    return None


@bp.post("/intakes")
def submit_intake() -> tuple[Response, int] | Response:
    """Accept an intake: stored with its pending triage job in one transaction, then
    enqueued; 202 with its id and status URL. The broker being down does not fail it."""
    st = state()
    if not request.is_json:
        return _error(415, {"_body": ["Content-Type must be application/json"]},
                      "send application/json")
    payload = request.get_json(silent=True)
    if payload is None:
        return _error(400, {"_body": ["the body is not valid JSON"]}, "invalid JSON")
    if not isinstance(payload, dict):
        return _error(400, {"_body": ["the body must be a JSON object"]}, "invalid body")
    try:
        data = _submit_schema.load(payload)
    except ValidationError as exc:
        return _error(400, exc.messages, "invalid intake")
    try:
        answers = parse_simple_answers(data["answers"])
    except AnswerError as exc:
        field = exc.link_id or "_answers"
        return _error(400, {"answers": {field: [str(exc)]}}, "invalid answers")

    key = request.headers.get("Idempotency-Key")
    if key is not None:
        try:
            _key_schema.load({"key": key})
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {}
            return _error(400, {"Idempotency-Key": messages.get("key")},
                          "invalid Idempotency-Key header")

    walk_in = data.get("walk_in")
    demographics = None
    if walk_in is not None:
        demographics = dict(walk_in)
        demographics["birth_date"] = walk_in["birth_date"].isoformat()
    fingerprint = pipeline.request_fingerprint(payload)
    try:
        accepted = intakes.submit_and_enqueue(
            st.sessions, st.celery, answers=answers, source="api", actor="api",
            record_number=data.get("record_number"), demographics=demographics,
            idempotency_key=key, fingerprint=fingerprint,
        )
    except pipeline.IdempotencyConflict:
        return _error(422, {"Idempotency-Key": ["already used with a different body"]},
                      "Idempotency-Key reused")
    intake_id = accepted.intake_id

    status_url = url_for("api.get_intake", intake_id=intake_id)
    body = jsonify({"id": intake_id, "business_id": accepted.business_id,
                    "status": accepted.status, "status_url": status_url})
    body.headers["Location"] = status_url
    if not accepted.created:
        body.headers["Idempotent-Replayed"] = "true"
    return body, 202


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@bp.get("/intakes/<intake_id>")
def get_intake(intake_id: str) -> tuple[Response, int] | Response:
    """The intake's state with the time of each state, its triage result and delivery."""
    try:
        uuid.UUID(intake_id)
    except ValueError:
        return _error(404, {}, "not found")
    st = state()
    with st.sessions.begin() as session:
        intake = session.get(Intake, intake_id)
        if intake is None:
            return _error(404, {}, "not found")
        result = queries.newest_record(session, intake_id)
        attempts = intake.delivery_attempts
        delivery_state = queries.delivery_of(session, intake).state
        last: DeliveryAttempt | None = attempts[-1] if attempts else None
        body = {
            "id": intake.id,
            "business_id": intake.business_id,
            "status": intake.status,
            "status_reason": intake.status_reason,
            "revision": intake.revision,
            "times": {**{status.value: _iso(getattr(intake, column))
                         for status, column in STATUS_TIME.items()},
                      "reviewed": _iso(intake.reviewed_at)},
            "triage": None if result is None else {**result.result,
                                                   "revision": result.revision},
            "delivery": {
                "state": delivery_state,
                "attempts": len(attempts),
                "last_attempt": None if last is None else {
                    "outcome": last.outcome, "http_status": last.http_status,
                    "reason": last.reason, "at": _iso(last.finished_at),
                    "adapter": last.adapter,
                },
            },
        }
        audit.record(session, actor="api", action="intake.read", entity_type="intake",
                     entity_id=intake_id)
    return jsonify(body)
