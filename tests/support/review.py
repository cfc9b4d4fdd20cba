"""The review pages driven through Flask's test client, as a practitioner's browser does:
sign in with the form, take the CSRF token from the last page, post the case view's
forms. Intakes are made with the pipeline's own functions (submit, triage, deliver),
no worker needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake import pipeline, state
from intake.auth.users import create_user
from intake.clinical import parse_simple_answers
from intake.storage.models import AuditEvent, utcnow
from support import REVISION_RE, TOKEN_RE
from support.adapters import deliver_once

PASSWORD = "a long test password 1"

# Answers of the worked cases (SPEC section 4), small enough to read here.
EMERGENCY = {"age_years": 60, "pain_side": "L", "chest_symptoms": True}  # PE_SUSPECT
DVT = {"age_years": 40, "pain_side": "L", "calf_swelling_one_side": True,
       "calf_pain_tender": True, "immobility": ["LONG_TRAVEL"]}  # DVT_SUSPECT, same day
SCREENED = {"popliteal_lump": "NONE", "calf_swelling_one_side": False,
            "whole_leg_swollen": False, "calf_pain_tender": False, "red_hot_knee": False,
            "fever": False, "chest_symptoms": False, "foot_ischaemia": False,
            "tense_calf": False, "saddle_bladder": False}
ROUTINE = {**SCREENED, "age_years": 50, "pain_side": "R", "onset": "GRADUAL",
           "duration": "GT_3M", "pain_nrs": 7, "morning_stiffness": "LT_30"}  # routine
SOON = {**SCREENED, "age_years": 30, "pain_side": "R", "giving_way": True}  # ligament


def make_user(app: Any, name: str, role: str) -> int:
    with state(app).sessions.begin() as s:
        user = create_user(s, name, role, PASSWORD, actor="test", now=utcnow())
        s.flush()
        return int(user.id)


@dataclass
class Browser:
    """One signed-in member of staff (one cookie jar)."""

    app: Any
    client: Any = None
    token: str = ""
    last: Any = None
    pages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = self.app.test_client()

    def _remember(self, resp: Any) -> Any:
        if resp.mimetype == "text/html":
            found = TOKEN_RE.search(resp.get_data(as_text=True))
            if found:
                self.token = found.group(1)
        self.last = resp
        return resp

    def get(self, url: str, **kw: Any) -> Any:
        return self._remember(self.client.get(url, **kw))

    def post(self, url: str, data: dict[str, Any] | None = None, **kw: Any) -> Any:
        body = {"csrf_token": self.token, **(data or {})}
        return self._remember(self.client.post(url, data=body, **kw))

    def sign_in(self, name: str, password: str = PASSWORD) -> Any:
        self.get("/auth/signin")
        resp = self.post("/auth/signin", {"name": name, "password": password, "next": ""})
        assert resp.status_code == 303, resp.get_data(as_text=True)
        self.get("/auth/signin")  # signing in replaced the CSRF token: take the new one
        return resp

    def revision(self, intake_id: str) -> int:
        """The revision the case view's forms carry (opens the case view)."""
        page = self.get(f"/review/{intake_id}").get_data(as_text=True)
        found = REVISION_RE.search(page)
        assert found, "the case view has no action form"
        return int(found.group(1))

    def act(self, intake_id: str, action: str, data: dict[str, Any] | None = None,
            revision: int | None = None) -> Any:
        rev = self.revision(intake_id) if revision is None else revision
        return self.post(f"/review/{intake_id}/{action}", {"revision": str(rev),
                                                             **(data or {})})


def signed_in(app: Any, name: str = "dr.review", role: str = "practitioner") -> Browser:
    make_user(app, name, role)
    browser = Browser(app)
    browser.sign_in(name)
    return browser


def submit(app: Any, answers: dict[str, Any], *, record_number: str | None = "MRN-1",
           demographics: dict[str, Any] | None = None, at: datetime | None = None,
           triage: bool = True) -> str:
    """An intake received at ``at`` (default now), triaged unless ``triage`` is False."""
    sessions = state(app).sessions
    when = at or utcnow()
    with sessions.begin() as s:
        intake_id = pipeline.submit_intake(
            s, answers=parse_simple_answers(answers), source="kiosk",
            record_number=record_number, demographics=demographics,
            clock=lambda: when).intake.id
    if triage:
        with sessions.begin() as s:
            assert pipeline.run_triage(s, intake_id, clock=lambda: when).status == "triaged"
    return str(intake_id)


def deliver(app: Any, intake_id: str, adapter: Any = None) -> pipeline.DeliveryStep:
    """One delivery attempt (to the outbox folder unless another adapter is given)."""
    st = state(app)
    return deliver_once(st.sessions, st.settings, intake_id, adapter)


def audit_events(sessions: sessionmaker[Session], action: str) -> list[AuditEvent]:
    with sessions() as s:
        return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars())


def count(sessions: sessionmaker[Session], model: Any) -> int:
    with sessions() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def hours_ago(hours: float) -> datetime:
    return utcnow() - timedelta(hours=hours)
