"""The periodic task that ends abandoned tablet sessions (a tablet that died, lost its
network or was closed before its own idle reset).

Thin, like every task: under its lock (``locked_periodic``), call
``intake.kiosk.services.sweep_expired`` and enqueue the triage of any draft that met a
RED condition. Staff sign-ins past their lifetime are purged by a task of their own
beside it. Registered on the one Celery app by ``workers/__init__.py``; both scheduled by
beat every ``INTAKE_KIOSK_SWEEP_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from intake import audit
from intake.auth.users import purge_expired
from intake.dispatch import dispatch_triage
from intake.kiosk import services
from intake.kiosk.form import tablet_form
from intake.storage.db import session_factory
from intake.storage.models import utcnow
from workers import app, settings
from workers.periodic import locked_periodic

log = logging.getLogger(__name__)

TASK_KIOSK_SWEEP = "intake.kiosk_sweep"
TASK_STAFF_SESSION_PURGE = "intake.staff_session_purge"

app.conf.beat_schedule = {
    **app.conf.beat_schedule,
    "kiosk-sweep": {
        "task": TASK_KIOSK_SWEEP,
        "schedule": timedelta(seconds=settings.kiosk_sweep_interval),
        "options": {"expires": max(settings.kiosk_sweep_interval, 1.0)},
    },
    "staff-session-purge": {
        "task": TASK_STAFF_SESSION_PURGE,
        "schedule": timedelta(seconds=settings.kiosk_sweep_interval),
        "options": {"expires": max(settings.kiosk_sweep_interval, 1.0)},
    },
}


@app.task(name=TASK_KIOSK_SWEEP, acks_late=True, reject_on_worker_lost=True)
@locked_periodic("intake:kiosk-sweep", settings.kiosk_sweep_interval)
def kiosk_sweep() -> dict[str, int]:
    """End expired drafts once (one sweeper at a time).

    Safe to run twice: each draft is ended in its own transaction only if unchanged
    since it was found, and an ended draft no longer exists.
    """
    sessions = session_factory(settings.database_url, audit_key=audit.signing_key(settings))
    counts = services.sweep_expired(
        sessions, tablet_form(), services.Timing.from_settings(settings),
        enqueue=lambda intake_id: dispatch_triage(app, sessions, intake_id))
    if counts["ended"]:
        log.info("ended %d abandoned tablet sessions (%d with a RED answer, sent to triage)",
                 counts["ended"], counts["triaged"])
    return counts


@app.task(name=TASK_STAFF_SESSION_PURGE, acks_late=True, reject_on_worker_lost=True)
@locked_periodic("intake:staff-session-purge", settings.kiosk_sweep_interval)
def staff_session_purge() -> dict[str, int]:
    """Staff sign-ins past their lifetime are deleted (idle ones are also removed when
    next seen, and at each sign-in)."""
    with session_factory(settings.database_url).begin() as session:
        return {"purged": purge_expired(session, utcnow())}
