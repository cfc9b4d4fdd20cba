"""Ending tablet sessions on SQLite and PostgreSQL: a RED answer is never wiped silently.

The service is called directly with a controlled clock, then the whole path runs with a
real worker: a draft left with an emergency answer is ended by the worker's sweeper,
triaged and alerted on the Redis channel, with no tablet involved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
from sqlalchemy import select

from intake import state
from intake.kiosk import services
from intake.kiosk.form import tablet_form
from intake.live.notify import CHANNEL
from intake.storage.models import (
    Alert,
    AuditEvent,
    Device,
    Intake,
    Job,
    KioskDraft,
    utcnow,
)
from support import case, wait_for
from support.kiosk import PIN, Tablet, drafts, intakes_of, result_of

TIMING = services.Timing(idle=90, warning=30, result_wait=5, done=30)


@pytest.fixture
def app_db(make_app: Callable[..., Any], database_url: str) -> Any:
    return make_app(database_url, kiosk_pin=PIN)


def _draft(app: Any, answers: dict[str, Any], *, minutes_idle: float = 0,
           record_number: str = "MRN-S1") -> str:
    now = utcnow() - timedelta(minutes=minutes_idle)
    with state(app).sessions.begin() as s:
        draft = services.start_draft(s, token=services.new_token(), lang="ja",
                                     record_number=record_number, demographics=None,
                                     prefill=answers, now=now)
        return draft.id


def _end(app: Any, key: str, reason: services.EndReason) -> str | None:
    with state(app).sessions.begin() as s:
        draft = s.get(KioskDraft, key)
        assert draft is not None
        return services.end_draft(s, draft, tablet_form(), reason=reason, now=utcnow())


def test_red_partial_answers_become_an_intake(app_db: Any) -> None:
    key = _draft(app_db, {"age_years": 70, "chest_symptoms": True})
    intake_id = _end(app_db, key, "timeout")
    assert intake_id is not None
    assert drafts(app_db) == []
    with state(app_db).sessions() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        assert (intake.source, intake.patient_record_number) == ("kiosk-timeout", "MRN-S1")
        jobs = s.execute(select(Job).where(Job.intake_id == intake_id)).scalars().all()
        assert [(j.kind, j.state) for j in jobs] == [("triage", "pending")]
        actions = [a.action for a in s.execute(select(AuditEvent)).scalars()]
        assert actions == ["kiosk.started", "intake.received", "kiosk.ended"]


@pytest.mark.parametrize("answers", [{}, {"age_years": 40, "fever": False},
                                     {"fever": True}])  # fever alone is not RED
def test_answers_without_a_red_condition_are_deleted(app_db: Any,
                                                     answers: dict[str, Any]) -> None:
    key = _draft(app_db, answers)
    assert _end(app_db, key, "cancel") is None
    assert drafts(app_db) == []
    with state(app_db).sessions() as s:
        assert s.execute(select(Intake)).first() is None


def test_hidden_answers_do_not_count(app_db: Any) -> None:
    """An injury answer left from before 'how did it start' changed is not triaged."""
    key = _draft(app_db, {"onset": "GRADUAL", "swelling_after_injury": "LE_2H"})
    assert _end(app_db, key, "timeout") is None


def test_sweeper_ends_only_expired_untouched_drafts(app_db: Any) -> None:
    sessions = state(app_db).sessions
    red_old = _draft(app_db, {"foot_ischaemia": True}, minutes_idle=10, record_number="R1")
    quiet_old = _draft(app_db, {"age_years": 30}, minutes_idle=10, record_number="Q1")
    red_new = _draft(app_db, {"tense_calf": True}, minutes_idle=0, record_number="R2")
    sent: list[str] = []
    counts = services.sweep_expired(sessions, tablet_form(), TIMING, enqueue=sent.append)
    assert counts == {"found": 2, "ended": 2, "triaged": 1}
    assert [i.id for i in intakes_of(app_db, "R1")] == sent
    assert intakes_of(app_db, "Q1") == [] and intakes_of(app_db, "R2") == []
    assert {d.id for d in drafts(app_db)} == {red_new}
    assert red_old not in sent and quiet_old not in sent
    # A second sweep finds nothing: nothing is triaged twice.
    again = services.sweep_expired(sessions, tablet_form(), TIMING, enqueue=sent.append)
    assert again == {"found": 0, "ended": 0, "triaged": 0}


def test_a_tablet_that_comes_back_wins_over_the_sweeper(app_db: Any) -> None:
    real = state(app_db).sessions
    key = _draft(app_db, {"chest_symptoms": True}, minutes_idle=10)

    class TabletSavesBetweenSearchAndClaim:
        """The sessionmaker the sweeper gets: before its claim, the tablet saves."""

        def __call__(self) -> Any:
            return real()

        def begin(self) -> Any:
            with real.begin() as s:
                draft = s.get(KioskDraft, key)
                assert draft is not None
                services.touch(draft, utcnow())
            return real.begin()

    counts = services.sweep_expired(TabletSavesBetweenSearchAndClaim(),  # type: ignore[arg-type]
                                    tablet_form(), TIMING, enqueue=lambda _: None)
    assert counts == {"found": 1, "ended": 0, "triaged": 0}
    assert len(drafts(app_db)) == 1


@pytest.mark.slow
def test_dead_tablet_with_an_emergency_answer_is_triaged_and_alerted_by_the_worker(
        make_app: Callable[..., Any], database_url: str, clean_redis: str,
        start_worker: Callable[..., Any]) -> None:
    """The tablet posts an emergency answer (autosave) and then never speaks again."""
    settings = {"kiosk_idle_seconds": "1", "kiosk_warning_seconds": "1",
                "kiosk_sweep_interval": "0.5"}
    app = make_app(database_url, redis_url=clean_redis, kiosk_pin=PIN, **settings)
    listener = redis.Redis.from_url(clean_redis).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CHANNEL)
    start_worker(database_url, clean_redis, **settings)
    tablet = Tablet(app)
    tablet.start(record_number="MRN-DEAD")
    step = [s.link_id for s in tablet_form().sections].index("swelling_circulation")
    resp = tablet.screen(step, {"chest_symptoms": True}, action="autosave")
    assert resp.status_code == 204

    [intake] = wait_for(lambda: intakes_of(app, "MRN-DEAD"), timeout=30,
                        message="the sweeper to end the draft")
    assert intake.source == "kiosk-timeout"
    result = wait_for(lambda: result_of(app, intake.id), timeout=30, message="triage")
    assert result.urgency == "emergency" and result.red_flag
    assert "PE_SUSPECT" in [f["code"] for f in result.result["flags"]]
    assert drafts(app) == []

    def alert() -> dict[str, Any] | None:
        message = listener.get_message(timeout=0.5)
        found = json.loads(message["data"]) if message else None
        # (Redis channels span its databases: other test runs may publish too.)
        return found if found and found.get("intake") == intake.id else None

    assert wait_for(alert, timeout=10, message="the alert") == {
        "kind": "alert", "intake": intake.id}
    listener.close()
    # The front desk's alert is stored with the triage result, naming the dead tablet.
    with state(app).sessions() as s:
        stored = s.execute(select(Alert).where(Alert.intake_id == intake.id)).scalar_one()
        tablet_name = s.get(Device, intake.device_id).name if intake.device_id else None
    assert (stored.level, stored.state) == ("emergency", "open")
    assert tablet_name is not None and tablet_name.startswith("tablet-")


def test_submission_is_enqueued_and_triaged_by_a_real_worker(
        make_app: Callable[..., Any], sqlite_url: str, clean_redis: str,
        start_worker: Callable[..., Any]) -> None:
    app = make_app(sqlite_url, redis_url=clean_redis, kiosk_pin=PIN)
    start_worker(sqlite_url, clean_redis)
    tablet = Tablet(app)
    tablet.start(record_number="MRN-W1", lang="en")
    tablet.answer_all(case("pub-06")["answers"])
    tablet.send()
    [intake] = intakes_of(app, "MRN-W1")
    with state(app).sessions() as s:
        job = s.execute(select(Job).where(Job.intake_id == intake.id)).scalar_one()
        assert job.enqueued_at is not None  # handed to the broker after the commit
    wait_for(lambda: result_of(app, intake.id), timeout=30, message="triage")
    html = wait_for(lambda: (lambda h: h if "waiting" not in h else None)(
        tablet.get("/kiosk/done").get_data(as_text=True)), timeout=10, message="message")
    assert "Please tell the reception staff now" in html
