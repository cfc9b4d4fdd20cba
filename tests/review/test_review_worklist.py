"""The worklist at /review: order (urgency, then longest waiting), every filter in SQL on
SQLite and PostgreSQL, bad filters (400 naming the filter), paging, what a row shows,
a bounded number of queries per page, and the audit of each view."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from intake import pipeline, state
from intake.clinical import parse_simple_answers
from intake.storage.models import Intake
from support.adapters import Rejecting, Unreachable
from support.review import (
    DVT,
    EMERGENCY,
    ROUTINE,
    SCREENED,
    SOON,
    Browser,
    audit_events,
    deliver,
    hours_ago,
    signed_in,
    submit,
)

ROW_RE = re.compile(r'<tr class="u-([a-z_]+)" data-intake-id="([^"]+)"')
SELF_CARE = {**SCREENED, "age_years": 30, "pain_side": "R", "onset": "GRADUAL",
             "duration": "D7_13", "pain_nrs": 3}  # OVERUSE_SELFCARE only


def rows(browser: Browser, query: str = "") -> list[tuple[str, str]]:
    """(urgency class, intake id) of the listed rows, in order."""
    resp = browser.get("/review" + query)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    return ROW_RE.findall(resp.get_data(as_text=True))


def ids(browser: Browser, query: str = "") -> list[str]:
    return [i for _, i in rows(browser, query)]


def test_order_is_urgency_then_longest_waiting(review_app: Any, doctor: Browser) -> None:
    made = {
        "routine": submit(review_app, ROUTINE, at=hours_ago(9)),
        "emergency_new": submit(review_app, EMERGENCY, at=hours_ago(1)),
        "soon": submit(review_app, SOON, at=hours_ago(8)),
        "same_day_new": submit(review_app, DVT, at=hours_ago(2)),
        "pending": submit(review_app, ROUTINE, at=hours_ago(0.5), triage=False),
        "emergency_old": submit(review_app, EMERGENCY, at=hours_ago(3)),
        "self_care": submit(review_app, SELF_CARE, at=hours_ago(10)),
        "same_day_old": submit(review_app, DVT, at=hours_ago(4)),
    }
    listed = rows(doctor)
    expected = ["emergency_old", "emergency_new", "pending", "same_day_old", "same_day_new",
                "soon", "routine", "self_care"]
    assert [i for _, i in listed] == [made[k] for k in expected]
    assert [u for u, _ in listed] == ["emergency", "emergency", "pending", "same_day",
                                      "same_day", "soon", "routine", "self_care"]


def test_row_shows_patient_flags_department_state_delivery_and_wait(
        review_app: Any, doctor: Browser) -> None:
    known = submit(review_app, DVT, record_number="MRN-7781", at=hours_ago(2.5))
    walk_in = submit(review_app, EMERGENCY, record_number=None, demographics={
        "family_name": "山田", "given_name": "花子", "family_name_kana": "やまだ",
        "given_name_kana": "はなこ", "birth_date": "1950-04-01", "sex": "female"},
        at=hours_ago(0.2))
    rejected = submit(review_app, ROUTINE, record_number="MRN-9", at=hours_ago(5))
    assert deliver(review_app, known).status == "delivered"
    assert deliver(review_app, rejected, Rejecting()).status == "failed"

    html = doctor.get("/review?lang=en").get_data(as_text=True)
    body = {i: _row_html(html, i) for i in (known, walk_in, rejected)}
    # The patient: record number, or a walk-in's name in kanji and kana.
    assert "MRN-7781" in body[known]
    assert "山田\u3000花子" in body[walk_in] and "やまだ\u3000はなこ" in body[walk_in]
    assert "Walk-in" in body[walk_in]
    # Urgency badge, flags with the red ones marked, department.
    assert 'class="badge u-same_day"' in body[known] and "same day" in body[known]
    assert re.search(r'<li class="flag red">.*red flag: </span>possible deep vein thrombosis',
                     body[known])
    assert re.search(r'<li class="flag red">.*possible pulmonary embolism', body[walk_in])
    assert '<li class="flag">' in body[rejected] and "osteoarthritis pattern" in body[rejected]
    assert "vascular surgery" in body[known] and "emergency department" in body[walk_in]
    # Delivery: received with its time, failed with the reason, or still to be sent.
    assert "Received by the record system" in body[known]
    assert "Failed" in body[rejected] and "Patient identifier unknown" in body[rejected]
    assert "Sending" in body[walk_in]
    # State with its time and the wait since arrival.
    assert "Delivered to the record system" in body[known]
    assert "2 h 30 min" in body[known] or "2 h 29 min" in body[known]
    assert "12 min" in body[walk_in] or "11 min" in body[walk_in]
    # Ids in URLs only: the case link carries the id, no name or record number.
    assert f'href="/review/{walk_in}?lang=en"' in body[walk_in]
    assert not re.search(r'href="[^"]*(MRN|%E5%B1%B1)', html)
    # Japanese first: the same list in Japanese.
    ja = doctor.get("/review?lang=ja").get_data(as_text=True)
    assert "深部静脈血栓症の疑い" in _row_html(ja, known) and "当日中" in _row_html(ja, known)


def _row_html(html: str, intake_id: str) -> str:
    start = html.index(f'data-intake-id="{intake_id}"')
    return html[start:html.index("</tr>", start)]


def test_retries_show_while_sending(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, SOON)
    assert deliver(review_app, made, Unreachable()).status == "retry"
    row = _row_html(doctor.get("/review?lang=en").get_data(as_text=True), made)
    assert "Sending" in row and "retrying" not in row
    assert deliver(review_app, made, Unreachable()).status == "retry"
    row = _row_html(doctor.get("/review?lang=en").get_data(as_text=True), made)
    assert "Sending (retrying, attempt 2)" in row


def test_not_triaged_row_says_awaiting_and_waiting(review_app: Any, doctor: Browser) -> None:
    pending = submit(review_app, ROUTINE, triage=False)
    row = _row_html(doctor.get("/review?lang=en").get_data(as_text=True), pending)
    assert "Awaiting triage" in row and "Not sent (awaiting triage)" in row


# --- filters (SQLite and PostgreSQL) ---------------------------------------------------


@pytest.fixture
def population(any_db_app: Any) -> dict[str, str]:
    """A mixed list: every state, several urgencies, departments and flags."""
    app = any_db_app
    made = {
        "emergency": submit(app, EMERGENCY, at=hours_ago(1)),
        "dvt": submit(app, DVT, at=hours_ago(2)),
        "soon": submit(app, SOON, at=hours_ago(3)),
        "routine": submit(app, ROUTINE, at=hours_ago(4)),
        "received": submit(app, ROUTINE, at=hours_ago(0.5), triage=False),
        "delivered": submit(app, SOON, at=hours_ago(6)),
        "failed": submit(app, ROUTINE, at=hours_ago(7)),
    }
    assert deliver(app, made["delivered"]).status == "delivered"
    assert deliver(app, made["failed"], Rejecting()).status == "failed"
    return made


@pytest.fixture
def practitioner(any_db_app: Any) -> Browser:
    return signed_in(any_db_app)


def test_filter_by_state(any_db_app: Any, population: dict[str, str],
                         practitioner: Browser) -> None:
    p = population
    doc = practitioner
    dvt_rev = doc.revision(p["dvt"])
    assert doc.act(p["dvt"], "acknowledge", {"flag": "DVT_SUSPECT"},
                   revision=dvt_rev).status_code == 303
    assert doc.act(p["routine"], "reviewed").status_code == 303

    assert set(ids(doc, "?state=received")) == {p["received"]}
    # A status filter shows that status whether reviewed or not.
    assert set(ids(doc, "?state=triaged")) == {p["emergency"], p["soon"], p["routine"]}
    assert set(ids(doc, "?state=delivered")) == {p["delivered"]}
    assert set(ids(doc, "?state=delivery_failed")) == {p["failed"]}
    assert set(ids(doc, "?state=acknowledged")) == {p["dvt"]}
    assert set(ids(doc, "?state=reviewed")) == {p["routine"]}
    # The default is the queue: everything not reviewed yet.
    assert set(ids(doc)) == set(p.values()) - {p["routine"]}
    assert set(ids(doc, "?state=not_reviewed")) == set(ids(doc))
    assert set(ids(doc, "?state=all")) == set(p.values())


def test_filter_by_urgency(population: dict[str, str], practitioner: Browser) -> None:
    p = population
    assert ids(practitioner, "?urgency=emergency") == [p["emergency"]]
    assert ids(practitioner, "?urgency=same_day") == [p["dvt"]]
    assert set(ids(practitioner, "?urgency=soon")) == {p["soon"], p["delivered"]}
    assert set(ids(practitioner, "?urgency=routine")) == {p["routine"], p["failed"]}
    assert ids(practitioner, "?urgency=pending") == [p["received"]]
    assert ids(practitioner, "?urgency=self_care") == []


def test_filter_by_effective_department(population: dict[str, str],
                                        practitioner: Browser) -> None:
    p = population
    assert ids(practitioner, "?department=vascular_surgery") == [p["dvt"]]
    assert practitioner.act(p["dvt"], "department", {
        "department": "orthopedics", "reason": "no calf swelling on examination"}
    ).status_code == 303
    # The override counts, not the triage's suggestion any more.
    assert ids(practitioner, "?department=vascular_surgery") == []
    assert p["dvt"] in ids(practitioner, "?department=orthopedics")
    assert ids(practitioner, "?department=emergency") == [p["emergency"]]
    assert ids(practitioner, "?department=rheumatology") == []


def test_filter_by_flag(population: dict[str, str], practitioner: Browser) -> None:
    p = population
    assert ids(practitioner, "?flag=DVT_SUSPECT") == [p["dvt"]]
    assert ids(practitioner, "?flag=PE_SUSPECT") == [p["emergency"]]
    assert set(ids(practitioner, "?flag=LIGAMENT_INSTABILITY")) == {p["soon"], p["delivered"]}
    assert set(ids(practitioner, "?flag=INCOMPLETE_SCREENING")) == {p["emergency"], p["dvt"]}
    assert ids(practitioner, "?flag=COMPARTMENT") == []
    # Combined with another filter: both apply.
    assert ids(practitioner, "?flag=INCOMPLETE_SCREENING&urgency=emergency") == \
        [p["emergency"]]


def test_filter_by_date_in_the_clinic_zone(any_db_app: Any, practitioner: Browser) -> None:
    # Asia/Tokyo is UTC+9: 14:59 UTC on 10 January is 23:59 there, 15:00 UTC is midnight.
    late_10th = submit(any_db_app, ROUTINE, at=datetime(2026, 1, 10, 14, 59, tzinfo=UTC))
    early_11th = submit(any_db_app, ROUTINE, at=datetime(2026, 1, 10, 15, 0, tzinfo=UTC))
    on_12th = submit(any_db_app, SOON, at=datetime(2026, 1, 12, 3, 0, tzinfo=UTC))
    assert ids(practitioner, "?date_from=2026-01-10&date_to=2026-01-10") == [late_10th]
    assert ids(practitioner, "?date_from=2026-01-11&date_to=2026-01-11") == [early_11th]
    assert set(ids(practitioner, "?date_from=2026-01-11")) == {early_11th, on_12th}
    assert ids(practitioner, "?date_to=2026-01-10") == [late_10th]
    assert set(ids(practitioner, "?date_from=2026-01-10&date_to=2026-01-12")) == \
        {late_10th, early_11th, on_12th}


@pytest.mark.parametrize(("query", "named"), [
    ("?state=lost", "「状態」"),
    ("?urgency=panic", "「緊急度」"),
    ("?department=dentistry", "「診療科」"),
    ("?flag=DVT_SUSPECT%25", "「フラグ」"),
    ("?flag=%25", "「フラグ」"),
    ("?date_from=2026-13-01", "「受付日(から)」"),
    ("?date_to=yesterday", "「受付日(まで)」"),
    ("?date_from=0001-01-01", "「受付日(から)」"),
    ("?page=0", "「ページ」"),
    ("?page=abc", "「ページ」"),
    ("?page=99999999999999999999", "「ページ」"),
    ("?date_from=2026-02-01&date_to=2026-01-01", "「受付日(から)」が「受付日(まで)」より後"),
])
def test_bad_filter_is_a_400_naming_it(review_app: Any, doctor: Browser, query: str,
                                       named: str) -> None:
    for path in ("/review", "/review/rows"):
        resp = doctor.get(path + query)
        assert resp.status_code == 400, (path, query)
        assert named in resp.get_data(as_text=True)
    english = doctor.get("/review" + query + "&lang=en")
    assert english.status_code == 400
    assert "not allowed" in english.get_data(as_text=True) or \
        "is after" in english.get_data(as_text=True)


def test_unknown_parameters_and_blank_filters_are_ignored(review_app: Any,
                                                          doctor: Browser) -> None:
    made = submit(review_app, SOON)
    assert ids(doctor, "?urgency=&department=&flag=&date_from=&date_to=&sort=x") == [made]
    assert ids(doctor, "?lang=xx") == [made]  # the language falls back, it is no filter


def test_paging(any_db_app: Any, practitioner: Browser) -> None:
    """120 intakes: 50 a page, oldest first at one level, the pager keeps the filters."""
    sessions = state(any_db_app).sessions
    start = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    made: list[str] = []
    with sessions.begin() as s:
        for n in range(120):
            when = start + timedelta(minutes=n)
            made.append(pipeline.submit_intake(
                s, answers=parse_simple_answers(ROUTINE), source="kiosk",
                record_number=f"MRN-{n}", clock=lambda when=when: when).intake.id)
    first = ids(practitioner, "?urgency=pending")
    second = ids(practitioner, "?urgency=pending&page=2")
    third = ids(practitioner, "?urgency=pending&page=3")
    assert (len(first), len(second), len(third)) == (50, 50, 20)
    assert first + second + third == made
    html = practitioner.get("/review?urgency=pending&page=2&lang=en").get_data(as_text=True)
    assert "51–100 of 120" in html and "Page 2 of 3" in html
    assert 'href="/review?lang=en&amp;urgency=pending&amp;page=3"' in html
    assert 'href="/review?lang=en&amp;urgency=pending"' in html  # page 1
    assert ids(practitioner, "?urgency=pending&page=4") == []


def test_page_cost_does_not_grow_with_rows(any_db_app: Any, practitioner: Browser) -> None:
    """No query per row: a page of 3 rows and a page of 50 make the same statements."""
    engine = state(any_db_app).sessions.kw["bind"]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    for _ in range(3):
        submit(any_db_app, DVT)
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert len(ids(practitioner, "?urgency=same_day")) == 3
        few = len(statements)
        for _ in range(55):
            submit(any_db_app, DVT)
        statements.clear()
        assert len(ids(practitioner, "?urgency=same_day")) == 50
        many = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert few == many, (few, many)


def test_each_view_is_audited_without_patient_data(review_app: Any, doctor: Browser) -> None:
    submit(review_app, DVT, record_number="MRN-SECRET-1")
    submit(review_app, SOON, record_number="MRN-SECRET-2")
    doctor.get("/review?urgency=same_day")
    doctor.get("/review/rows?lang=en")
    events = audit_events(state(review_app).sessions, "review.worklist_viewed")
    assert [(e.actor, e.entity_type, e.detail["rows"]) for e in events] == \
        [("dr.review", "worklist", 1), ("dr.review", "worklist", 2)]
    assert events[0].detail == {"rows": 1, "urgency": "same_day"}
    assert events[1].detail == {"rows": 2, "refresh": True}
    assert "MRN" not in repr([e.detail for e in events])


def test_rows_fragment_is_the_list_only(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, EMERGENCY)
    resp = doctor.get("/review/rows?lang=en")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert ROW_RE.findall(html) == [("emergency", made)]


def test_reviewed_intake_leaves_the_default_list(review_app: Any, doctor: Browser) -> None:
    made = submit(review_app, SOON)
    assert ids(doctor) == [made]
    assert doctor.act(made, "reviewed").status_code == 303
    assert ids(doctor) == []
    with state(review_app).sessions() as s:
        assert s.execute(select(Intake.reviewed_at).where(Intake.id == made)).scalar_one()
