"""The tasks. Each is thin: load by id, call a service in ``intake``, record state.

Every task takes the intake id only, is named explicitly, and is safe to run
twice (see ``intake.pipeline``), which is what allows ``acks_late`` and
``reject_on_worker_lost``: a killed worker's message is delivered again and the
repeat changes nothing that the first run finished.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_process_init
from sqlalchemy.exc import OperationalError

from intake import audit, pipeline
from intake.delivery.service import build_bundle, make_adapter
from intake.dispatch import TASK_FOR_KIND, dispatch
from intake.live import notify
from intake.queue import TASK_DELIVER, TASK_SWEEP, TASK_TRIAGE, send
from intake.storage.db import dispose_engines, session_factory
from intake.storage.models import JobKind
from workers import app, settings
from workers.periodic import locked_periodic

log = logging.getLogger(__name__)

_adapter: Any = None


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # Connections and HTTP sessions must not be shared across a fork.
    global _adapter
    dispose_engines()
    notify.reset_after_fork()
    _adapter = None


def _sessions() -> Any:
    # The audit events the tasks record are sealed with these settings' key.
    return session_factory(settings.database_url, audit_key=audit.signing_key(settings))


def _get_adapter() -> Any:
    global _adapter
    if _adapter is None:
        _adapter = make_adapter(settings)
    return _adapter


@app.task(name=TASK_TRIAGE, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def triage(intake_id: str) -> str:
    """Run the rules on the intake and store the result, then ask for delivery."""
    if settings.fault_triage_delay:
        # Fault-injection window for tests, outside any transaction.
        time.sleep(settings.fault_triage_delay)
    with _sessions().begin() as session:
        outcome = pipeline.run_triage(session, intake_id)
    if outcome.status in ("triaged", "failed"):
        # Screens read the change from the database; this only wakes them at once.
        notify.publish(settings.redis_url, "alert" if outcome.urgency in
                       ("emergency", "same_day") or outcome.status == "failed" else "change",
                       intake=intake_id)
    if outcome.deliver_revision is not None:
        dispatch(app, _sessions(), intake_id, JobKind.DELIVER, outcome.deliver_revision)
    return outcome.status


@app.task(name=TASK_DELIVER, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5)
def deliver(intake_id: str) -> str:
    """One delivery attempt; a transient failure schedules the next one."""
    step = pipeline.run_delivery(
        _sessions(), intake_id, settings=settings, adapter=_get_adapter(),
        build_bundle=build_bundle,
        backoff=pipeline.default_backoff(settings.retry_backoff_cap),
    )
    if step.status in ("delivered", "retry", "failed"):
        notify.publish(settings.redis_url, "change", intake=intake_id)
    if step.status == "retry" and step.retry_in is not None:
        # If this hand-over fails the sweeper finds the job after not_before.
        send(app, TASK_DELIVER, intake_id, countdown=step.retry_in)
    elif step.again:
        # A practitioner's change arrived while this attempt was under way (its own
        # message found the intake busy): send the newer state now.
        send(app, TASK_DELIVER, intake_id)
    return step.status


@app.task(name=TASK_SWEEP, acks_late=True, reject_on_worker_lost=True)
@locked_periodic("intake:sweep", settings.sweep_interval)
def sweep() -> dict[str, int]:
    """Re-enqueue stuck jobs (one sweeper at a time)."""
    counts = pipeline.sweep(
        _sessions(),
        lambda kind, intake_id: send(app, TASK_FOR_KIND[kind], intake_id),
        stuck_after=settings.stuck_after,
    )
    if counts["claimed"]:
        log.info("sweeper re-enqueued %d of %d stuck jobs", counts["sent"], counts["found"])
    return counts
