"""Connectivity checks shared by /readyz and `intake doctor`."""

from __future__ import annotations

import time
from typing import Any

import redis
from sqlalchemy import text

from intake.storage.db import get_engine


def check_database(url: str) -> dict[str, Any]:
    started = time.monotonic()
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}


def check_broker(url: str | None) -> dict[str, Any]:
    if not url:
        return {"ok": False, "error": "INTAKE_REDIS_URL is not set"}
    started = time.monotonic()
    try:
        client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        client.ping()
        client.close()
    except redis.exceptions.RedisError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
