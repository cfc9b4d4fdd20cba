"""Liveness and readiness for the operator's load balancer and orchestrator."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from intake import state
from intake.bearer import bearer_matches
from intake.health.checks import check_broker, check_database

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up and serving; nothing else is checked."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database and the broker answer; 503 otherwise."""
    st = state()
    checks = {"database": check_database(st.settings.database_url),
              "broker": check_broker(st.settings.redis_url)}
    ok = all(c["ok"] for c in checks.values())
    return jsonify({"status": "ready" if ok else "not ready", "checks": checks}), \
        200 if ok else 503


@bp.get("/metrics")
def metrics() -> Response | tuple[Response, int]:
    """Prometheus text: counts and ages, no patient data; behind the API token."""
    from intake.health.metrics import render

    st = state()
    if not bearer_matches(request.headers.get("Authorization"), st.api_token):
        return jsonify({"error": "a valid bearer token is required"}), 401
    with st.sessions() as session:
        body = render(session)
    return Response(body, mimetype="text/plain; version=0.0.4")
