"""Front-desk alerts, the domain side (``intake.alerts.services``), on SQLite and
PostgreSQL: raised with the triage result that calls for one, answered, closed by the
practitioner's acknowledgement, escalated once, and listed for the boards without a
flag, a department or a diagnosis."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from intake import pipeline, state
from intake.alerts import services
from intake.alerts.services import (
    REASON_OF_FLAG,
    REASONS,
    AlertConflict,
    AlertError,
    AlertNotFound,
)
from intake.clinical import (
    FlagResult,
    Text,
    build_questionnaire_response,
    evaluate,
    load_ruleset,
    parse_questionnaire_response,
)
from intake.review.actions import Actor, acknowledge_flag, add_exam_findings
from intake.storage.models import Alert, Device, Intake, TriageRecord, utcnow
from support import add_device, case, load_cases
from support.auth import audit_events, make_user
from support.databases import sqlite_only

Submit = Callable[..., str]


def _alerts(app: Any, intake_id: str | None = None) -> list[Alert]:
    with state(app).sessions() as s:
        query = select(Alert).order_by(Alert.id)
        if intake_id is not None:
            query = query.where(Alert.intake_id == intake_id)
        return list(s.execute(query).scalars())


def _only_alert(app: Any, intake_id: str) -> Alert:
    found = _alerts(app, intake_id)
    assert len(found) == 1, [(a.level, a.revision, a.state) for a in found]
    return found[0]


def _practitioner(app: Any, name: str = "dr.sato") -> Actor:
    return Actor(make_user(app, name, "practitioner"), name)


def _examine(app: Any, intake_id: str, findings: dict[str, bool], actor: Actor) -> int:
    """A practitioner enters examination findings; returns the new revision (untriaged)."""
    with state(app).sessions.begin() as s:
        revision = s.get(Intake, intake_id).revision  # type: ignore[union-attr]
        add_exam_findings(s, intake_id, findings, actor=actor, revision=revision,
                          now=utcnow())
        return revision + 1


def _restate(app: Any, intake_id: str, **changes: Any) -> None:
    """Change answers of the intake's current, not yet triaged revision.

    No examination item of the shipped rule set fires an emergency flag, so a revision
    with a new emergency flag is made by changing its stored answers the way
    ``add_exam_findings`` stores them (a later rule set could get there by findings)."""
    with state(app).sessions.begin() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        old = intake.questionnaire_response
        answers = parse_questionnaire_response(old).replace(**changes)
        intake.questionnaire_response = build_questionnaire_response(
            answers, identifier=intake.business_id, subject_reference=None,
            authored=old.get("authored"), status=old.get("status", "completed"))


def _triage(app: Any, intake_id: str) -> pipeline.TriageOutcome:
    with state(app).sessions.begin() as s:
        return pipeline.run_triage(s, intake_id)


def _acknowledge(app: Any, intake_id: str, code: str, actor: Actor) -> None:
    with state(app).sessions.begin() as s:
        revision = s.get(Intake, intake_id).revision  # type: ignore[union-attr]
        acknowledge_flag(s, intake_id, code, actor=actor, revision=revision, now=utcnow())


def _answer(app: Any, alert_id: int, wanted: str, *, by: str = "aiko", via: str = "desk",
            declared: bool = False, at: Any = None) -> services.Answered:
    with state(app).sessions.begin() as s:
        return services.answer(s, alert_id, wanted, by=by, via=via, now=at or utcnow(),
                               declared=declared)


def _alert_events(app: Any, action: str, alert_id: int) -> list[Any]:
    return [e for e in audit_events(app, action) if e.entity_id == str(alert_id)]


# --- raised with the triage result ------------------------------------------------------


@pytest.mark.parametrize(("case_id", "reasons"), [
    ("pub-03", ",chest,leg_circulation,"),  # PE (emergency) first, then DVT (same day)
    ("pub-06", ",fever_knee,"),
    ("pub-08", ",nerves_bladder,"),
])
def test_emergency_result_raises_one_open_emergency_alert(
        alerts_app: Any, submit: Submit, case_id: str, reasons: str) -> None:
    intake_id = submit(alerts_app, case_id)
    alert = _only_alert(alerts_app, intake_id)
    assert (alert.level, alert.state, alert.revision) == ("emergency", "open", 1)
    assert alert.reasons == reasons
    assert alert.escalated_at is None and alert.in_progress_at is None
    assert alert.done_at is None
    [raised] = _alert_events(alerts_app, "alert.raised", alert.id)
    assert raised.actor == "system"
    assert raised.detail["level"] == "emergency"
    assert raised.detail["reasons"] == [r for r in reasons.split(",") if r]
    # Reason classes only: no flag code reaches the alert or its audit event.
    with state(alerts_app).sessions() as s:
        result = s.execute(select(TriageRecord).where(TriageRecord.intake_id == intake_id)
                           ).scalar_one()
    for flag in result.result["flags"]:
        assert flag["code"] not in alert.reasons
        assert flag["code"] not in str(raised.detail)


def test_same_day_result_raises_a_same_day_alert(alerts_app: Any, submit: Submit) -> None:
    alert = _only_alert(alerts_app, submit(alerts_app, "pub-02"))
    assert (alert.level, alert.state, alert.reasons) == ("same_day", "open",
                                                         ",leg_circulation,")


@sqlite_only
def test_only_emergency_and_same_day_results_raise_alerts(alerts_app: Any,
                                                          submit: Submit) -> None:
    """Every shared worked case: an alert of its level, and none for soon, routine or
    self care."""
    for worked in load_cases():
        intake_id = submit(alerts_app, worked["answers"], record_number=worked["id"])
        expected = worked["expect"]["urgency"]
        levels = [a.level for a in _alerts(alerts_app, intake_id)]
        if expected in ("emergency", "same_day"):
            assert levels == [expected], worked["id"]
        else:
            assert levels == [], worked["id"]


def test_triage_run_twice_still_raises_one_alert(alerts_app: Any, submit: Submit) -> None:
    intake_id = submit(alerts_app, "pub-03")
    assert _triage(alerts_app, intake_id).status == "already"
    alert = _only_alert(alerts_app, intake_id)
    assert len(_alert_events(alerts_app, "alert.raised", alert.id)) == 1
    assert len(audit_events(alerts_app, "alert.raised")) == 1


def test_failed_triage_raises_a_same_day_not_triaged_alert(alerts_app: Any,
                                                           submit: Submit) -> None:
    intake_id = submit(alerts_app, "pub-03", triage=False)
    _break_answers(alerts_app, intake_id)
    assert _triage(alerts_app, intake_id).status == "failed"
    alert = _only_alert(alerts_app, intake_id)
    assert (alert.level, alert.state, alert.reasons) == ("same_day", "open", ",not_triaged,")
    assert _alert_events(alerts_app, "alert.raised", alert.id)[0].detail["reasons"] == [
        "not_triaged"]
    # The same failure again (a redelivered task) raises nothing more.
    assert _triage(alerts_app, intake_id).status == "failed"
    assert len(_alerts(alerts_app, intake_id)) == 1


def test_triage_that_succeeds_after_a_failure_raises_its_emergency(
        alerts_app: Any, submit: Submit) -> None:
    """The pipeline takes a failed intake to triaged when a later run succeeds (a fixed
    defect, a redelivered task): an emergency result must then reach the desk, above
    the same-day 'could not be triaged' alert of the same revision."""
    intake_id = submit(alerts_app, "pub-03", triage=False)
    good = _break_answers(alerts_app, intake_id)
    assert _triage(alerts_app, intake_id).status == "failed"
    with state(alerts_app).sessions.begin() as s:
        s.get(Intake, intake_id).questionnaire_response = good  # type: ignore[union-attr]
    assert _triage(alerts_app, intake_id).status == "triaged"
    levels = {(a.level, a.state) for a in _alerts(alerts_app, intake_id)}
    assert ("emergency", "open") in levels


def _break_answers(app: Any, intake_id: str) -> dict[str, Any]:
    """Store answers the engine cannot read (a defect); returns the good ones."""
    with state(app).sessions.begin() as s:
        intake = s.get(Intake, intake_id)
        assert intake is not None
        good = dict(intake.questionnaire_response)
        intake.questionnaire_response = {
            **good, "item": [{"linkId": "age_years", "answer": [{"valueString": "old"}]}]}
    return good


# --- later revisions ----------------------------------------------------------------------


def test_later_same_day_revision_raises_nothing(alerts_app: Any, submit: Submit) -> None:
    """Findings that make a revision same day: the practitioner is with the patient."""
    answers = {**case("pub-09")["answers"], "onset": "INJ_TWIST", "duration": "D1_6"}
    assert evaluate(answers).urgency == "soon"
    intake_id = submit(alerts_app, answers)
    assert _alerts(alerts_app, intake_id) == []
    _examine(alerts_app, intake_id, {"staff_patella_tenderness": True},
             _practitioner(alerts_app))
    assert _triage(alerts_app, intake_id).urgency == "same_day"
    assert _alerts(alerts_app, intake_id) == []


def test_later_revision_with_the_same_emergency_flag_raises_nothing(
        alerts_app: Any, submit: Submit) -> None:
    intake_id = submit(alerts_app, "pub-03")
    first = _only_alert(alerts_app, intake_id)
    _answer(alerts_app, first.id, "done")
    _examine(alerts_app, intake_id, {"staff_deep_vein_tenderness": True},
             _practitioner(alerts_app))
    assert _triage(alerts_app, intake_id).urgency == "emergency"
    assert [(a.id, a.state) for a in _alerts(alerts_app, intake_id)] == [(first.id, "done")]


def test_new_emergency_flag_in_a_later_revision_supersedes_the_same_day_alert(
        alerts_app: Any, submit: Submit) -> None:
    intake_id = submit(alerts_app, "pub-02")
    same_day = _only_alert(alerts_app, intake_id)
    revision = _examine(alerts_app, intake_id, {"staff_calf_diff_3cm": True},
                        _practitioner(alerts_app))
    _restate(alerts_app, intake_id, chest_symptoms=True)
    assert _triage(alerts_app, intake_id).urgency == "emergency"
    old, new = _alerts(alerts_app, intake_id)
    assert old.id == same_day.id
    assert (old.state, old.done_by, old.done_via) == ("done", "system", "superseded")
    assert (new.level, new.state, new.revision) == ("emergency", "open", revision)
    assert new.reasons == ",chest,leg_circulation,"
    [closed] = _alert_events(alerts_app, "alert.done", old.id)
    assert closed.detail["via"] == "superseded"
    assert closed.detail["superseded_by_revision"] == revision


def test_new_emergency_flag_already_acknowledged_raises_nothing(
        alerts_app: Any, submit: Submit) -> None:
    """PE acknowledged at revision 1, gone at 2, back at 3: not new to the practitioner."""
    doctor = _practitioner(alerts_app)
    intake_id = submit(alerts_app, "pub-03")
    first = _only_alert(alerts_app, intake_id)
    for code in ("PE_SUSPECT", "DVT_SUSPECT"):
        _acknowledge(alerts_app, intake_id, code, doctor)
    _examine(alerts_app, intake_id, {"staff_calf_diff_3cm": True}, doctor)
    _restate(alerts_app, intake_id, chest_symptoms=False)
    assert _triage(alerts_app, intake_id).urgency == "same_day"
    _examine(alerts_app, intake_id, {"staff_collateral_veins": True}, doctor)
    _restate(alerts_app, intake_id, chest_symptoms=True)
    assert _triage(alerts_app, intake_id).urgency == "emergency"
    assert [a.id for a in _alerts(alerts_app, intake_id)] == [first.id]


def test_new_emergency_flag_while_an_emergency_is_unanswered_raises_nothing_more(
        alerts_app: Any, submit: Submit) -> None:
    intake_id = submit(alerts_app, "pub-03")
    first = _only_alert(alerts_app, intake_id)
    _examine(alerts_app, intake_id, {"staff_calf_diff_3cm": True},
             _practitioner(alerts_app))
    _restate(alerts_app, intake_id, foot_ischaemia=True)  # ACUTE_LIMB_ISCHAEMIA: new
    assert _triage(alerts_app, intake_id).urgency == "emergency"
    assert [(a.id, a.state) for a in _alerts(alerts_app, intake_id)] == [(first.id, "open")]


# --- answering ----------------------------------------------------------------------------


def test_answer_open_then_in_progress_then_done(alerts_app: Any, submit: Submit) -> None:
    alert = _only_alert(alerts_app, submit(alerts_app, "pub-03"))
    at = utcnow()
    done = _answer(alerts_app, alert.id, "in_progress", by="aiko", via="board:受付1",
                   declared=True, at=at)
    assert done == services.Answered(alert.id, "in_progress", True)
    again = _answer(alerts_app, alert.id, "in_progress", by="ben", via="desk")
    assert again == services.Answered(alert.id, "in_progress", False)
    [stored] = _alerts(alerts_app)
    assert (stored.state, stored.in_progress_by, stored.in_progress_via) == (
        "in_progress", "aiko", "board:受付1")
    assert stored.in_progress_at == at
    [event] = _alert_events(alerts_app, "alert.in_progress", alert.id)
    assert event.actor == "aiko"
    assert event.detail["via"] == "board:受付1" and event.detail["declared"] is True

    assert _answer(alerts_app, alert.id, "done", by="ben", via="review").changed
    assert not _answer(alerts_app, alert.id, "done", by="aiko", via="desk").changed
    [stored] = _alerts(alerts_app)
    assert (stored.state, stored.done_by, stored.done_via) == ("done", "ben", "review")
    assert stored.in_progress_by == "aiko"  # who came first is kept
    [event] = _alert_events(alerts_app, "alert.done", alert.id)
    assert event.actor == "ben" and event.detail["via"] == "review"
    assert "declared" not in event.detail  # signed in, not a name chosen on a board


def test_answer_open_straight_to_done(alerts_app: Any, submit: Submit) -> None:
    alert = _only_alert(alerts_app, submit(alerts_app, "pub-02"))
    assert _answer(alerts_app, alert.id, "done", by="aiko", via="desk").changed
    [stored] = _alerts(alerts_app)
    assert (stored.state, stored.done_by, stored.in_progress_at) == ("done", "aiko", None)
    assert audit_events(alerts_app, "alert.in_progress") == []


@sqlite_only
def test_answer_refuses_going_back_a_bad_state_and_an_unknown_alert(
        alerts_app: Any, submit: Submit) -> None:
    alert = _only_alert(alerts_app, submit(alerts_app, "pub-03"))
    _answer(alerts_app, alert.id, "done")
    with pytest.raises(AlertConflict):
        _answer(alerts_app, alert.id, "in_progress")
    for bad in ("open", "closed", ""):
        with pytest.raises(AlertError) as raised:
            _answer(alerts_app, alert.id, bad)
        assert type(raised.value) is AlertError, bad
    with pytest.raises(AlertNotFound):
        _answer(alerts_app, alert.id + 1000, "done")
    [stored] = _alerts(alerts_app)
    assert (stored.state, stored.in_progress_at) == ("done", None)
    assert len(audit_events(alerts_app, "alert.done")) == 1
    assert audit_events(alerts_app, "alert.in_progress") == []


# --- closed by the practitioner -------------------------------------------------------------


def test_acknowledging_every_red_flag_closes_the_alert(alerts_app: Any,
                                                       submit: Submit) -> None:
    doctor = _practitioner(alerts_app, "dr.ito")
    intake_id = submit(alerts_app, "pub-03")  # PE_SUSPECT and DVT_SUSPECT, both red
    _acknowledge(alerts_app, intake_id, "PE_SUSPECT", doctor)
    assert _only_alert(alerts_app, intake_id).state == "open"  # one red flag is left
    _acknowledge(alerts_app, intake_id, "DVT_SUSPECT", doctor)
    alert = _only_alert(alerts_app, intake_id)
    assert (alert.state, alert.done_by, alert.done_via) == ("done", "dr.ito", "review")
    [event] = _alert_events(alerts_app, "alert.done", alert.id)
    assert event.actor == "dr.ito" and event.detail["via"] == "review"


def test_acknowledging_closes_an_in_progress_alert_too(alerts_app: Any,
                                                       submit: Submit) -> None:
    doctor = _practitioner(alerts_app)
    intake_id = submit(alerts_app, "pub-02")
    alert = _only_alert(alerts_app, intake_id)
    _answer(alerts_app, alert.id, "in_progress", by="aiko", via="desk")
    _acknowledge(alerts_app, intake_id, "DVT_SUSPECT", doctor)
    stored = _only_alert(alerts_app, intake_id)
    assert (stored.state, stored.in_progress_by, stored.done_by) == ("done", "aiko",
                                                                     "dr.sato")


# --- escalation ------------------------------------------------------------------------------


def test_escalate_due_marks_only_old_open_emergencies_once(alerts_app: Any,
                                                           submit: Submit) -> None:
    now = utcnow()
    old = _only_alert(alerts_app, submit(alerts_app, "pub-03",
                                         at=now - timedelta(seconds=200)))
    young = _only_alert(alerts_app, submit(alerts_app, "pub-06",
                                           at=now - timedelta(seconds=60)))
    taken = _only_alert(alerts_app, submit(alerts_app, "pub-08",
                                           at=now - timedelta(seconds=300)))
    same_day = _only_alert(alerts_app, submit(alerts_app, "pub-02",
                                              at=now - timedelta(seconds=600)))
    _answer(alerts_app, taken.id, "in_progress", at=now - timedelta(seconds=250))
    with state(alerts_app).sessions.begin() as s:
        assert services.escalate_due(s, after=120, now=now) == [old.id]
    with state(alerts_app).sessions.begin() as s:
        assert services.escalate_due(s, after=120, now=now + timedelta(seconds=5)) == []
    events = audit_events(alerts_app, "alert.escalated")
    assert [(e.entity_id, e.detail["after_seconds"]) for e in events] == [(str(old.id), 120)]
    stored = {a.id: a for a in _alerts(alerts_app)}
    assert stored[old.id].escalated_at == now
    assert stored[old.id].state == "open"  # still waiting for someone
    for other in (young, taken, same_day):
        assert stored[other.id].escalated_at is None
    with state(alerts_app).sessions() as s:
        views, _ = services.board_alerts(s, now)
    assert {v.id for v in views if v.escalated} == {old.id}


# --- what the boards show ---------------------------------------------------------------------


def test_board_alerts_order_and_what_stays_listed(alerts_app: Any, submit: Submit) -> None:
    """Open emergencies oldest first, then emergencies in progress, then same day;
    answered ones last and only for 30 minutes; unanswered ones however old."""
    now = utcnow()

    def alert_at(case_id: str, minutes_ago: float) -> int:
        intake_id = submit(alerts_app, case_id, at=now - timedelta(minutes=minutes_ago))
        return _only_alert(alerts_app, intake_id).id

    e_new = alert_at("pub-03", 2)
    e_old = alert_at("pub-06", 10)
    e_taken = alert_at("pub-08", 20)
    s_ancient = alert_at("pub-02", 3 * 24 * 60)
    s_new = alert_at("pub-04", 1)
    done_recent = alert_at("pub-03", 40)
    done_old = alert_at("pub-13", 120)
    _answer(alerts_app, e_taken, "in_progress", at=now - timedelta(minutes=15))
    _answer(alerts_app, done_recent, "done", at=now - timedelta(minutes=29))
    _answer(alerts_app, done_old, "done", at=now - timedelta(minutes=31))

    with state(alerts_app).sessions() as s:
        views, more = services.board_alerts(s, now)
    assert more == 0
    assert [v.id for v in views] == [e_old, e_new, e_taken, s_ancient, s_new, done_recent]
    by_id = {v.id: v for v in views}
    assert by_id[e_taken].in_progress is not None and by_id[e_taken].in_progress.by == "aiko"
    assert by_id[done_recent].done is not None
    assert by_id[done_recent].done.at == now - timedelta(minutes=29)
    assert done_old not in by_id


def test_board_alerts_patient_is_the_record_number_or_the_walk_in_name(
        alerts_app: Any, submit: Submit) -> None:
    add_device(alerts_app, "tablet", "タブレット2")
    with state(alerts_app).sessions() as s:
        tablet_id = s.execute(select(Device.id).where(Device.name == "タブレット2")
                              ).scalar_one()
    walk_in = {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
               "given_name_kana": "ハナコ", "birth_date": "1960-04-01", "sex": "female"}
    by_record = submit(alerts_app, "pub-03", record_number="MRN-5521", device_id=tablet_id)
    by_name = submit(alerts_app, "pub-02", record_number=None, demographics=walk_in)
    with state(alerts_app).sessions() as s:
        views = {v.intake_id: v for v in services.board_alerts(s, utcnow())[0]}
    assert views[by_record].patient == {"record": "MRN-5521"}
    assert views[by_record].tablet == "タブレット2"
    assert views[by_name].patient == {"name": "山田 花子", "kana": "ヤマダ ハナコ"}
    assert views[by_name].tablet is None
    assert views[by_record].reasons == ("chest", "leg_circulation")


# --- reason classes -------------------------------------------------------------------------


def _can_be_alerted(rule: Any) -> bool:
    return any(step.level in ("emergency", "same_day") for step in rule.urgency)


def test_every_flag_that_can_raise_an_alert_has_a_reason_class() -> None:
    ruleset = load_ruleset()
    alerting = [rule.code for rule in ruleset.flags if _can_be_alerted(rule)]
    assert "PE_SUSPECT" in alerting and "DVT_SUSPECT" in alerting  # the premise holds
    missing = [code for code in alerting if code not in REASON_OF_FLAG]
    assert missing == []
    assert set(REASON_OF_FLAG.values()) <= set(REASONS)
    stale = set(REASON_OF_FLAG) - {rule.code for rule in ruleset.flags}
    assert stale == set()
    for code in alerting:  # one flag alone gives its own class, never "other"
        flag = FlagResult(code=code, urgency="same_day", department="orthopedics",
                          also_departments=(), red_flag=False, label=Text("", ""),
                          evidence=())
        assert services.reasons_of([flag]) == [REASON_OF_FLAG[code]]


def _diagnosis_terms() -> set[str]:
    """What the rule set's labels name: each whole label, the condition a "possible …" /
    "…の疑い" label suspects, and the longer words of those conditions."""
    terms: set[str] = set()
    for rule in load_ruleset().flags:
        en, ja = rule.label.en.lower(), rule.label.ja
        terms |= {en, ja}
        if en.startswith("possible "):
            condition = re.split(r"[,(]", en.removeprefix("possible "))[0].strip()
            terms.add(condition)
            terms |= {w for w in re.findall(r"[a-z']+", condition) if len(w) >= 5}
        if "の疑い" in ja:
            terms.add(re.split(r"[(（]", ja.split("の疑い")[0])[0])
    return terms


def test_no_reason_text_names_a_flag_or_a_diagnosis() -> None:
    terms = _diagnosis_terms()
    assert "pulmonary embolism" in terms and "肺塞栓症" in terms  # the premise holds
    codes = {rule.code for rule in load_ruleset().flags}
    for key, text in REASONS.items():
        for words in (text.en.lower(), text.ja):
            named = [t for t in terms if t in words]
            assert named == [], (key, words, named)
            assert not any(code.lower() in words for code in codes), (key, words)


# --- review follow-ups --------------------------------------------------------------------


def test_a_retried_triage_keeps_an_answered_could_not_triage_alert(alerts_app: Any,
                                                                   submit: Submit) -> None:
    """Triage failed, the desk answered the 'could not be triaged' alert, then triage
    succeeded as same day: the answered alert stands (no second one, no failure)."""
    intake_id = submit(alerts_app, "pub-02", triage=False)
    good = _break_answers(alerts_app, intake_id)
    assert _triage(alerts_app, intake_id).status == "failed"
    [failed] = _alerts(alerts_app, intake_id)
    _answer(alerts_app, failed.id, "done")
    with state(alerts_app).sessions.begin() as s:
        s.get(Intake, intake_id).questionnaire_response = good  # type: ignore[union-attr]
    assert _triage(alerts_app, intake_id).status == "triaged"
    [alert] = _alerts(alerts_app, intake_id)
    assert (alert.id, alert.level, alert.state) == (failed.id, "same_day", "done")


def test_acknowledging_a_flag_without_red_flags_leaves_the_desk_alert(
        alerts_app: Any, submit: Submit) -> None:
    """Unanswered screening items (same day, no red flag): the practitioner's
    acknowledgement closes no desk alert; someone must still speak with the patient."""
    intake_id = submit(alerts_app, "pub-15")
    alert = _only_alert(alerts_app, intake_id)
    assert (alert.level, alert.state) == ("same_day", "open")
    _acknowledge(alerts_app, intake_id, "INCOMPLETE_SCREENING", _practitioner(alerts_app))
    assert _only_alert(alerts_app, intake_id).state == "open"


def test_day_old_alerts_expire_but_an_unanswered_emergency_never_does(
        alerts_app: Any, submit: Submit) -> None:
    long_ago = utcnow() - timedelta(hours=19)
    same_day = submit(alerts_app, "pub-02", record_number="MRN-X1", at=long_ago)
    handled = submit(alerts_app, "pub-03", record_number="MRN-X2", at=long_ago)
    waiting = submit(alerts_app, "pub-06", record_number="MRN-X3", at=long_ago)
    recent = submit(alerts_app, "pub-02", record_number="MRN-X4")
    _answer(alerts_app, _only_alert(alerts_app, handled).id, "in_progress")
    with state(alerts_app).sessions.begin() as s:
        expired = services.expire_old(s, now=utcnow())
    assert sorted(expired) == sorted(_only_alert(alerts_app, i).id for i in (same_day, handled))
    for intake_id in (same_day, handled):
        alert = _only_alert(alerts_app, intake_id)
        assert (alert.state, alert.done_by, alert.done_via) == ("done", "system", "expired")
    assert _only_alert(alerts_app, waiting).state == "open"  # never by itself
    assert _only_alert(alerts_app, recent).state == "open"
    events = [e for e in audit_events(alerts_app, "alert.done") if e.detail["via"] == "expired"]
    assert len(events) == 2 and all(e.actor == "system" for e in events)
    with state(alerts_app).sessions.begin() as s:
        assert services.expire_old(s, now=utcnow()) == []  # once
