"""A tablet driven through Flask's test client: start, answer screens, send.

The bench uses it too. It posts exactly what the browser's forms post: one screen per
POST, answers as form fields, the CSRF token taken from the last page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from intake import state
from intake.kiosk.form import tablet_form
from intake.storage.models import Intake, KioskDraft, TriageRecord
from support import TOKEN_RE, enroll_client

PIN = "246810"


def form_fields(question_id: str, value: Any) -> list[tuple[str, str]]:
    """The form fields a browser posts for one answer."""
    if isinstance(value, bool):
        return [(question_id, "true" if value else "false")]
    if isinstance(value, list | tuple):
        return [(question_id, str(v)) for v in value]
    return [(question_id, str(value))]


@dataclass
class Tablet:
    """One tablet (one cookie jar) on an app."""

    app: Any
    client: Any = None
    token: str = ""
    urls: list[str] = field(default_factory=list)
    last: Any = None

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = self.app.test_client()
        # Every tablet is an enrolled device (its name goes with the front desk's alerts).
        enroll_client(self.app, self.client, "tablet")

    def _remember(self, resp: Any, url: str) -> Any:
        self.urls.append(url)
        if resp.headers.get("Location"):
            self.urls.append(resp.headers["Location"])
        found = TOKEN_RE.search(resp.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        self.last = resp
        return resp

    def get(self, url: str, **kw: Any) -> Any:
        return self._remember(self.client.get(url, **kw), url)

    def post(self, url: str, data: Any, **kw: Any) -> Any:
        if isinstance(data, dict):
            data = list(data.items())
        data = [*data, ("csrf_token", self.token)] if not any(
            k == "csrf_token" for k, _ in data) else data
        return self._remember(self.client.post(url, data=MultiDict(data), **kw), url)

    def start(self, *, lang: str = "ja", record_number: str | None = "MRN-0042",
              walk_in: dict[str, str] | None = None, pin: str = PIN) -> Any:
        self.get("/kiosk")
        data: dict[str, str] = {"pin": pin, "lang": lang}
        if walk_in is not None:
            data.update(patient="walk_in", **walk_in)
        else:
            data.update(patient="record", record_number=record_number or "")
        return self.post("/kiosk", data)

    def screen(self, step: int, answers: dict[str, Any], action: str = "next") -> Any:
        """Post one screen with the given answers (only those of this screen are sent)."""
        section = tablet_form().sections[step]
        self.get(f"/kiosk/q/{step}")
        fields: list[tuple[str, str]] = [("action", action)]
        enabled = tablet_form().enabled({**self.draft_answers(), **answers})
        for q in section.questions:
            if q.link_id in enabled:
                fields.append(("shown", q.link_id))
                if q.link_id in answers:
                    fields += form_fields(q.link_id, answers[q.link_id])
        return self.post(f"/kiosk/q/{step}", fields)

    def draft_answers(self) -> dict[str, Any]:
        with state(self.app).sessions() as s:
            drafts = s.execute(select(KioskDraft)).scalars().all()
            return dict(drafts[-1].answers) if drafts else {}

    def answer_all(self, answers: dict[str, Any]) -> None:
        """Walk every screen the answers enable, in order, pressing Next."""
        form = tablet_form()
        step: int | None = form.enabled_sections(answers)[0]
        while step is not None:
            resp = self.screen(step, answers)
            assert resp.status_code == 303, (step, resp.status_code)
            location = resp.headers["Location"]
            if location.endswith("/kiosk/review"):
                return
            step = int(location.rsplit("/", 1)[1])

    def send(self) -> Any:
        self.get("/kiosk/review")
        return self.post("/kiosk/review", {})


def intakes_of(app: Any, record_number: str) -> list[Intake]:
    with state(app).sessions() as s:
        return list(s.execute(select(Intake).where(
            Intake.patient_record_number == record_number).order_by(Intake.received_at))
            .scalars())


def drafts(app: Any) -> list[KioskDraft]:
    with state(app).sessions() as s:
        return list(s.execute(select(KioskDraft)).scalars())


def result_of(app: Any, intake_id: str) -> TriageRecord | None:
    with state(app).sessions() as s:
        return s.execute(select(TriageRecord).where(TriageRecord.intake_id == intake_id)
                         ).scalar_one_or_none()
