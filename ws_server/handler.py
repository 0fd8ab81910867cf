"""
One connection's life: authenticate, resume, then serve client commands.

The client's first message is ``hello``; it carries a ticket unless the
handshake carried Django's session cookie, and the id of the last event the
client has seen. The server replays what was missed from the database while
holding live frames aside, then releases them, so nothing arrives twice or
out of order (see docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from django.utils import timezone
from redis.asyncio import Redis
from redis.exceptions import RedisError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State

from notifications import selectors, services
from notifications.conf import settings
from notifications.payloads import event_message_of, event_payload
from notifications.wire import (
    Ack,
    AudienceSpec,
    CloseCode,
    Dismiss,
    Hello,
    MarkAllRead,
    MarkRead,
    ProtocolError,
    UserKey,
    encode_error,
    encode_frame,
    encode_notification,
    parse_client_message,
)

from . import lifecycle, metrics
from .acks import Acknowledgements
from .auth import AuthenticationFailed, Principal, authenticate_sessions, redeem_ticket
from .batching import Batcher, Gone, QueueFull
from .connection import GuardedConnection, guarded
from .core import Replay, Subscriber
from .db import DatabaseUnavailable, one_snapshot, run_orm
from .delivery import Dispatcher
from .limits import TokenBucket

__all__ = ["Handler", "HandlerConfig"]


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HandlerConfig:
    auth_timeout: float
    #: Seconds from hello until the replay is read (authentication included).
    handshake_timeout: float
    resume_limit: int
    rate_limit: float
    rate_burst: int
    max_connections_per_user: int


#: Most durable pushes one batch of resumes reads. Pushes are matched to
#: their recipients here, not in SQL, so a resume past more pushes than this
#: (to anyone) is told to resync rather than left with a gap.
PUSH_SCAN_LIMIT = 5_000


class Handler:
    """The ``websockets`` connection handler."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        redis: Redis,
        config: HandlerConfig,
        acknowledgements: Acknowledgements,
    ) -> None:
        self.dispatcher = dispatcher
        self.core = dispatcher.core
        self.acknowledgements = acknowledgements
        self.redis = redis
        self.config = config
        # Handshakes in a storm share their queries (see batching.py). Catch-up
        # batches are smaller: their query has a condition per resuming user.
        self.sessions = Batcher(authenticate_sessions)
        self.catchups = Batcher(
            functools.partial(load_catchups, limit=config.resume_limit),
            max_batch=200,
        )

    async def __call__(self, served: ServerConnection) -> None:
        connection = guarded(served)
        hello = await self._receive_hello(connection)
        if hello is None:
            return
        # One deadline from hello to the replay read, however long the
        # lookups wait in their queues (see batching.py): a server too busy
        # to answer in time says so, and the client retries with backoff.
        deadline = connection.loop.time() + self.config.handshake_timeout
        checked_at = time.monotonic()
        principal = await self._within(
            connection,
            deadline,
            "authentication",
            self._authenticate(connection, hello),
        )
        if principal is None:
            return
        if (
            self.core.count_of_user(principal.user_id)
            >= self.config.max_connections_per_user
        ):
            lifecycle.refused(
                connection,
                "too_many_connections",
                f"user {principal.user_id} has too many connections",
                code=CloseCode.TOO_MANY_CONNECTIONS,
            )
            await connection.close(
                CloseCode.TOO_MANY_CONNECTIONS, "too many connections"
            )
            return
        # No await between the lookup's end and this: the core applies the
        # revocations that passed while the lookup ran.
        sub, actions = self.core.register(
            connection, principal, checked_at, time.monotonic()
        )
        self.dispatcher.apply(actions)
        try:
            if not sub.closing:  # revoked while it authenticated: no replay
                replay = await self._within(
                    connection, deadline, "resume", self._load_replay(sub, hello)
                )
                if replay is None:
                    return
                self.dispatcher.apply(self.core.replayed(sub, replay))
            lifecycle.opened(
                connection,
                principal.user_id,
                by="session cookie" if hello.ticket is None else "ticket",
                accepted_at=connection.accepted_at,
            )
            await self._serve(sub)
        except ConnectionClosed:
            # A protocol error (an oversize frame, say), a lost connection,
            # or a client that closed while we answered it: the close line
            # says which, once the connection is gone.
            pass
        finally:
            self.core.discard(sub)

    async def _within(
        self,
        connection: GuardedConnection,
        deadline: float,
        step: str,
        work: Awaitable[T],
    ) -> T | None:
        """
        Await one step of the handshake by ``deadline``. If it fails, refuse
        the connection (one log line) and return None; so does ``work``
        itself when it refused the connection.
        """
        bound = asyncio.timeout_at(deadline)
        try:
            async with bound:
                return await work
        except Gone:
            lifecycle.refused(connection, "lost", f"closed during {step}")
        except TimeoutError as exc:
            if bound.expired():
                await self._too_slow(connection, step)
            else:  # a Redis command's own bound
                await self._try_again_later(connection, step, exc)
        except (DatabaseUnavailable, RedisError, QueueFull) as exc:
            await self._try_again_later(connection, step, exc)
        return None

    async def _try_again_later(
        self, connection: GuardedConnection, step: str, exc: BaseException
    ) -> None:
        if step == "authentication":
            metrics.AUTHENTICATIONS.labels("unavailable").inc()
        lifecycle.refused(
            connection,
            "unavailable",
            f"{step} unavailable ({str(exc) or type(exc).__name__})",
            code=CloseCode.TRY_AGAIN_LATER,
        )
        await connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    async def _too_slow(self, connection: GuardedConnection, step: str) -> None:
        """Refuse a handshake past its deadline: the server is too busy now."""
        if step == "authentication":
            metrics.AUTHENTICATIONS.labels("unavailable").inc()
        lifecycle.refused(
            connection,
            "handshake_timeout",
            f"{step} unavailable (handshake not done within "
            f"{self.config.handshake_timeout}s)",
            code=CloseCode.TRY_AGAIN_LATER,
        )
        await connection.close(CloseCode.TRY_AGAIN_LATER, "try again later")

    async def _receive_hello(self, connection: GuardedConnection) -> Hello | None:
        try:
            async with asyncio.timeout(self.config.auth_timeout):
                raw = await connection.recv()
        except TimeoutError:
            lifecycle.refused(
                connection,
                "hello_timeout",
                f"no hello within {self.config.auth_timeout}s",
                code=CloseCode.AUTHENTICATION_TIMEOUT,
            )
            await connection.close(
                CloseCode.AUTHENTICATION_TIMEOUT, "authentication timeout"
            )
            return None
        except ConnectionClosed as exc:
            lifecycle.refused(connection, "lost", f"closed before hello: {exc}")
            return None
        try:
            message = parse_client_message(raw)
        except ProtocolError as exc:
            lifecycle.refused(
                connection,
                "bad_hello",
                f"bad hello ({exc.code})",
                code=CloseCode.PROTOCOL_ERROR,
            )
            await connection.close(CloseCode.PROTOCOL_ERROR, "expected hello")
            return None
        if not isinstance(message, Hello):
            lifecycle.refused(
                connection,
                "bad_hello",
                "first message was not hello",
                code=CloseCode.PROTOCOL_ERROR,
            )
            await connection.close(CloseCode.PROTOCOL_ERROR, "expected hello")
            return None
        return message

    async def _authenticate(
        self, connection: GuardedConnection, hello: Hello
    ) -> Principal | None:
        """Authenticate with the ticket if any, else the handshake's cookie."""
        session_key: str | None
        ticket_user: UserKey | None = None
        try:
            if hello.ticket is not None:
                async with asyncio.timeout(settings.REDIS_TIMEOUT):
                    session_key, ticket_user = await redeem_ticket(
                        hello.ticket, self.redis
                    )
            else:
                session_key = connection.session_key
            if session_key is None:
                raise AuthenticationFailed("no session cookie and no ticket")
            principal = await self.sessions.load(
                session_key, wanted=lambda: connection.state is State.OPEN
            )
            if isinstance(principal, AuthenticationFailed):
                raise principal
            if ticket_user is not None and ticket_user != principal.user_id:
                raise AuthenticationFailed("ticket issued to another user")
            metrics.AUTHENTICATIONS.labels("ok").inc()
        except AuthenticationFailed as exc:
            metrics.AUTHENTICATIONS.labels("failed").inc()
            lifecycle.refused(
                connection,
                "authentication_failed",
                str(exc),
                code=CloseCode.AUTHENTICATION_FAILED,
            )
            await connection.close(
                CloseCode.AUTHENTICATION_FAILED, "authentication failed"
            )
            return None
        return principal

    async def _load_replay(self, sub: Subscriber, hello: Hello) -> Replay:
        """What the client missed, read with the next batch of resumes."""
        connection = sub.connection
        return await self.catchups.load(
            (sub.principal.user_id, hello.last_id),
            wanted=lambda: connection.state is State.OPEN and not sub.closing,
        )

    async def _serve(self, sub: Subscriber) -> None:
        connection = sub.connection
        bucket = TokenBucket(self.config.rate_limit, self.config.rate_burst)
        while True:
            # recv(), not ``async for``: an idle connection waits here, and
            # the iterator would hold one more suspended frame per connection.
            try:
                raw = await connection.recv()
            except ConnectionClosedOK:
                return
            if not bucket.take():
                lifecycle.closing(connection, CloseCode.RATE_LIMITED)
                await connection.close(CloseCode.RATE_LIMITED, "rate limit exceeded")
                return
            try:
                message = parse_client_message(raw)
            except ProtocolError as exc:
                await connection.send(encode_error(exc.code, exc.message))
                continue
            if isinstance(message, Hello):
                await connection.send(
                    encode_error("unexpected_hello", "already authenticated")
                )
                continue
            if isinstance(message, Ack):
                self.acknowledgements.acknowledge(
                    sub.principal.user_id, message.event_ids
                )
                continue
            try:
                await run_orm(apply_command, sub.principal.user_id, message)
            except DatabaseUnavailable:
                await connection.send(
                    encode_error("unavailable", "the database is unavailable; retry")
                )


