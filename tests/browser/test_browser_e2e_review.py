"""The whole practitioner path in Chromium, end to end, against the real FHIR server:
a DVT intake submitted through the JSON API appears live on the worklist; the
practitioner opens it, acknowledges the flag, changes the department with a reason and
enters examination findings that raise the Wells score to "likely"; every change is
written back, once, to the Medplum test server by the real worker."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from intake import constants, state
from intake.auth.users import create_user
from intake.storage.models import utcnow
from support import case, wait_for
from support.browser import Audit, serve_behind_live, shoot
from support.fhir import FhirTestServer, start_server
from support.processes import WorkerProcess

pytestmark = pytest.mark.slow

PASSWORD = "end to end password 9"
DESKTOP = {"width": 1440, "height": 900}
# DVT from a one-sided calf swelling alone: Wells 1 ("unlikely") until examined.
DVT = dict(case("pub-02")["answers"], calf_pain_tender=False)


@pytest.fixture(scope="module")
def ehr_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The FHIR server, a worker delivering to it, and the web app over HTTP."""
    from intake.serve import start_private_redis
    from intake.storage.migrate import upgrade

    tmp = tmp_path_factory.mktemp("e2e")
    fhir = start_server(log_path=tmp / "fhir.log")
    redis_proc, redis_url = start_private_redis(tmp / "data")
    database_url = f"sqlite:///{tmp / 'intake.db'}"
    upgrade(database_url)
    common = {"data_dir": str(tmp / "data"), "database_url": database_url,
              "redis_url": redis_url, "fhir_base_url": fhir.base_url, "fhir_timeout": "5",
              "retry_backoff_cap": "2", "broker_timeout": "1", "log_level": "warning"}
    worker = WorkerProcess.on(tmp, {**common, "log_level": "info"}, name="e2e").start()
    try:
        worker.wait_ready()
    except BaseException:
        redis_proc.terminate()
        fhir.stop()
        raise
    server = None
    try:
        server = serve_behind_live(common, tmp)
        yield {"app": server.app, "base": server.base, "fhir": fhir}
    finally:
        if server is not None:
            server.stop()
        worker.stop()
        redis_proc.terminate()
        redis_proc.wait(timeout=10)
        fhir.stop()


def _settle(app: Any, page: Any, intake_id: str) -> None:
    """Wait until the worker owes nothing on the intake and the case page has reloaded
    itself for the last delivery (it does so while no form is being filled), so the next
    form is filled on the page that stays."""
    from sqlalchemy import select

    from intake.storage.models import Job, JobState

    def idle() -> bool:
        with state(app).sessions() as s:
            return not s.execute(select(Job.id).where(
                Job.intake_id == intake_id, Job.state == JobState.PENDING)).first()

    wait_for(idle, timeout=30, message="the worker to finish")
    page.wait_for_timeout(1500)  # the stream's poll (1 s) and the reload
    page.wait_for_load_state()


def _one(fhir: FhirTestServer, kind: str, ident: str) -> dict[str, Any]:
    found = fhir.search(kind, f"identifier={constants.IDENTIFIER_SYSTEM_INTAKE}|{ident}")
    assert len(found) == 1, (kind, ident, len(found))
    return found[0]


