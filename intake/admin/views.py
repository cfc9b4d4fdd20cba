"""Views of /admin: the audit trail (list, tamper check, downloads), the users list, and
the enrolled devices (list, add, new code, revoke)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, redirect, render_template, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from intake import audit, state
from intake.admin import bp, services
from intake.admin.filters import AuditQuery, BadFilter, parse
from intake.admin.i18n import ADMIN
from intake.devices import services as devices_domain
from intake.fhirapi.outcome import FHIR_JSON
from intake.live.notify import publish
from intake.storage.models import Device, DeviceKind, utcnow
from intake.web import Principal, csrf_token, current_user, staff_lang

TRAIL = ("audit", "trail")  # entity type and id of events about the audit trail itself

# The blueprint (intake.admin) is a staff blueprint: every view below is for admins only,
# CSRF-checked, no-store on everything but static files; refusals (403 for another role,
# 400 for a form without its CSRF token...) get the staff pages' common error page: who
# is signed in, and why, never a request detail.


def _t(lang: str) -> Any:
    return ADMIN.translator(lang)


def _tz() -> ZoneInfo:
    return ZoneInfo(state().settings.display_timezone)


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    lang = staff_lang()
    return render_template(template, lang=lang, t=_t(lang), csrf_token=csrf_token(),
                           user=current_user(), tz=state().settings.display_timezone,
                           **context), status


@bp.errorhandler(BadFilter)
def _bad_filter(exc: BadFilter) -> tuple[str, int]:
    """400 naming the filter and what is wrong with it (never the value typed)."""
    t = _t(staff_lang())
    label = t(f"f_{exc.name}")
    return _page("admin/error.html", 400, title=t("bad_filter_title"),
                 body=t("bad_filter_body", label=label, name=exc.name,
                        why=t(exc.why, **exc.values)))


def _query() -> AuditQuery:
    return parse(request.args.to_dict(flat=True), _tz())


def _record(principal: Principal, action: str, detail: dict[str, Any],
            entity: tuple[str, str] = TRAIL) -> None:
    with state().sessions.begin() as session:
        audit.record(session, actor=principal.name, action=action, entity_type=entity[0],
                     entity_id=entity[1], detail=detail)


@bp.get("/")
@bp.get("")  # registered first: url_for gives /admin
def index() -> tuple[str, int]:
    """The audit trail, newest first, with the tamper check and the downloads."""
    q = _query()
    _record(current_user(), "audit.viewed", {"filters": q.given, "page": q.page})
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
def users() -> tuple[str, int]:
    """Who has access: name, role, active, locked. Read-only (changes: `intake users`)."""
    tz = _tz()
    with state().sessions() as session:
        rows = services.users(session, utcnow(), tz)
    _record(current_user(), "users.viewed", {"rows": len(rows)})
    return _page("admin/users.html", rows=rows, active="users")


def _download_name(ext: str) -> str:
    return f"audit-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.{ext}"


def _attachment(body: Any, mimetype: str, name: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.get("/audit.csv")
def audit_csv() -> Response:
    """The filtered trail as CSV, oldest first, streamed (UTF-8 with a byte order mark,
    so spreadsheet programs in Japan read it as UTF-8)."""
    q = _query()
    _record(current_user(), "audit.exported", {"format": "csv", "filters": q.given})
    sessions = state().sessions

    def rows() -> Iterator[str]:
        yield "\ufeff"
        with sessions() as session:
            yield from audit.export_csv(session, q.filters)

    return _attachment(rows(), "text/csv", _download_name("csv"))  # + charset=utf-8


@bp.get("/audit.fhir.json")
def audit_fhir() -> Response:
    """The filtered trail as a FHIR R4 Bundle (collection) of AuditEvent resources."""
    q = _query()
    with state().sessions() as session:
        try:
            bundle = audit.export_fhir(session, q.filters)
        except audit.ExportTooLarge as exc:
            raise BadFilter("from", "why_too_many", max=audit.FHIR_EXPORT_MAX,
                            n=exc.count) from None
    _record(current_user(), "audit.exported", {"format": "fhir", "filters": q.given,
                                               "events": len(bundle.get("entry", []))})
    return _attachment(json.dumps(bundle, ensure_ascii=False), FHIR_JSON,
                       _download_name("fhir.json"))


# --- enrolled devices -------------------------------------------------------------------
# The domain (intake.devices.services) does the work and audits it with the admin's name;
# these views find the device by id, name a refusal in the admin's language, and show a
# new one-time code once, in the response to the POST that made it: never in a URL, a
# cookie, a log line or the database (which keeps only its hash).

DEVICES = ("device", "list")  # entity type and id of the list's own audit events
KIND_HOME = {DeviceKind.BOARD.value: "/board", DeviceKind.TABLET.value: "/kiosk"}


def _devices_page(mode: str, status: int = 200, **context: Any) -> tuple[str, int]:
    return _page("admin/devices.html", status, mode=mode, active="devices",
                 kinds=list(KIND_HOME), name_max=devices_domain.NAME_MAX, **context)


@bp.errorhandler(services.DeviceRefused)
def _device_refused(exc: services.DeviceRefused) -> tuple[str, int]:
    """The refusal's status, with a page naming the problem; for a new device, the form
    again with what was typed."""
    t = _t(staff_lang())
    form = None
    if exc.title == "add_failed_title":
        form = {"name": request.form.get("name", "")[:200],
                "kind": request.form.get("kind", "")}
    return _devices_page("error", exc.status, title=t(exc.title),
                         why=t(exc.why, **exc.values), form=form)


def _issued_page(issued: devices_domain.Issued, *, new: bool) -> tuple[str, int]:
    """The one-time code, once: large, as 1234-5678, with its expiry and where to type it."""
    settings = state().settings
    base = (settings.public_base_url or request.url_root).rstrip("/")
    path = KIND_HOME[issued.device.kind]
    code = issued.code
    return _devices_page("issued", new=new, device_name=issued.device.name,
                         device_kind=issued.device.kind, code=f"{code[:4]}-{code[4:]}",
                         expires=services.local_time(issued.expires_at, _tz()),
                         minutes=int(devices_domain.CODE_LIFETIME.total_seconds() // 60),
                         path=path, url=base + path)


@bp.get("/devices")
def devices() -> tuple[str, int]:
    """Every device with its state and history, the form to add one, and per device a
    new code and revocation."""
    tz = _tz()
    with state().sessions() as session:
        rows = services.devices(session, utcnow(), tz)
    _record(current_user(), "devices.viewed", {"rows": len(rows)}, entity=DEVICES)
    # After a revocation (post, redirect, get): a notice over that device's row.
    revoked = request.args.get("revoked", "")
    wanted = int(revoked) if revoked.isascii() and revoked.isdigit() and len(revoked) < 11 \
        else None
    done = next((r for r in rows if r.id == wanted and r.state == "revoked"), None)
    return _devices_page("list", rows=rows, revoked=done)


@bp.post("/devices")
def device_add() -> tuple[str, int]:
    """Add a device (name, kind) and show its first one-time code."""
    name = request.form.get("name", "")
    kind = request.form.get("kind", "")
    actor = current_user().name
    try:
        with state().sessions.begin() as session:
            services.check_new_device(session, name, kind)
            issued = devices_domain.add(session, name, kind, actor=actor, now=utcnow())
    except devices_domain.DeviceError:
        # The checks above name every refusal the domain makes today; this stays a
        # clear 400 should it gain another.
        raise services.DeviceRefused(400, "add_failed_title", "err_refused") from None
    except IntegrityError:
        # The same name added at the same moment by another admin.
        raise services.DeviceRefused(409, "add_failed_title", "err_duplicate",
                                     name=devices_domain.normalise_name(name)) from None
    return _issued_page(issued, new=True)


@bp.post("/devices/<int:device_id>/code")
def device_code(device_id: int) -> tuple[str, int]:
    """A new one-time code for a device (a new browser, a replaced tablet, or after a
    revocation); an earlier unused code stops working."""
    actor = current_user().name
    with state().sessions.begin() as session:
        device = services.device_by_id(session, device_id, "code_failed_title")
        issued = devices_domain.new_code(session, device.name, actor=actor, now=utcnow())
    return _issued_page(issued, new=False)


def _revocable(session: Session, device_id: int, *, lock: bool = False) -> Device:
    """The device to revoke, or a refusal: unknown (404), or nothing left to revoke (409:
    revoked, and no code issued since)."""
    device = services.device_by_id(session, device_id, "revoke_failed_title", lock=lock)
    if devices_domain.state_of(device, utcnow()) == "revoked":
        raise services.DeviceRefused(409, "revoke_failed_title", "err_already_revoked",
                                     name=device.name)
    return device


def _confirm_page(device_id: int) -> tuple[str, int]:
    with state().sessions() as session:
        device = _revocable(session, device_id)
        row = next(r for r in services.devices(session, utcnow(), _tz()) if r.id == device.id)
    return _devices_page("confirm", row=row)


@bp.get("/devices/<int:device_id>/revoke")
def device_revoke_confirm(device_id: int) -> tuple[str, int]:
    """Ask before revoking (a page of its own, so it works without script)."""
    return _confirm_page(device_id)


@bp.post("/devices/<int:device_id>/revoke")
def device_revoke(device_id: int) -> BaseResponse | tuple[str, int]:
    """Revoke a device at once: its token and any unused code are cleared, and the live
    process is told to close its open streams. Without the confirmation page's
    ``confirm=yes`` that page is shown instead, and nothing changes."""
    if request.form.get("confirm") != "yes":
        return _confirm_page(device_id)
    actor = current_user().name
    st = state()
    with st.sessions.begin() as session:
        device = _revocable(session, device_id, lock=True)
        revoked_id = devices_domain.revoke(session, device.name, actor=actor,
                                           now=utcnow()).id
    # After the commit, so the live process finds the revocation when it looks.
    publish(st.settings.redis_url, "device", device=revoked_id)
    return redirect(f"/admin/devices?lang={staff_lang()}&revoked={revoked_id}", 303)
