"""Periodic tasks that must never overlap: one Redis lock per task.

Beat may run twice (two schedulers by mistake, or a late message beside a fresh one);
each periodic body runs only while holding its lock and answers ``{"skipped": 1}``
otherwise. The lock expires by itself (four intervals, at least a minute) if its holder
dies, and every body is safe to run twice anyway (compare-and-set per row): the lock
only saves work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import redis

from workers import settings

Counts = dict[str, int]


def locked_periodic(lock_name: str, interval: float) -> Callable[[Callable[[], Counts]],
                                                                   Callable[[], Counts]]:
    """Run the decorated body under the Redis lock ``lock_name`` (non-blocking)."""

    def wrap(body: Callable[[], Counts]) -> Callable[[], Counts]:
        @functools.wraps(body)
        def run() -> Counts:
            client = redis.Redis.from_url(settings.redis_url or "", socket_timeout=5)
            lock = client.lock(lock_name, timeout=max(60.0, 4 * interval), blocking=False)
            if not lock.acquire(blocking=False):
                return {"skipped": 1}
            try:
                return body()
            finally:
                try:
                    lock.release()
                except redis.exceptions.LockError:
                    pass  # expired meanwhile; the per-row compare-and-set still holds

        return run

    return wrap
