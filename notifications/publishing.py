"""
Publish committed changes to Redis, for every ws_server process to relay.

Callers schedule these functions with ``transaction.on_commit(..., robust=True)``:
a message never announces a row that may still roll back. Publishing never
raises into the caller's request and waits at most one short Redis timeout
(see ``broker.get_redis``): when Redis is down or hung the rows are already
in the database, and the ws_server reconciles events from there and re-checks
connections for the control messages it missed.
"""

import contextlib
import hashlib
import logging
from collections.abc import Iterator

import redis

from . import wire
from .breaker import CircuitOpen
from .broker import get_redis, stream_key
from .conf import settings
from .models import Event
from .payloads import audience_spec, event_payload

__all__ = [
    "publish_dismissed",
    "publish_event",
    "publish_group_changed",
    "publish_pushes",
    "publish_read",
    "publish_session_ended",
    "publish_user_changed",
    "session_digest",
]

logger = logging.getLogger(__name__)


def publish_event(event: Event) -> None:
    """Announce a committed event to its audience."""
    with _publishing(f"event {event.pk}"):
        _xadd(wire.encode_event(event_payload(event), audience_spec(event)))


def publish_pushes(messages: list[str], *, what: str) -> None:
    """
    Announce pushes, encoded by ``notifications.services`` when they were
    made, in one round trip to Redis (a pipeline, guarded by the breaker
    like a single command) however many there are.
    """
    with _publishing(what):
        client = get_redis()
        pipeline = client.pipeline(transaction=False)
        for message in messages:
            _xadd(message, pipeline)
        client.breaker.call(pipeline.execute)


def publish_read(
    user_id: object,
    *,
    ids: list[int] | None = None,
    up_to: int | None = None,
    unread: int,
) -> None:
    """Tell every open tab of ``user_id`` that notifications were read."""
    with _publishing(f"read state of user {user_id}"):
        frame = wire.encode_read_state(ids=ids, up_to=up_to, unread=unread)
        _xadd(wire.encode_for_user(wire.user_key(user_id), frame))


def publish_dismissed(user_id: object, *, ids: list[int], unread: int) -> None:
    """Tell every open tab of ``user_id`` that notifications were dismissed."""
    with _publishing(f"dismissal for user {user_id}"):
        frame = wire.encode_dismissed(ids=ids, unread=unread)
        _xadd(wire.encode_for_user(wire.user_key(user_id), frame))


def publish_session_ended(session_key: str) -> None:
    """Close the connections authenticated by a session that just ended."""
    # The key is a credential: the log names no session.
    with _publishing("session end"):
        _xadd(wire.encode_session_ended(session_digest(session_key)))


def publish_user_changed(user_id: object) -> None:
    """Make every ws_server re-check the connections of ``user_id`` (a pk)."""
    with _publishing(f"change of user {user_id}"):
        _xadd(wire.encode_user_changed(wire.user_key(user_id)))


def publish_group_changed(group_id: int) -> None:
    """Make every ws_server re-check the connections of the group's members."""
    with _publishing(f"change of group {group_id}"):
        _xadd(wire.encode_group_changed(group_id))


def session_digest(session_key: str) -> str:
    """Name a session on the wire without revealing its key (a credential)."""
    return hashlib.sha256(session_key.encode()).hexdigest()


def _xadd(payload: str, client: redis.Redis | None = None) -> None:
    (client or get_redis()).xadd(
        stream_key(),
        {"m": payload},
        maxlen=settings.STREAM_MAXLEN,
        approximate=True,
    )


@contextlib.contextmanager
def _publishing(what: str) -> Iterator[None]:
    """Log and swallow whatever goes wrong: publishing never fails a request."""
    try:
        yield
    except CircuitOpen:
        # Skipped at once: the failure that opened the breaker was logged.
        logger.debug("%s not published: Redis failed moments ago", what)
    except redis.RedisError as exc:
        # Nothing is lost: the database has the rows and the ws_server
        # reconciles; later publishes are skipped while the breaker is open.
        logger.warning("%s not published, Redis failed: %s", what, exc)
    except Exception:
        logger.exception("%s not published", what)
