"""Wake the live process after a change is committed (Redis pub/sub, ids only).

A notice only wakes the live process early: it reads what changed from the database
(the system of record), once a second anyway, so a lost notice (Redis down, a publish
that failed) delays a screen by at most a second and loses nothing. Messages carry a
kind and ids, never patient data.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

log = logging.getLogger(__name__)

CHANNEL = "intake:live"
# What changed: an alert (raised, answered, escalated), the intakes the worklist lists
# (arrival, result, delivery, review action), a device (revoked) or a staff sign-in
# (signed out, disabled): for the last two the live process checks its streams at once.
KINDS = frozenset({"alert", "change", "device", "session"})

_clients: dict[str, Any] = {}
_lock = threading.Lock()


def _client(url: str) -> Any:
    with _lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_timeout=1, socket_connect_timeout=1)
        return client


def publish(redis_url: str | None, kind: str, **ids: Any) -> bool:
    """Announce a committed change; False (logged, never raised) when Redis is away."""
    if kind not in KINDS:
        raise ValueError(f"unknown notice kind {kind!r}")
    if not redis_url:
        return False
    try:
        _client(redis_url).publish(CHANNEL, json.dumps({"kind": kind, **ids}))
    except redis.exceptions.RedisError as exc:
        log.warning("could not publish a %s notice (%s); screens catch up within a second",
                    kind, type(exc).__name__)
        return False
    return True


def reset_after_fork() -> None:
    """Connections must not be shared across a fork (worker pool children)."""
    with _lock:
        _clients.clear()
