"""The Celery worker entry point: ``celery -A workers worker`` / ``celery -A workers beat``.

Configuration comes from the same ``INTAKE_*`` variables as the web app and is
checked here, at start-up: a bad setting stops the worker with its name.
"""

from __future__ import annotations

import sys

from intake.config import ConfigError, load_settings
from intake.queue import make_celery

try:
    settings = load_settings()
    if not settings.redis_url:
        raise ConfigError("INTAKE_REDIS_URL: required by the worker and beat "
                          "(only `intake serve` starts a private Redis)")
except ConfigError as exc:
    sys.stderr.write(f"configuration error: {exc}\n")
    raise SystemExit(2) from None

app = make_celery(settings)
app.conf.include = ["workers.tasks", "workers.kiosk_tasks"]

from workers import kiosk_tasks as kiosk_tasks  # noqa: E402  (tablet-session sweeper)
from workers import tasks as tasks  # noqa: E402  (registers the tasks on `app`)
