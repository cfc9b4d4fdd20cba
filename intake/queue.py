"""The Celery application and how the web app hands work to it.

Only ids travel through Redis, in JSON. A failed hand-over is not an error for
the caller: the job row is already committed and the sweeper will enqueue it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import Celery

from intake.config import Settings

log = logging.getLogger(__name__)

TASK_TRIAGE = "intake.triage"
TASK_DELIVER = "intake.deliver"
TASK_SWEEP = "intake.sweep"
QUEUE = "intake"


def make_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    """The one Celery app of the plugin, configured from the settings."""
    url = broker_url or settings.redis_url
    if not url:
        raise RuntimeError("INTAKE_REDIS_URL is not set")
    app = Celery("intake", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_default_queue=QUEUE,
        # Tasks are short and acknowledged late: take one at a time so a
        # killed worker strands at most one message per process.
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=settings.broker_timeout,
        broker_transport_options={
            # Above the longest retry countdown: a message waiting for its ETA
            # must not be handed to a second worker meanwhile.
            "visibility_timeout": settings.visibility_timeout,
            "socket_connect_timeout": settings.broker_timeout,
            "socket_timeout": max(settings.broker_timeout, 5.0),
            # Publishing: one quick retry, then give up. The job row is already
            # committed and the sweeper enqueues it, so a tablet never waits on
            # a broker that is away. (The worker's consumer reconnects on its own.)
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule={
            "sweep": {
                "task": TASK_SWEEP,
                "schedule": timedelta(seconds=settings.sweep_interval),
                "options": {"expires": max(settings.sweep_interval, 1.0)},
            }
        },
    )
    return app


def send(app: Celery, task_name: str, intake_id: str, *, countdown: float | None = None) -> bool:
    """Hand one task to the broker; False (logged, never raised) when it is down."""
    try:
        app.send_task(task_name, args=[intake_id], countdown=countdown, retry=False,
                      queue=QUEUE)
    except Exception as exc:  # the broker being away must never fail a submission
        log.warning("broker unavailable, %s for intake %s left to the sweeper (%s)",
                    task_name, intake_id, type(exc).__name__)
        return False
    return True
