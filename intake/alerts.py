"""Staff alerts: an emergency result is announced on a Redis channel at once.

The message carries the intake id and urgency only; screens that show it load
the rest with their own signed-in session.
"""

from __future__ import annotations

import json
import logging

import redis

from intake.config import Settings

log = logging.getLogger(__name__)
CHANNEL = "intake:alerts"


def publish_emergency(settings: Settings, intake_id: str) -> bool:
    if not settings.redis_url:
        return False
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=2,
                                      socket_connect_timeout=2)
        client.publish(CHANNEL, json.dumps({"intake_id": intake_id, "urgency": "emergency"}))
    except redis.exceptions.RedisError as exc:
        # Staff screens also poll the database, so a lost publish delays, not loses.
        log.warning("could not publish the emergency alert for intake %s (%s)", intake_id,
                    type(exc).__name__)
        return False
    return True
