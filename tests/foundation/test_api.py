"""The JSON API: submission, status, idempotency and bad input (nothing stored)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from intake import state
from intake.serve import free_port
from intake.storage.models import AuditEvent, Intake, Job
from support import case
from support.databases import sqlite_only

GOOD = {"answers": case("pub-02")["answers"], "record_number": "MRN-0042"}


def _counts(app: Any) -> tuple[int, int, int]:
    with state(app).sessions() as s:
        return (s.scalar(select(func.count()).select_from(Intake)) or 0,
                s.scalar(select(func.count()).select_from(Job)) or 0,
                s.scalar(select(func.count()).select_from(AuditEvent)) or 0)


@pytest.fixture
def api(make_app: Callable[..., Any], database_url: str) -> Any:
    """An app on SQLite and on PostgreSQL, with no broker (submissions wait for the sweeper)."""
    return make_app(database_url)


def test_submission_is_stored_with_its_pending_job(api: Any) -> None:
    client = api.test_client()
    resp = client.post("/api/intakes", json=GOOD)
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "received"
    assert resp.headers["Location"] == body["status_url"] == f"/api/intakes/{body['id']}"
    assert resp.headers["Cache-Control"] == "no-store"
    with state(api).sessions() as s:
        intake = s.get(Intake, body["id"])
        assert intake is not None
        assert intake.patient_record_number == "MRN-0042"
        assert intake.business_id == body["business_id"]
        qr = intake.questionnaire_response
        assert qr["resourceType"] == "QuestionnaireResponse"
        assert qr["identifier"]["value"] == intake.business_id
        assert [(j.kind, j.state) for j in intake.jobs] == [("triage", "pending")]
    status = client.get(body["status_url"]).get_json()
    assert status["status"] == "received" and status["triage"] is None
    assert status["times"]["received"] is not None
    assert status["delivery"] == {"state": "not_started", "attempts": 0, "last_attempt": None}


def test_same_idempotency_key_returns_the_same_intake(api: Any) -> None:
    client = api.test_client()
    first = client.post("/api/intakes", json=GOOD, headers={"Idempotency-Key": "tablet-7:abc"})
    again = client.post("/api/intakes", json=GOOD, headers={"Idempotency-Key": "tablet-7:abc"})
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = dict(GOOD, record_number="MRN-0043")
    clash = client.post("/api/intakes", json=other, headers={"Idempotency-Key": "tablet-7:abc"})
    assert clash.status_code == 422
    assert "Idempotency-Key" in clash.get_json()["errors"]
    assert _counts(api)[0] == 1


def _oversized() -> dict[str, Any]:
    return {"answers": {"age_years": 40}, "record_number": "M1", "pad": "x" * 70_000}


BAD: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("not json", "{not json", {}, 400, "_body"),
    ("array", "[1,2]", {}, 400, "_body"),
    ("missing answers", json.dumps({"record_number": "M1"}), {}, 400, "answers"),
    ("unknown field", json.dumps({**GOOD, "diagnosis": "x"}), {}, 400, "diagnosis"),
    ("answers not an object", json.dumps({"answers": [1]}), {}, 400, "answers"),
    ("wrong type", json.dumps({"answers": {"age_years": "forty"}}), {}, 400, "age_years"),
    ("bool for int", json.dumps({"answers": {"age_years": True}}), {}, 400, "age_years"),
    ("int for bool", json.dumps({"answers": {"fever": 1}}), {}, 400, "fever"),
    ("unknown question", json.dumps({"answers": {"shoe_size": 42}}), {}, 400, "shoe_size"),
    ("code outside options", json.dumps({"answers": {"pain_side": "UP"}}), {}, 400,
     "pain_side"),
    ("out of range", json.dumps({"answers": {"pain_nrs": 11}}), {}, 400, "pain_nrs"),
    ("bad record number", json.dumps({**GOOD, "record_number": "a b;c"}), {}, 400,
     "record_number"),
    ("record number and walk-in", json.dumps({**GOOD, "walk_in": {
        "family_name": "山田", "given_name": "花子", "birth_date": "1950-01-02",
        "sex": "female"}}), {}, 400, "walk_in"),
    ("bad birth date", json.dumps({"answers": GOOD["answers"], "walk_in": {
        "family_name": "山田", "given_name": "花子", "birth_date": "1950-13-02",
        "sex": "female"}}), {}, 400, "walk_in"),
    ("bad idempotency key", json.dumps(GOOD), {"Idempotency-Key": "has space"}, 400,
     "Idempotency-Key"),
    ("oversized", json.dumps(_oversized()), {}, 413, ""),
    ("form post", "answers=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415,
     "_body"),
]


@sqlite_only
@pytest.mark.parametrize(("label", "body", "headers", "status", "field"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_is_refused_and_nothing_stored(api: Any, label: str, body: str,
                                                 headers: dict[str, str], status: int,
                                                 field: str) -> None:
    client = api.test_client()
    headers = {"Content-Type": "application/json", **headers}
    resp = client.post("/api/intakes", data=body, headers=headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    out = resp.get_json()
    assert isinstance(out, dict) and out["error"]
    if field:
        assert field in json.dumps(out["errors"], ensure_ascii=False)
    assert _counts(api) == (0, 0, 0)


def test_unknown_and_malformed_ids_are_404(client: Any) -> None:
    assert client.get("/api/intakes/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/api/intakes/not-a-uuid").status_code == 404
    assert client.get("/api/nothing").get_json()["error"] == "not found"


def test_walk_in_demographics_are_kept(api: Any) -> None:
    walk_in = {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
               "given_name_kana": "ハナコ", "birth_date": "1950-01-02", "sex": "female"}
    resp = api.test_client().post("/api/intakes",
                                  json={"answers": GOOD["answers"], "walk_in": walk_in})
    assert resp.status_code == 202
    with state(api).sessions() as s:
        intake = s.get(Intake, resp.get_json()["id"])
        assert intake is not None and intake.patient_demographics == walk_in
        assert intake.patient_record_number is None


def test_api_token_when_configured(make_app: Callable[..., Any], sqlite_url: str) -> None:
    client = make_app(sqlite_url, api_token="s3cret-token").test_client()
    assert client.post("/api/intakes", json=GOOD,
                       headers={"Authorization": ""}).status_code == 401
    bad = client.post("/api/intakes", json=GOOD, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    ok = client.post("/api/intakes", json=GOOD,
                     headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 202


def test_api_is_closed_without_configuration(tmp_path: Any, sqlite_url: str) -> None:
    """No token configured: one is generated into the data folder, never an open API."""
    from intake import create_app
    from intake.storage.migrate import upgrade

    upgrade(sqlite_url)
    data = tmp_path / "fresh"
    app = create_app({"data_dir": str(data), "database_url": sqlite_url})
    client = app.test_client()
    assert client.post("/api/intakes", json=GOOD).status_code == 401
    assert client.get("/metrics").status_code == 401
    token_file = data / "api_token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 32
    auth = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/intakes", json=GOOD, headers=auth).status_code == 202
    # A second process (another gunicorn worker) reads the same token.
    again = create_app({"data_dir": str(data), "database_url": sqlite_url})
    assert state(again).api_token == token


def test_submission_succeeds_when_the_broker_is_down(make_app: Callable[..., Any],
                                                     sqlite_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    app = make_app(sqlite_url, redis_url=dead)
    started = time.monotonic()
    resp = app.test_client().post("/api/intakes", json=GOOD)
    assert resp.status_code == 202
    assert time.monotonic() - started < 5
    with state(app).sessions() as s:
        job = s.execute(select(Job)).scalar_one()
        assert job.state == "pending" and job.enqueued_at is None  # left for the sweeper


def test_health_and_readiness(make_app: Callable[..., Any], sqlite_url: str,
                              clean_redis: str) -> None:
    up = make_app(sqlite_url, redis_url=clean_redis).test_client()
    assert up.get("/healthz").get_json() == {"status": "ok"}
    ready = up.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["broker"]["ok"] is True
    down = make_app(sqlite_url, redis_url=f"redis://127.0.0.1:{free_port()}/0").test_client()
    assert down.get("/healthz").status_code == 200
    not_ready = down.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.get_json()["checks"]["broker"]["ok"] is False
    assert not_ready.get_json()["checks"]["database"]["ok"] is True


def test_readiness_fails_without_database(tmp_path: Any, clean_redis: str) -> None:
    from intake import create_app

    app = create_app({"data_dir": str(tmp_path), "redis_url": clean_redis,
                      "database_url": f"postgresql://nobody@127.0.0.1:{free_port()}/none"})
    resp = app.test_client().get("/readyz")
    assert resp.status_code == 503
    checks = resp.get_json()["checks"]
    assert checks["database"]["ok"] is False and checks["broker"]["ok"] is True


def test_metrics_count_states_without_patient_data(make_app: Callable[..., Any],
                                                   sqlite_url: str) -> None:
    app = make_app(sqlite_url, api_token="metrics-token")
    client = app.test_client()
    auth = {"Authorization": "Bearer metrics-token"}
    for _ in range(2):
        client.post("/api/intakes", json=GOOD, headers=auth)
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 401
    text = client.get("/metrics", headers=auth).get_data(as_text=True)
    assert 'intake_intakes{status="received"} 2' in text
    assert 'intake_jobs_pending{kind="triage"} 2' in text
    assert 'intake_jobs_oldest_pending_seconds{kind="triage"}' in text
    assert "MRN" not in text and "calf" not in text
