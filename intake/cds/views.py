"""Views of the CDS Hooks service. Thin: authenticate, check the body's shape, call a
service, answer JSON.

Discovery is open (it lists what the service does and carries no patient data); the
service and its feedback endpoint need the client's JWT or the shared token, with
``aud`` the URL of the endpoint called (the feedback URL or the service URL).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from flask import Response, jsonify, request, url_for
from marshmallow import ValidationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from intake import state
from intake.cds import bp, services
from intake.cds.auth import AuthError, Caller, authenticate
from intake.cds.schemas import FeedbackSchema, HookRequestSchema
from intake.constants import CDS_SERVICE_ID
from intake.fhirapi.validation import load_json
from intake.storage.models import CdsJwtSeen, utcnow

_hook_schema = HookRequestSchema()
_feedback_schema = FeedbackSchema()


def _error(exc: services.CdsError) -> tuple[Response, int]:
    response = jsonify({"error": exc.message, "errors": exc.errors})
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cds-services"'
    return response, exc.status


bp.register_error_handler(services.CdsError, _error)


def _endpoint_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of an endpoint as the client calls it (the JWT's ``aud``)."""
    base = state().settings.public_base_url
    if base:
        return base + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _remember_jti(issuer: str, jti: str, expires: datetime) -> bool:
    """Store the JWT as used, in its own transaction; False when it was used before.
    Expired entries are dropped on the way (their tokens fail the exp check anyway)."""
    key = hashlib.sha256(f"{issuer}\n{jti}".encode()).hexdigest()
    try:
        with state().sessions.begin() as session:
            session.execute(delete(CdsJwtSeen).where(CdsJwtSeen.expires_at < utcnow()))
            session.add(CdsJwtSeen(key=key, expires_at=expires))
    except IntegrityError:
        return False
    return True


def _caller(service_id: str) -> Caller:
    if service_id != CDS_SERVICE_ID:
        raise services.CdsError(404, "no such CDS service")
    audiences = [_endpoint_url("cds.call_service", service_id=service_id),
                 _endpoint_url("cds.feedback", service_id=service_id)]
    try:
        return authenticate(request.headers.get("Authorization"), state().settings, audiences,
                            _remember_jti)
    except AuthError as exc:
        raise services.CdsError(401, str(exc)) from None


def _json_body() -> Any:
    if not request.is_json:
        raise services.CdsError(415, "send application/json",
                                {"_body": ["Content-Type must be application/json"]})
    try:
        return load_json(request.get_data(cache=False))  # 413 when over the limit
    except ValueError as exc:
        raise services.CdsError(400, str(exc), {"_body": [str(exc)]}) from None


def _load(schema: Any, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise services.CdsError(400, "the body must be a JSON object",
                                {"_body": ["not an object"]})
    try:
        data: dict[str, Any] = schema.load(body)
    except ValidationError as exc:
        raise services.CdsError(400, "invalid request", exc.messages_dict) from None
    return data


@bp.get("")
def discovery() -> Response:
    return jsonify(services.discovery())


@bp.post("/<service_id>")
def call_service(service_id: str) -> Response:
    """Triage the patient's knee questionnaire response; one card, or none."""
    caller = _caller(service_id)
    data = _load(_hook_schema, _json_body())
    call = services.HookCall(hook=data["hook"], hook_instance=data["hookInstance"],
                             context=data["context"], prefetch=data.get("prefetch"))
    cards = services.issue_cards(state().sessions, call, client=caller.client)
    return jsonify({"cards": cards})


@bp.post("/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    """Record what clinicians did with cards: accepted, or overridden with a reason."""
    caller = _caller(service_id)
    data = _load(_feedback_schema, _json_body())
    counts = services.record_feedback(state().sessions, data["feedback"],
                                      client=caller.client)
    return jsonify(counts)
