"""A practitioner's changes reach the record system through the real worker: acknowledge,
department change, examination findings (re-triage) and review, each written back to the
real Medplum server once, with the intake's resources never duplicated, including when a
write-back first meets a server error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from intake import constants, state
from intake.auth.users import create_user
from intake.review import actions
from intake.storage.models import utcnow
from support import case, wait_for
from support.fhir import FhirTestServer

pytestmark = pytest.mark.slow


def _api(client: Any, intake_id: str) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"/api/intakes/{intake_id}").get_json()
    return body


def _settled(client: Any, intake_id: str) -> dict[str, Any] | None:
    body = _api(client, intake_id)
    return body if body["delivery"]["state"] in ("delivered", "failed") else None


@pytest.fixture
def review_stack(make_app: Callable[..., Any], sqlite_url: str, clean_redis: str,
                 start_worker: Callable[..., Any], fhir_server: FhirTestServer) -> Any:
    settings = {"fhir_base_url": fhir_server.base_url, "fhir_timeout": "5",
                "retry_backoff_cap": "2"}
    app = make_app(sqlite_url, redis_url=clean_redis, **settings)
    start_worker(sqlite_url, clean_redis, **settings)
    with state(app).sessions.begin() as s:
        user = create_user(s, "dr.worker", "practitioner", "a long test password",
                           actor="test", now=utcnow())
        s.flush()
        actor = actions.Actor(user.id, user.name)
    return app, actor


def _act(app: Any, fn: Callable[..., actions.ActionDone], *args: Any, **kw: Any) -> None:
    st = state(app)
    with st.sessions.begin() as s:
        done = fn(s, *args, now=utcnow(), **kw)
    assert actions.dispatch(st, done)


def _one(server: FhirTestServer, kind: str, ident: str) -> dict[str, Any]:
    found = server.search(kind, f"identifier={constants.IDENTIFIER_SYSTEM_INTAKE}|{ident}")
    assert len(found) == 1, (kind, ident, len(found))
    return found[0]


def test_review_actions_are_written_back_once(review_stack: Any,
                                              fhir_server: FhirTestServer) -> None:
    app, doctor = review_stack
    client = app.test_client()
    answers = dict(case("pub-02")["answers"], calf_pain_tender=False)  # DVT, Wells 1
    resp = client.post("/api/intakes", json={"answers": answers,
                                             "walk_in": {"family_name": "佐藤",
                                                         "given_name": "一郎",
                                                         "family_name_kana": "サトウ",
                                                         "given_name_kana": "イチロウ",
                                                         "birth_date": "1960-04-01",
                                                         "sex": "male"}})
    assert resp.status_code == 202
    intake_id = resp.get_json()["id"]
    body = wait_for(lambda: _settled(client, intake_id), 60, 0.2, "first delivery")
    assert body["delivery"]["state"] == "delivered"
    assert body["triage"]["wells"]["likely"] is False
    bid = body["business_id"]
    first_flag = _one(fhir_server, "Flag", f"{bid}/flag/DVT_SUSPECT")
    assert first_flag["status"] == "active"

    _act(app, actions.acknowledge_flag, intake_id, "DVT_SUSPECT", actor=doctor, revision=1)
    wait_for(lambda: _one(fhir_server, "Flag", f"{bid}/flag/DVT_SUSPECT")["status"]
             == "inactive", 60, 0.2, "flag acknowledged in the record system")
    _act(app, actions.change_department, intake_id, "cardiology", "血管外科は本日休診",
         actor=doctor, revision=1)
    wait_for(lambda: _one(fhir_server, "ServiceRequest", f"{bid}/service-request")
             ["performerType"]["coding"][0]["code"] == "cardiology", 60, 0.2,
             "department written back")
    _act(app, actions.add_exam_findings, intake_id,
         {"staff_collateral_veins": True, "staff_alt_dx_as_likely": False},
         actor=doctor, revision=1)
    final = wait_for(lambda: (lambda b: b if b["revision"] == 2 and b["triage"]
                              and b["triage"]["revision"] == 2
                              and b["delivery"]["state"] == "delivered" else None)(
        _api(client, intake_id)), 60, 0.2, "re-triage delivered")
    assert final["triage"]["wells"] == {"score": 2, "likely": True, "exam_missing": True}
    risk = _one(fhir_server, "RiskAssessment", f"{bid}/risk")
    assert risk["status"] == "amended"
    assert "2" in risk["note"][0]["text"]
    assert _one(fhir_server, "QuestionnaireResponse", bid)["status"] == "amended"
    # Still acknowledged after the re-triage, and still raised since the first result.
    flag = _one(fhir_server, "Flag", f"{bid}/flag/DVT_SUSPECT")
    assert flag["status"] == "inactive"
    assert flag["period"]["start"] == first_flag["period"]["start"]

    # The next transaction (not this test's searches) meets a 503.
    fhir_server.faults({"status": 503, "retryAfter": 1, "method": "POST", "path": ""})
    _act(app, actions.mark_reviewed, intake_id, actor=doctor, revision=2)
    wait_for(lambda: _one(fhir_server, "Task", f"{bid}/task")["status"] == "completed",
             60, 0.2, "review written back after a 503")
    wait_for(lambda: _settled(client, intake_id), 30, 0.2, "settled")

    # Exactly one of each resource of the intake, after five deliveries.
    for kind, ident in (("QuestionnaireResponse", bid), ("RiskAssessment", f"{bid}/risk"),
                        ("Flag", f"{bid}/flag/DVT_SUSPECT"),
                        ("ServiceRequest", f"{bid}/service-request"),
                        ("Task", f"{bid}/task"), ("Patient", f"{bid}/patient")):
        _one(fhir_server, kind, ident)
    assert fhir_server.count("Flag") == 1 and fhir_server.count("Patient") == 1
    request = _one(fhir_server, "ServiceRequest", f"{bid}/service-request")
    assert "血管外科は本日休診" in request["note"][0]["text"]
    with state(app).sessions() as s:
        from sqlalchemy import select

        from intake.storage.models import DeliveryAttempt

        outcomes = [a.outcome for a in s.execute(
            select(DeliveryAttempt).order_by(DeliveryAttempt.id)).scalars()]
    assert outcomes.count("transient") == 1 and outcomes[-1] == "delivered"
