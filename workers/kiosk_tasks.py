"""The periodic task that ends abandoned tablet sessions (a tablet that died, lost its
network or was closed before its own idle reset).

Thin, like every task: hold a lock, call ``intake.kiosk.services.sweep_expired``, enqueue
the triage of any draft that met a RED condition. Registered on the one Celery app by
``workers/__init__.py``; scheduled by beat every ``INTAKE_KIOSK_SWEEP_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import redis

from intake.auth.users import purge_expired
from intake.intakes import enqueue_triage
from intake.kiosk import services
from intake.kiosk.form import tablet_form
from intake.storage.db import session_factory
from intake.storage.models import utcnow
from workers import app, settings

log = logging.getLogger(__name__)

TASK_KIOSK_SWEEP = "intake.kiosk_sweep"

app.conf.beat_schedule = {
    **app.conf.beat_schedule,
    "kiosk-sweep": {
        "task": TASK_KIOSK_SWEEP,
        "schedule": timedelta(seconds=settings.kiosk_sweep_interval),
        "options": {"expires": max(settings.kiosk_sweep_interval, 1.0)},
    },
}


@app.task(name=TASK_KIOSK_SWEEP, acks_late=True, reject_on_worker_lost=True)
def kiosk_sweep() -> dict[str, int]:
    """End expired drafts once, holding a lock so two schedulers never overlap.

    Safe to run twice: each draft is ended in its own transaction only if unchanged
    since it was found, and an ended draft no longer exists.
    """
    client = redis.Redis.from_url(settings.redis_url or "", socket_timeout=5)
    lock = client.lock("intake:kiosk-sweep",
                       timeout=max(60.0, 4 * settings.kiosk_sweep_interval), blocking=False)
    if not lock.acquire(blocking=False):
        return {"skipped": 1}
    sessions = session_factory(settings.database_url)
    try:
        counts = services.sweep_expired(
            sessions, tablet_form(), services.Timing.from_settings(settings),
            enqueue=lambda intake_id: enqueue_triage(app, sessions, intake_id))
    finally:
        try:
            lock.release()
        except redis.exceptions.LockError:
            pass  # expired meanwhile; the per-draft compare-and-delete still holds
    if counts["ended"]:
        log.info("ended %d abandoned tablet sessions (%d with a RED answer, sent to triage)",
                 counts["ended"], counts["triaged"])
    # Staff sign-ins past their lifetime go too (idle ones are removed when next seen).
    with sessions.begin() as session:
        counts["staff_sessions_purged"] = purge_expired(session, utcnow())
    return counts
