"""Handing newly committed work to the broker: one function for "enqueue after commit".

Work owed on an intake is first committed as a pending job row (the durable promise);
only then is its task sent, with the intake id alone, and the job marked as handed
over. A broker that is away or not configured changes nothing that was committed: the
job stays pending and the periodic sweeper sends it later. So :func:`dispatch` never
raises for the broker and never fails the request or task that called it.

Used after the commit by the API and FHIR submissions (``intake.intakes``), the tablet
(``intake.kiosk``), the review actions and the triage task (the delivery it owes). The
re-sends of a job already handed over once (a delivery's retry, the sweeper's) send
the task with ``intake.queue.send`` and their own bookkeeping.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from intake.pipeline import mark_enqueued
from intake.queue import TASK_DELIVER, TASK_TRIAGE, send
from intake.storage.models import JobKind

if TYPE_CHECKING:
    from celery import Celery

# The task that does each kind of job (both kinds of delivery job: one delivery of the
# intake's current state).
TASK_FOR_KIND: Mapping[str, str] = {JobKind.TRIAGE.value: TASK_TRIAGE,
                                    JobKind.DELIVER.value: TASK_DELIVER,
                                    JobKind.WRITEBACK.value: TASK_DELIVER}


def dispatch(celery: Celery | None, sessions: sessionmaker[Session], intake_id: str,
             kind: JobKind | str, revision: int) -> bool:
    """After the commit: send the job's task and note it on the job row.

    False when there is no broker or it is down (the sweeper sends the job later)."""
    if celery is None:
        return False
    kind = JobKind(kind)
    if not send(celery, TASK_FOR_KIND[kind], intake_id):
        return False
    with sessions.begin() as session:
        mark_enqueued(session, intake_id, kind, revision)
    return True


def dispatch_triage(celery: Celery | None, sessions: sessionmaker[Session],
                    intake_id: str) -> bool:
    """After the commit of a new intake: its first triage."""
    return dispatch(celery, sessions, intake_id, JobKind.TRIAGE, 1)
