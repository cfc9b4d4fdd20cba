"""Views of the inbound FHIR API. Thin: parse the request, call a service, answer FHIR.

Status codes:

* ``POST QuestionnaireResponse``: **202 Accepted** with ``Location`` and an
  informational OperationOutcome. Not 201: the triage, which is what the client is
  after, has not run yet; 202 says so, and the Location serves the stored response at
  once. An idempotent repeat answers **200** with the first Location.
* 400 structure, 401 token, 404 unknown id or path, 405 method, 406 ``Accept`` or
  ``_format`` that is not JSON, 409 identifier reused with other content, 413 body
  too large, 415 body not FHIR JSON, 422 content: always an OperationOutcome.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from flask import Response, request, url_for
from werkzeug.datastructures import MultiDict

from intake import state
from intake.bearer import bearer_matches
from intake.clinical import load_questionnaire
from intake.constants import QUESTIONNAIRE_ID, QUESTIONNAIRE_URL, QUESTIONNAIRE_VERSION
from intake.fhirapi import bp, services
from intake.fhirapi.capability import DEFAULT_COUNT, MAX_COUNT, capability_statement
from intake.fhirapi.outcome import (
    ACCEPTED_BODY_TYPES,
    FHIR_JSON,
    FhirError,
    Issue,
    error_response,
    fhir_response,
    operation_outcome,
)
from intake.fhirapi.validation import (
    Token,
    parse_if_none_exist,
    parse_json,
    parse_token,
    validate_questionnaire_response,
)

ACTOR = "fhir-api"
_JSON_FORMATS = frozenset({"json", "application/json", FHIR_JSON, "application/json+fhir"})
_COMMON_PARAMS = frozenset({"_format", "_pretty"})
_FORM = "application/x-www-form-urlencoded"

bp.register_error_handler(FhirError, error_response)


def _unauthorized(text: str) -> FhirError:
    return FhirError(401, Issue("login", text),
                     headers={"WWW-Authenticate": 'Bearer realm="fhir"'})


@bp.before_request
def _negotiate_and_authenticate() -> None:
    """JSON only; then the bearer token (compared in constant time), except for
    the CapabilityStatement, which FHIR clients read before they authenticate."""
    fmt = request.args.get("_format")
    if fmt is not None and fmt.strip().lower() not in _JSON_FORMATS:
        raise FhirError(406, Issue("not-supported", "only _format=json is supported",
                                   "_format"))
    if request.accept_mimetypes and request.accept_mimetypes.best_match(
            [FHIR_JSON, "application/json"]) is None:
        raise FhirError(406, Issue("not-supported", "only application/fhir+json is served",
                                   "Accept"))
    if request.endpoint == "fhirapi.metadata":
        return
    token = state().settings.fhir_api_token
    if token is None:
        raise _unauthorized("the FHIR API is disabled: no token is configured "
                            "(INTAKE_FHIR_API_TOKEN)")
    if not bearer_matches(request.headers.get("Authorization"), token):
        raise _unauthorized("a valid bearer token is required")


def _base_url() -> str:
    """The FHIR base as clients reach it, for absolute URLs (fullUrl, implementation)."""
    configured = state().settings.public_base_url
    if configured:
        return f"{configured}/fhir"
    return url_for("fhirapi.metadata", _external=True).removesuffix("/metadata")


def _not_found(resource_type: str) -> FhirError:
    return FhirError(404, Issue("not-found", f"no {resource_type} with this id"))


# --- metadata and Questionnaire --------------------------------------------


@bp.get("/metadata")
def metadata() -> Response:
    from intake.delivery.service import plugin_version

    return fhir_response(capability_statement(_base_url(), plugin_version()))


@bp.get("/Questionnaire/<qid>")
def read_questionnaire(qid: str) -> Response:
    if qid != QUESTIONNAIRE_ID:
        raise _not_found("Questionnaire")
    return fhir_response(load_questionnaire())


@bp.get("/Questionnaire")
def search_questionnaire() -> Response:
    params = _search_params(request.args.items(multi=True), {"url", "version"})
    matches = True
    if "url" in params:
        url, bar, version = params["url"].partition("|")
        matches = url == QUESTIONNAIRE_URL and (not bar or version == QUESTIONNAIRE_VERSION)
    if "version" in params:
        matches = matches and params["version"] == QUESTIONNAIRE_VERSION
    entries = []
    if matches:
        entries.append({"fullUrl": f"{_base_url()}/Questionnaire/{QUESTIONNAIRE_ID}",
                        "resource": load_questionnaire(), "search": {"mode": "match"}})
    return fhir_response({"resourceType": "Bundle", "type": "searchset",
                          "total": len(entries), "entry": entries})


# --- QuestionnaireResponse --------------------------------------------------


@bp.post("/QuestionnaireResponse")
def create_questionnaire_response() -> Response:
    """Accept a response: checked, stored as an intake with its pending triage job in
    one transaction, then enqueued. Nothing is stored when any check fails."""
    st = state()
    if request.mimetype not in ACCEPTED_BODY_TYPES:
        raise FhirError(415, Issue("not-supported", "send the resource as "
                                   "application/fhir+json (or application/json)",
                                   "Content-Type"))
    header = request.headers.get("If-None-Exist")
    condition = parse_if_none_exist(header) if header is not None else None
    body = parse_json(request.get_data(cache=False))  # 413 when over the limit
    inbound = validate_questionnaire_response(body, st.settings.record_number_system)
    accepted = services.accept(st.sessions, st.celery, inbound, condition, actor=ACTOR)

    location = url_for("fhirapi.read_questionnaire_response", rid=accepted.intake_id)
    risk = f"RiskAssessment/{accepted.intake_id}"
    if accepted.created:
        text = (f"accepted; the triage runs now and will be readable as {risk} "
                "(triage support, not a diagnosis)")
        status = 202
    else:
        text = f"already accepted; nothing was created. The triage is {risk}"
        status = 200
    return fhir_response(operation_outcome(Issue("informational", text, severity="information")),
                         status, {"Location": location})


@bp.get("/QuestionnaireResponse/<rid>")
def read_questionnaire_response(rid: str) -> Response:
    st = state()
    intake_id = services.intake_id_or_none(rid)
    resource = None if intake_id is None else services.read_questionnaire_response(
        st.sessions, st.settings, intake_id, actor=ACTOR)
    if resource is None:
        raise _not_found("QuestionnaireResponse")
    return fhir_response(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})


# --- RiskAssessment ---------------------------------------------------------


@bp.get("/RiskAssessment/<rid>")
def read_risk_assessment(rid: str) -> Response:
    st = state()
    intake_id = services.intake_id_or_none(rid)
    resource = None if intake_id is None else services.read_risk_assessment(
        st.sessions, st.settings, intake_id, actor=ACTOR)
    if resource is None:
        raise FhirError(404, Issue("not-found", "no RiskAssessment with this id (the triage "
                                                "may still be running)"))
    return fhir_response(resource, headers={"ETag": f'W/"{resource["meta"]["versionId"]}"'})


@bp.get("/RiskAssessment")
def search_risk_assessment() -> Response:
    return _risk_search(request.args.items(multi=True))


@bp.post("/RiskAssessment/_search")
def search_risk_assessment_post() -> Response:
    """Search with the criteria in a form body, so record numbers stay out of URLs."""
    if request.mimetype != _FORM:
        raise FhirError(415, Issue("not-supported", f"send the search as {_FORM}",
                                   "Content-Type"))
    form: MultiDict[str, str] = request.form
    return _risk_search([*request.args.items(multi=True), *form.items(multi=True)])


def _risk_search(items: Iterable[tuple[str, str]]) -> Response:
    st = state()
    params = _search_params(items, {"subject:identifier", "identifier", "_count"})
    if "subject:identifier" not in params and "identifier" not in params:
        raise FhirError(400, Issue("required", "give subject:identifier=<system>|<record "
                                   "number> or identifier=<system>|<value>"))
    search = services.RiskSearch(
        subject=_token_param(params, "subject:identifier"),
        identifier=_token_param(params, "identifier"),
        count=_count_param(params),
    )
    total, resources = services.search_risk_assessments(st.sessions, st.settings, search,
                                                        actor=ACTOR)
    base = _base_url()
    return fhir_response({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        # No self link: it would repeat the record number in a URL built here.
        "entry": [{"fullUrl": f"{base}/RiskAssessment/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources],
    })


_PRINTABLE = re.compile(r"[^\x21-\x7e]")


def _search_params(items: Iterable[tuple[str, str]], allowed: set[str]) -> dict[str, str]:
    """Each parameter at most once; an unknown one is refused (strict handling), so a
    client never gets more results than it asked for because a filter was dropped."""
    out: dict[str, str] = {}
    for name, value in items:
        if name in _COMMON_PARAMS:
            continue
        shown = _PRINTABLE.sub("?", name)[:40]
        if name not in allowed:
            raise FhirError(400, Issue("not-supported", f"search parameter {shown!r} is not "
                                       "supported (see /fhir/metadata)", shown))
        if name in out:
            raise FhirError(400, Issue("not-supported", f"search parameter {shown!r} is given "
                                       "more than once", shown))
        out[name] = value
    return out


def _token_param(params: dict[str, str], name: str) -> Token | None:
    if name not in params:
        return None
    try:
        return parse_token(params[name])
    except ValueError as exc:
        raise FhirError(400, Issue("invalid", f"{name}: {exc}", name)) from None


def _count_param(params: dict[str, str]) -> int:
    raw = params.get("_count")
    if raw is None:
        return DEFAULT_COUNT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= MAX_COUNT):
        raise FhirError(400, Issue("value", f"_count must be a whole number from 1 to "
                                   f"{MAX_COUNT}", "_count"))
    return int(raw)
