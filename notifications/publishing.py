"""
Publish committed changes to Redis, for every ws_server process to relay.

Callers schedule these functions with ``transaction.on_commit``: a message
never announces a row that may still roll back. Publishing never raises into
the caller's request: when Redis is down the rows are already in the database,
and the relays and clients catch up from there when Redis returns.
"""

import hashlib
import logging

import redis

from . import wire
from .broker import get_redis, stream_key
from .conf import settings
from .models import Event
from .payloads import audience_spec, event_payload

__all__ = [
    "publish_dismissed",
    "publish_event",
    "publish_read",
    "publish_session_ended",
    "publish_user_changed",
    "session_digest",
]

logger = logging.getLogger(__name__)


def publish_event(event: Event) -> None:
    """Announce a committed event to its audience."""
    _publish(wire.encode_event(event_payload(event), audience_spec(event)), event.pk)


def publish_read(
    user_id: int, *, ids: list[int] | None = None, up_to: int | None = None, unread: int
) -> None:
    """Tell every open tab of ``user_id`` that notifications were read."""
    frame = wire.encode_read_state(ids=ids, up_to=up_to, unread=unread)
    _publish(wire.encode_for_user(user_id, frame))


def publish_dismissed(user_id: int, *, ids: list[int], unread: int) -> None:
    """Tell every open tab of ``user_id`` that notifications were dismissed."""
    _publish(
        wire.encode_for_user(user_id, wire.encode_dismissed(ids=ids, unread=unread))
    )


def publish_session_ended(session_key: str) -> None:
    """Close the connections authenticated by a session that just ended."""
    _publish(wire.encode_session_ended(session_digest(session_key)))


def publish_user_changed(user_id: int) -> None:
    """Make every ws_server re-check the connections of ``user_id``."""
    _publish(wire.encode_user_changed(user_id))


def session_digest(session_key: str) -> str:
    """Name a session on the wire without revealing its key (a credential)."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def _publish(payload: str, event_id: int | None = None) -> None:
    try:
        get_redis().xadd(
            stream_key(),
            {"m": payload},
            maxlen=settings.STREAM_MAXLEN,
            approximate=True,
        )
    except redis.RedisError as exc:
        # Nothing is lost: the database has the rows and relays catch up.
        logger.warning("publish to Redis failed (event %s): %s", event_id, exc)
