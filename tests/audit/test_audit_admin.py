"""The admin screen at /admin: only admins see it; it shows the trail newest first with
the tamper check; it downloads CSV and FHIR; viewing and downloading are audited with
who and from where; bad filters get a 400 naming the filter; no patient data anywhere."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select, update

from intake import pipeline, state
from intake.admin.i18n import CATALOG
from intake.audit import Break, BreakKind
from intake.storage.models import AuditEvent, User
from support import case
from support.audit import (
    WALK_IN,
    edit_event,
    record_events,
    sign_in,
    staff_client,
)
from support.databases import sqlite_only

PATHS = ["/admin", "/admin/users", "/admin/audit.csv", "/admin/audit.fhir.json"]


def _latest(app: Any) -> AuditEvent:
    with state(app).sessions() as s:
        return s.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)
                         ).scalar_one()


def _text(resp: Any) -> str:
    return str(resp.get_data(as_text=True))


@sqlite_only
def test_only_admins_get_in(trail_app: Any) -> None:
    anonymous = trail_app.test_client()
    for path in PATHS:
        resp = anonymous.get(path + "?actor=x")
        assert resp.status_code == 303, path
        assert resp.headers["Location"].startswith("/auth/signin?next=")
    for role in ("practitioner", "front_desk"):
        client = staff_client(trail_app, f"{role.replace('_', '-')}-1", role)
        for path in PATHS:
            resp = client.get(path)
            assert resp.status_code == 403, (role, path)
            assert "data-event-id" not in _text(resp) and "data-user" not in _text(resp)
            assert "text/csv" not in resp.content_type
    admin = staff_client(trail_app, "admin-1", "admin")
    for path in PATHS:
        assert admin.get(path).status_code == 200, path
    # The sign-in form sends an admin to /admin.
    fresh = trail_app.test_client()
    resp = sign_in(fresh, "admin-1")
    assert resp.status_code == 303 and resp.headers["Location"] == "/admin"


def test_the_screen_lists_newest_first_with_the_chain_status(trail_app: Any) -> None:
    admin = staff_client(trail_app, "admin-1", "admin")
    ids = record_events(trail_app, 3, actor="alice", source="198.51.100.7")
    page = _text(admin.get("/admin?lang=en"))
    assert 'id="chain-status" data-ok="true"' in page
    assert "No tampering detected" in page
    shown = [int(x) for x in re.findall(r'<tr data-event-id="(\d+)"', page)]
    assert shown == sorted(shown, reverse=True) and set(ids) <= set(shown)
    assert "198.51.100.7" in page and "intake-2" in page
    ja = _text(admin.get("/admin?lang=ja"))
    assert "改ざんは検出されませんでした" in ja
    # Tampering shows at once (nothing cached), naming the first broken event.
    edit_event(trail_app, ids[1], actor="mallory")
    resp = admin.get("/admin?lang=ja")
    page = _text(resp)
    assert resp.status_code == 200
    assert f'data-ok="false" data-event-id="{ids[1]}"' in page
    assert "改ざんを検出しました" in page and f"記録 #{ids[1]}" in page
    assert f"event {ids[1]} (recorded" in page


def test_paging(trail_app: Any) -> None:
    admin = staff_client(trail_app, "admin-1", "admin")
    record_events(trail_app, 55, actor="pager")
    first = _text(admin.get("/admin?actor=pager&lang=en"))
    ids1 = [int(x) for x in re.findall(r'<tr data-event-id="(\d+)"', first)]
    assert len(ids1) == 50 and "1–50 of 55" in first and 'rel="next"' in first
    second = _text(admin.get("/admin?actor=pager&page=2&lang=en"))
    ids2 = [int(x) for x in re.findall(r'<tr data-event-id="(\d+)"', second)]
    assert len(ids2) == 5 and max(ids2) < min(ids1) and 'rel="prev"' in second
    assert "No events match" in _text(admin.get("/admin?actor=pager&page=3&lang=en"))


@sqlite_only
def test_viewing_and_exporting_are_audited(trail_app: Any) -> None:
    admin = staff_client(trail_app, "admin-1", "admin")
    record_events(trail_app, 2, actor="alice")
    admin.get("/admin?actor=alice&from=2026-01-01&lang=en")
    viewed = _latest(trail_app)
    assert (viewed.action, viewed.actor, viewed.source) == ("audit.viewed", "admin-1",
                                                            "127.0.0.1")
    assert viewed.detail == {"filters": ["from", "actor"], "page": 1}
    resp = admin.get("/admin/audit.csv?entity=intake-1")
    body = _text(resp)
    exported = _latest(trail_app)
    assert (exported.action, exported.actor, exported.source) == (
        "audit.exported", "admin-1", "127.0.0.1")
    assert exported.detail == {"format": "csv", "filters": ["entity"]}
    rows = list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))
    assert [r[5] for r in rows[1:]] == ["intake-1"]
    admin.get("/admin/audit.fhir.json?actor=alice")
    fhir = _latest(trail_app)
    assert fhir.action == "audit.exported"
    assert fhir.detail == {"format": "fhir", "filters": ["actor"], "events": 2}
    # The names of the filters are recorded, never what was typed into them.
    for ev in (viewed, exported, fhir):
        assert "alice" not in json.dumps(ev.detail) and "intake-1" not in json.dumps(ev.detail)
    admin.get("/admin/users")
    assert _latest(trail_app).action == "users.viewed"


@sqlite_only
def test_downloads_are_attachments_never_stored(trail_app: Any) -> None:
    admin = staff_client(trail_app, "admin-1", "admin")
    record_events(trail_app, 2)
    csv_resp = admin.get("/admin/audit.csv")
    assert csv_resp.status_code == 200
    assert csv_resp.content_type == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="audit-\d{8}T\d{6}Z\.csv"',
                        csv_resp.headers["Content-Disposition"])
    assert csv_resp.headers["Cache-Control"] == "no-store"
    body = _text(csv_resp)
    assert body.startswith("\ufeffid,time_utc,actor,")
    fhir_resp = admin.get("/admin/audit.fhir.json")
    assert fhir_resp.status_code == 200
    assert fhir_resp.content_type == "application/fhir+json"
    assert re.fullmatch(r'attachment; filename="audit-\d{8}T\d{6}Z\.fhir\.json"',
                        fhir_resp.headers["Content-Disposition"])
    assert fhir_resp.headers["Cache-Control"] == "no-store"
    bundle = json.loads(_text(fhir_resp))
    Bundle.model_validate(bundle)
    assert bundle["type"] == "collection"
    assert admin.get("/admin").headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("query", "name", "label"), [
    ("from=2026-13-01", "from", "開始日"),
    ("to=yesterday", "to", "終了日"),
    ("from=2026-11-22&to=2026-11-21", "to", "終了日"),
    ("actor=" + "秘" * 101, "actor", "実行者"),
    ("action=DROP%20TABLE%20users", "action", "操作"),
    ("entity=" + "x" * 65, "entity", "対象ID"),
    ("page=0", "page", "ページ"),
    ("page=two", "page", "ページ"),
    ("from=0001-01-01", "from", "開始日"),
])
def test_a_bad_filter_is_a_400_naming_it(sqlite_app: Any, query: str, name: str,
                                         label: str) -> None:
    admin = staff_client(sqlite_app, "admin-1", "admin")
    before = _latest(sqlite_app).id
    for path in ("/admin", "/admin/audit.csv", "/admin/audit.fhir.json"):
        resp = admin.get(f"{path}?{query}&lang=ja")
        page = _text(resp)
        assert resp.status_code == 400, (path, resp.status_code)
        assert f"「{label}」（{name}）" in page
        assert "秘" * 101 not in page and "DROP TABLE" not in page  # never echoed
    assert _latest(sqlite_app).id == before  # a refused request records nothing
    en = _text(admin.get(f"/admin?{query}&lang=en"))
    assert f"({name})" in en and "A filter is not valid" in en


def test_dates_are_days_in_the_clinics_time_zone(trail_app: Any) -> None:
    """Asia/Tokyo is UTC+9: 14:59:59 UTC is still the 21st there, 15:00 the 22nd."""
    admin = staff_client(trail_app, "admin-1", "admin")
    late, early = record_events(trail_app, 2, actor="tz")
    edit_event(trail_app, late, at=datetime(2026, 11, 21, 14, 59, 59, tzinfo=UTC))
    edit_event(trail_app, early, at=datetime(2026, 11, 21, 15, 0, 0, tzinfo=UTC))

    def ids(query: str) -> list[int]:
        body = _text(admin.get(f"/admin/audit.csv?actor=tz&{query}")).removeprefix("\ufeff")
        return [int(r[0]) for r in list(csv.reader(io.StringIO(body)))[1:]]

    assert ids("from=2026-11-22") == [early]
    assert ids("to=2026-11-21") == [late]
    assert ids("from=2026-11-21&to=2026-11-22") == [late, early]
    assert ids("from=2026-11-23") == []
    page = _text(admin.get("/admin?actor=tz&lang=en"))
    assert "2026-11-21 23:59:59" in page and "2026-11-22 00:00:00" in page


def test_users_list_is_read_only_and_shows_access(trail_app: Any) -> None:
    admin = staff_client(trail_app, "admin-1", "admin")
    staff_client(trail_app, "dr-ito", "practitioner")
    staff_client(trail_app, "desk-ono", "front_desk")
    with state(trail_app).sessions.begin() as s:
        s.execute(update(User).where(User.name == "desk-ono").values(
            active=False, locked_until=datetime.now(UTC) + timedelta(minutes=10)))
    page = _text(admin.get("/admin/users?lang=en"))
    rows = dict(re.findall(r'<tr data-user="([^"]+)">(.*?)</tr>', page, re.S))
    assert set(rows) == {"admin-1", "dr-ito", "desk-ono"}
    assert "practitioner" in rows["dr-ito"] and "active" in rows["dr-ito"]
    assert "none" in rows["dr-ito"]
    assert "disabled" in rows["desk-ono"] and "locked until" in rows["desk-ono"]
    assert "intake users create" in page and "read-only" in page
    assert "<form" not in page.split("<main", 1)[1]  # nothing to submit (sign-out: header)
    assert "argon2" not in page
    assert admin.post("/admin/users").status_code in (400, 405)


@sqlite_only
def test_no_patient_data_in_the_trail_exports_or_screen(trail_app: Any) -> None:
    """A walk-in's name, kana and birth date go into the intake, never into the trail."""
    admin = staff_client(trail_app, "admin-1", "admin")
    with trail_app.app_context(), state(trail_app).sessions.begin() as s:
        submitted = pipeline.submit_intake(s, answers=case("pub-03")["answers"],
                                           source="api", demographics=WALK_IN)
        intake_id = submitted.intake.id
    with trail_app.app_context(), state(trail_app).sessions.begin() as s:
        pipeline.run_triage(s, intake_id)
    outputs = {
        "screen": _text(admin.get("/admin?lang=ja")),
        "screen (filtered)": _text(admin.get(f"/admin?entity={intake_id}&lang=en")),
        "csv": _text(admin.get("/admin/audit.csv")),
        "fhir": _text(admin.get("/admin/audit.fhir.json")),
    }
    assert intake_id in outputs["csv"] and intake_id in outputs["fhir"]  # ids are there
    assert "intake.triaged" in outputs["screen (filtered)"]
    for where, text in outputs.items():
        for value in WALK_IN.values():
            if value in ("female",):
                continue  # a code, not patient-identifying on its own
            assert value not in text, (where, value)


def test_every_finding_has_a_text_in_both_languages() -> None:
    """Whatever verify finds, the screen can say it in Japanese and English."""
    keys = {Break(kind, 1).key for kind in BreakKind if kind is not BreakKind.INCIDENT}
    for info in ({"kind": "anchor_missing"}, {"kind": "anchor_altered"},
                 {"kind": "head_mismatch", "found_last_id": 4, "anchor_last_id": 6},
                 {"kind": "head_mismatch", "found_last_id": 6, "anchor_last_id": 6},
                 {"kind": "head_mismatch", "found_last_id": 8, "anchor_last_id": 6}):
        keys.add(Break(BreakKind.INCIDENT, 1, info=info).key)
    assert len(keys) == len(BreakKind) - 1 + 5
    for key in keys:
        ja, en = CATALOG[f"brk_{key}"]
        assert "{id}" in ja and "{id}" in en, key
    for key, (ja, en) in CATALOG.items():
        assert ja.strip() and en.strip() and ja != en or key == "col_id", key