def test_dvt_intake_reviewed_and_written_back(ehr_stack: dict[str, Any], new_page: Any,
                                              audit: Audit) -> None:
    app, base, fhir = ehr_stack["app"], ehr_stack["base"], ehr_stack["fhir"]
    with state(app).sessions.begin() as s:
        create_user(s, "dr.e2e", "practitioner", PASSWORD, actor="test", now=utcnow())
    page = new_page(DESKTOP)
    page.goto(f"{base}/review?lang=ja")
    page.wait_for_url(re.compile(r"/auth/signin"))
    page.fill("#f-name", "dr.e2e")
    page.fill("#f-password", PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="サインイン").click()
    page.locator("#live-ok").wait_for()

    # Submitted through the JSON API while the worklist is open.
    client = app.test_client()
    token = state(app).api_token
    resp = client.post("/api/intakes", json={"answers": DVT,
                                             "walk_in": {"family_name": "鈴木",
                                                         "given_name": "次郎",
                                                         "family_name_kana": "スズキ",
                                                         "given_name_kana": "ジロウ",
                                                         "birth_date": "1958-07-07",
                                                         "sex": "male"}},
                       headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 202, resp.get_json()
    intake_id, bid = resp.get_json()["id"], resp.get_json()["business_id"]
    row = page.locator(f"tr[data-intake-id='{intake_id}']")
    row.wait_for(timeout=20_000)  # live, no reload
    wait_for(lambda: "深部静脈血栓症の疑い" in row.inner_text(), timeout=20,
             message="the DVT flag on the row")
    assert "鈴木" in row.inner_text()
    shoot(page, "e2e-worklist", both=False)

    # The first delivery reaches the record system with the flag active.
    wait_for(lambda: fhir.count("Flag") == 1, timeout=30, message="first delivery")
    assert _one(fhir, "Flag", f"{bid}/flag/DVT_SUSPECT")["status"] == "active"

    _settle(app, page, intake_id)
    with page.expect_navigation():
        row.get_by_role("link").first.click()
    _settle(app, page, intake_id)
    assert f"/review/{intake_id}" in page.url
    assert "1点" in page.locator("#wells").inner_text()  # Wells 1: unlikely

    flag = page.locator("#flag-DVT_SUSPECT")
    with page.expect_navigation():
        flag.get_by_role("button", name="確認した").click()
    page.locator("#flag-DVT_SUSPECT .acknowledged").wait_for()
    wait_for(lambda: _one(fhir, "Flag", f"{bid}/flag/DVT_SUSPECT")["status"] == "inactive",
             timeout=30, message="the acknowledgement in the record system")

    _settle(app, page, intake_id)
    page.select_option("#f-new-department", "cardiology")
    page.fill("#f-reason", "血管エコーは循環器内科で実施")
    with page.expect_navigation():
        page.get_by_role("button", name="診療科を変更する").click()
    page.wait_for_function(
        "() => document.getElementById('department').textContent.includes('循環器内科')")
    wait_for(lambda: _one(fhir, "ServiceRequest", f"{bid}/service-request")
             ["performerType"]["coding"][0]["code"] == "cardiology", timeout=30,
             message="the department in the record system")

    _settle(app, page, intake_id)
    exam = page.locator("form.exam")
    exam.locator("#exam-staff_collateral_veins label:has(input[value=yes])").click()
    exam.locator("#exam-staff_alt_dx_as_likely label:has(input[value=no])").click()
    with page.expect_navigation():
        page.get_by_role("button", name="所見を保存して再判定").click()
    page.locator("#revision-2").wait_for(timeout=30_000)
    wait_for(lambda: "2点" in page.locator("#wells").inner_text(), timeout=20,
             message="Wells 2 on the page")
    _settle(app, page, intake_id)  # the re-triage's delivery reloads the page once more
    assert "可能性が高い" in page.locator("#wells").inner_text()
    audit.check(page, "e2e-case-after")
    shoot(page, "e2e-case-after", both=False)

    def risk_amended() -> dict[str, Any] | None:
        risk = _one(fhir, "RiskAssessment", f"{bid}/risk")
        return risk if risk["status"] == "amended" else None

    risk = wait_for(risk_amended, timeout=30, message="the re-triage in the record system")
    assert "2" in risk["note"][0]["text"]
    qr = _one(fhir, "QuestionnaireResponse", bid)
    assert qr["status"] == "amended"
    assert "staff_collateral_veins" in str(qr)
    # One of each, after four deliveries; the acknowledgement and the department kept.
    assert _one(fhir, "Flag", f"{bid}/flag/DVT_SUSPECT")["status"] == "inactive"
    request = _one(fhir, "ServiceRequest", f"{bid}/service-request")
    assert request["performerType"]["coding"][0]["code"] == "cardiology"
    assert "血管エコーは循環器内科で実施" in request["note"][0]["text"]
    assert _one(fhir, "Task", f"{bid}/task")["status"] == "in-progress"
    for kind in ("QuestionnaireResponse", "RiskAssessment", "Flag", "ServiceRequest",
                 "Task", "Patient"):
        assert fhir.count(kind) == 1, kind
    audit.assert_clean()