def apply_command(user_id: UserKey, message: MarkRead | MarkAllRead | Dismiss) -> None:
    """Blocking: apply a client's read-state command for ``user_id``."""
    if isinstance(message, MarkRead):
        services.mark_read(user_id=user_id, event_id=message.event_id)
    elif isinstance(message, MarkAllRead):
        services.mark_all_read(user_id=user_id, up_to=message.up_to)
    else:
        services.dismiss(user_id=user_id, event_id=message.event_id)


def load_catchups(
    requests: Sequence[tuple[UserKey, int | None]], limit: int
) -> dict[tuple[UserKey, int | None], Replay]:
    """
    What each (user id, last seen event id) request missed, and its unread count.

    Blocking. Read in one snapshot when a request resumes, so that the
    unread counts count every notification replayed (a batch of new
    connections reads its counts alone: no transaction to pay for).
    """
    if all(last_id is None for _user_id, last_id in requests):
        return _read_catchups(requests, limit)
    with one_snapshot():
        return _read_catchups(requests, limit)


def _read_catchups(
    requests: Sequence[tuple[UserKey, int | None]], limit: int
) -> dict[tuple[UserKey, int | None], Replay]:
    """
    Blocking: :func:`load_catchups`' queries. One for the unread counts, one
    for the event ids the resuming users missed, one for those events, one
    for which of them each user read, one for the durable pushes; each
    event is encoded once for everyone who missed it. A user resuming from
    two positions at once (two tabs) is asked separately: the shared query
    keeps one per user.
    """
    unread = selectors.unread_counts(user_ids={user_id for user_id, _ in requests})
    positions: dict[UserKey, set[int]] = {}
    for user_id, last_id in requests:
        if last_id is not None:
            positions.setdefault(user_id, set()).add(last_id)
    shared = {user_id: min(ids) for user_id, ids in positions.items() if len(ids) == 1}
    shared_missed = selectors.missed_event_ids(after=shared, limit=limit + 1)
    missed: dict[tuple[UserKey, int], list[int]] = {}
    for user_id, last_id in requests:
        if last_id is None:
            continue
        if user_id in shared:
            missed[user_id, last_id] = shared_missed[user_id]
        else:
            own = selectors.missed_event_ids(after={user_id: last_id}, limit=limit + 1)
            missed[user_id, last_id] = own[user_id]
    events = selectors.events_by_id(
        ids={event_id for ids in missed.values() for event_id in ids}
    )
    frames = {
        event_id: encode_notification(event_payload(event), cursor=None)
        for event_id, event in events.items()
    }
    by_user: dict[UserKey, set[int]] = {}
    for (user_id, _last_id), event_ids in missed.items():
        by_user.setdefault(user_id, set()).update(event_ids)
    read: dict[UserKey, set[int]] = {}
    for user_id, event_id in selectors.read_among(missed=by_user):
        read.setdefault(user_id, set()).add(event_id)
    pushes, complete_from = _load_pushes(
        [last_id for _user_id, last_id in requests if last_id is not None]
    )
    catchups = {}
    for user_id, last_id in requests:
        event_ids = missed.get((user_id, last_id), []) if last_id is not None else []
        overflow = len(event_ids) > limit or (
            last_id is not None
            and complete_from is not None
            and last_id < complete_from
        )
        replay = [] if overflow else [(id_, frames[id_]) for id_ in event_ids]
        catchups[user_id, last_id] = Replay(
            last_id=last_id,
            notifications=replay,
            pushes=pushes if last_id is not None else (),
            unread=unread[user_id],
            read=frozenset(read.get(user_id, ())),
            overflow=overflow,
        )
    return catchups


def _load_pushes(
    last_ids: list[int],
) -> tuple[list[tuple[int, AudienceSpec, str]], int | None]:
    """
    Blocking: the newest ``PUSH_SCAN_LIMIT`` durable pushes after the lowest
    of ``last_ids`` still within their retention, oldest first, each encoded
    once; and the position from which that is every push after it: the id
    of the newest push not read (None: none was left).

    Newest first, so that one far-behind resumer in a batch costs only
    itself a resync, not the whole batch.
    """
    if not last_ids:
        return [], None
    events = selectors.latest_pushes_after(
        after=min(last_ids),
        sent_since=timezone.now() - timedelta(seconds=settings.PUSH_RETENTION),
        limit=PUSH_SCAN_LIMIT + 1,
    )
    complete_from = (
        events[PUSH_SCAN_LIMIT].pk if len(events) > PUSH_SCAN_LIMIT else None
    )
    pushes = []
    for event in reversed(events[:PUSH_SCAN_LIMIT]):
        message = event_message_of(event)
        assert message.event_id is not None  # a row has an id
        pushes.append(
            (message.event_id, message.audience, encode_frame(message, cursor=None))
        )
    return pushes, complete_from
