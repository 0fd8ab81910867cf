"""
Apply what the relay reads to the connected clients.

Events go to the clients their audience covers, encoded once and written to
every socket with ``websockets.broadcast``. A client whose write buffer is
past the limit is closed (``TOO_SLOW``) rather than allowed to hold memory or
slow anyone else; it reconnects and resumes from its last id. Control
messages re-check or close the connections they concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable

from websockets.asyncio.server import broadcast

from notifications import selectors
from notifications.payloads import audience_spec, event_payload
from notifications.wire import (
    CloseCode,
    EventMessage,
    RedisMessage,
    SessionEnded,
    UserChanged,
    UserFrame,
    event_message,
)

from .auth import AuthenticationFailed, authenticate_session
from .db import run_orm
from .hub import Client, Hub

__all__ = ["Dispatcher", "send"]

logger = logging.getLogger(__name__)


def send(
    clients: Iterable[Client],
    event_id: int | None,
    frame: str,
    *,
    max_buffer: int,
    pending_limit: int,
) -> None:
    """Send ``frame`` to ``clients`` without waiting for any of them."""
    ready = []
    for client in clients:
        if client.pending is not None:
            client.hold(event_id, frame, pending_limit)
        elif client.connection.transport.get_write_buffer_size() > max_buffer:
            logger.info("closing slow client %r", client)
            client.close(CloseCode.TOO_SLOW, "too slow")
        else:
            ready.append(client.connection)
    broadcast(ready, frame)


class RecentIds:
    """The last ``size`` event ids relayed, to drop the ones seen twice."""

    def __init__(self, size: int) -> None:
        self._ids: OrderedDict[int, None] = OrderedDict()
        self._size = size

    def add(self, event_id: int) -> bool:
        """Remember ``event_id``; return False if it was already there."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class Dispatcher:
    """Turn Redis messages (and database catch-up) into frames for the hub."""

    def __init__(self, hub: Hub, *, max_buffer: int, pending_limit: int) -> None:
        self.hub = hub
        self.max_buffer = max_buffer
        self.pending_limit = pending_limit
        # Highest event id relayed: after an outage, catch up from here.
        self.last_event_id = 0
        self._recent = RecentIds(10_000)
        # Set after a Redis outage: revocations published meanwhile are lost,
        # so every connection is checked again.
        self._recheck_everyone = False

    async def start(self) -> None:
        """Start from the newest committed event; clients resume the rest."""
        self.last_event_id = await run_orm(selectors.latest_event_id)

    async def dispatch(self, message: RedisMessage) -> None:
        if isinstance(message, EventMessage):
            self.deliver(message)
        elif isinstance(message, UserFrame):
            self._send(self.hub.of_user(message.user_id), None, message.frame)
        elif isinstance(message, SessionEnded):
            for client in self.hub.of_session(message.session):
                logger.info("closing %r: session ended", client)
                client.close(CloseCode.SESSION_REVOKED, "session ended")
        elif isinstance(message, UserChanged):
            await self.recheck(self.hub.of_user(message.user_id))

    def deliver(self, message: EventMessage) -> None:
        if not self._recent.add(message.event_id):
            return
        self.last_event_id = max(self.last_event_id, message.event_id)
        self._send(
            self.hub.recipients(message.audience), message.event_id, message.frame
        )

    async def catch_up(self, batch_size: int = 500) -> int:
        """
        Relay events committed while Redis was out of reach; return how many.

        The database has every committed event, so a relay that lost Redis
        reads what it missed from there; events also read from the stream
        later are dropped by id.
        """
        delivered = 0
        while True:
            messages = await run_orm(self._load_events, self.last_event_id, batch_size)
            for message in messages:
                self.deliver(message)
            delivered += len(messages)
            if len(messages) < batch_size:
                self._recheck_everyone = True
                return delivered

    @staticmethod
    def _load_events(after: int, limit: int) -> list[EventMessage]:
        return [
            event_message(event_payload(event), audience_spec(event))
            for event in selectors.events_after(after=after, limit=limit)
        ]

    async def maintain(self, interval: float = 1.0) -> None:
        """
        Re-check sessions that expired, and everyone after an outage; forever.

        Runs beside the relay so that a long re-check never holds up events.
        """
        while True:
            if self._recheck_everyone:
                self._recheck_everyone = False
                clients = self.hub.clients()
                logger.info(
                    "re-checking %d connection(s) after the outage", len(clients)
                )
                await self.recheck(clients)
            await self.recheck(self.hub.expired(time.time()))
            await asyncio.sleep(interval)

    async def recheck(self, clients: list[Client]) -> None:
        """Re-authenticate clients; close the refused, re-index the rest."""
        for client in clients:
            try:
                principal = await run_orm(
                    authenticate_session, client.principal.session_key
                )
            except AuthenticationFailed as exc:
                logger.info("closing %r: %s", client, exc)
                client.close(CloseCode.SESSION_REVOKED, "session revoked")
            else:
                # The client may have left while the check ran.
                if client in self.hub:
                    self.hub.update(client, principal)
                    logger.debug("re-checked %r: still authorized", client)

    def _send(
        self, clients: Iterable[Client], event_id: int | None, frame: str
    ) -> None:
        send(
            clients,
            event_id,
            frame,
            max_buffer=self.max_buffer,
            pending_limit=self.pending_limit,
        )
