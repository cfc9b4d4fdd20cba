"""FHIR JSON responses and OperationOutcome errors of the inbound API.

Diagnostics name the element and the problem, never a value the client sent: the
body is patient data, and error texts end up in client logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

FHIR_JSON = "application/fhir+json"
# Media types a client may send a resource as.
ACCEPTED_BODY_TYPES = frozenset({FHIR_JSON, "application/json"})


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue: an IssueType code, a text, the element at fault."""

    code: str
    diagnostics: str
    expression: str | None = None
    severity: str = "error"

    def to_dict(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code,
                                 "diagnostics": self.diagnostics}
        if self.expression is not None:
            issue["expression"] = [self.expression]
        return issue


class FhirError(Exception):
    """Stop handling the request and answer ``status`` with an OperationOutcome."""

    def __init__(self, status: int, *issues: Issue,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(issues[0].diagnostics if issues else str(status))
        self.status = status
        self.issues = issues
        self.headers = dict(headers or {})


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_dict() for i in issues]}


def fhir_response(resource: Mapping[str, Any], status: int = 200,
                  headers: Mapping[str, str] | None = None) -> Response:
    """``resource`` as ``application/fhir+json`` (UTF-8, Japanese kept readable)."""
    body = json.dumps(resource, ensure_ascii=False, separators=(",", ":"))
    response = Response(body, status=status, mimetype=FHIR_JSON)
    response.headers["Content-Type"] = f"{FHIR_JSON}; charset=utf-8"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def error_response(error: FhirError) -> Response:
    return fhir_response(operation_outcome(*error.issues), error.status, error.headers)


# HTTP status -> (IssueType, text) for errors raised outside the views.
_HTTP_ISSUES: Mapping[int, tuple[str, str]] = {
    400: ("invalid", "the request is malformed"),
    401: ("login", "a valid bearer token is required"),
    403: ("forbidden", "not allowed"),
    404: ("not-found", "no such resource or operation on this server (see /fhir/metadata)"),
    405: ("not-supported", "this interaction is not supported here (see /fhir/metadata)"),
    406: ("not-supported", "only JSON (application/fhir+json) is served"),
    413: ("too-long", "the request body is too large"),
    415: ("not-supported", "send application/fhir+json or application/json"),
    429: ("throttled", "too many requests"),
}


def http_error(exc: HTTPException) -> Response:
    """App-level errors under /fhir (unknown paths, wrong methods, oversized bodies)."""
    status = exc.code or 500
    code, text = _HTTP_ISSUES.get(status, ("processing", exc.name or "error"))
    # 405 keeps its Allow header, so a client learns what the path supports.
    headers = {name: value for name, value in exc.get_headers() if name.lower() == "allow"}
    return error_response(FhirError(status, Issue(code, text), headers=headers))


def internal_error() -> Response:
    # Never echo the exception: it may carry patient data.
    return error_response(FhirError(500, Issue(
        "exception", "internal error; the request was not applied")))
