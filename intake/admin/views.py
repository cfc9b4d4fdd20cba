"""Views of /admin: the audit trail (list, tamper check, downloads) and the users list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.admin import bp, services
from intake.admin.filters import AuditQuery, BadFilter, parse
from intake.admin.i18n import CATALOG
from intake.auth import Principal, current_user, require_roles
from intake.auth.i18n import translator
from intake.auth.web import error_page
from intake.fhirapi.outcome import FHIR_JSON
from intake.kiosk import i18n
from intake.kiosk.web import check_csrf, csrf_token, finish_response
from intake.storage.models import Role, utcnow

TRAIL = ("audit", "trail")  # entity type and id of events about the audit trail itself


@bp.before_request
def _csrf() -> None:
    check_csrf()


@bp.after_request
def _headers(response: BaseResponse) -> BaseResponse:
    return finish_response(response)  # no-store on everything but static files


def _lang() -> str:
    return i18n.negotiate(request.args.get("lang"), request.accept_languages.values())


def _t(lang: str) -> Any:
    return translator(lang, CATALOG)


def _tz() -> ZoneInfo:
    return ZoneInfo(state().settings.display_timezone)


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    lang = _lang()
    return render_template(template, lang=lang, t=_t(lang), csrf_token=csrf_token(),
                           user=current_user(), tz=state().settings.display_timezone,
                           **context), status


# Refusals (403 for another role, 400 for a form without its CSRF token...) get the
# staff pages' common error page: who is signed in, and why, never a request detail.
bp.register_error_handler(HTTPException, error_page)


@bp.errorhandler(BadFilter)
def _bad_filter(exc: BadFilter) -> tuple[str, int]:
    """400 naming the filter and what is wrong with it (never the value typed)."""
    t = _t(_lang())
    label = t(f"f_{exc.name}")
    return _page("admin/error.html", 400, title=t("bad_filter_title"),
                 body=t("bad_filter_body", label=label, name=exc.name,
                        why=t(exc.why, **exc.values)))


def _query() -> AuditQuery:
    return parse(request.args.to_dict(flat=True), _tz())


def _record(principal: Principal, action: str, detail: dict[str, Any]) -> None:
    with state().sessions.begin() as session:
        audit.record(session, actor=principal.name, action=action, entity_type=TRAIL[0],
                     entity_id=TRAIL[1], detail=detail)


def _signed_in() -> Principal:
    principal = current_user()
    assert principal is not None  # require_roles let the request through
    return principal


@bp.get("/")
@bp.get("")  # registered first: url_for gives /admin
@require_roles(Role.ADMIN)
def index() -> tuple[str, int]:
    """The audit trail, newest first, with the tamper check and the downloads."""
    q = _query()
    _record(_signed_in(), "audit.viewed", {"filters": q.given, "page": q.page})
    tz = _tz()
    # Checked on every view, nothing cached: the screen says what the database holds now.
    with state().sessions() as session:
        report = audit.verify(session)
    with state().sessions() as session:
        page = services.event_page(session, q.filters, q.page, tz)
        actions = services.known_actions(session)
    at = (services.local_time(report.first.at, tz)
          if report.first is not None and report.first.at is not None else None)
    return _page("admin/audit.html", report=report, first_at=at, page=page, q=q,
                 actions=actions, active="audit")


@bp.get("/users")
@require_roles(Role.ADMIN)
def users() -> tuple[str, int]:
    """Who has access: name, role, active, locked. Read-only (changes: `intake users`)."""
    tz = _tz()
    with state().sessions() as session:
        rows = services.users(session, utcnow(), tz)
    _record(_signed_in(), "users.viewed", {"rows": len(rows)})
    return _page("admin/users.html", rows=rows, active="users")


def _download_name(ext: str) -> str:
    return f"audit-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.{ext}"


def _attachment(body: Any, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/audit.csv")
@require_roles(Role.ADMIN)
def audit_csv() -> Response:
    """The filtered trail as CSV, oldest first, streamed (UTF-8 with a byte order mark,
    so spreadsheet programs in Japan read it as UTF-8)."""
    q = _query()
    _record(_signed_in(), "audit.exported", {"format": "csv", "filters": q.given})
    sessions = state().sessions

    def rows() -> Iterator[str]:
        yield "\ufeff"
        with sessions() as session:
            yield from audit.export_csv(session, q.filters)

    return _attachment(rows(), "text/csv", _download_name("csv"))  # + charset=utf-8


@bp.get("/audit.fhir.json")
@require_roles(Role.ADMIN)
def audit_fhir() -> Response:
    """The filtered trail as a FHIR R4 Bundle (collection) of AuditEvent resources."""
    q = _query()
    with state().sessions() as session:
        try:
            bundle = audit.export_fhir(session, q.filters)
        except audit.ExportTooLarge as exc:
            raise BadFilter("from", "why_too_many", max=audit.FHIR_EXPORT_MAX,
                            n=exc.count) from None
    _record(_signed_in(), "audit.exported", {"format": "fhir", "filters": q.given,
                                             "events": len(bundle.get("entry", []))})
    return _attachment(json.dumps(bundle, ensure_ascii=False), FHIR_JSON,
                       _download_name("fhir.json"))
