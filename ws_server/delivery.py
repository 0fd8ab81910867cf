"""
Apply what the relay reads to the connected clients.

Events go to the clients their audience covers. The relay hands over every
message of a Redis read at once, and consecutive events for the same
audience are sent together: each frame is serialized once for all clients,
and each client gets the whole run in one write, so a burst costs one system
call per client rather than one per client and event. A client whose write
buffer is past the limit is closed (``TOO_SLOW``) rather than allowed to hold
memory or slow anyone else; it reconnects and resumes from its last id.
Control messages re-check or close the connections they concern.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Collection, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

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

from .auth import AuthenticationFailed, authenticate_sessions
from .db import run_orm
from .hub import Client, Hub

__all__ = ["Dispatcher", "send"]

logger = logging.getLogger(__name__)


#: A frame for a client: the event id it carries (None for other frames), text.
Item = tuple[int | None, str]


def send(
    clients: Collection[Client],
    items: Sequence[Item],
    *,
    max_buffer: int,
    pending_limit: int,
) -> None:
    """Send ``items``, in order, to ``clients`` without waiting for any of them."""
    if not clients:
        # Common with several processes: the recipients are on another one.
        return
    frames = Frames([frame for _event_id, frame in items])
    for client in clients:
        if client.pending is not None:
            for event_id, frame in items:
                client.hold(event_id, frame, pending_limit)
        elif client.connection.transport.get_write_buffer_size() > max_buffer:
            logger.info("closing slow client %r", client)
            client.close(CloseCode.TOO_SLOW, "too slow")
        else:
            frames.write_to(client.connection)


class Frames:
    """
    Text frames serialized once and written to many connections.

    An uncompressed server frame is the same bytes on every connection (no
    mask, no per-connection state), so the run is built once and handed to
    each transport in one ``write``. A connection that negotiated
    permessage-deflate has its own compression context: its frames are
    compressed by its protocol, then written in one ``write`` as well.
    """

    def __init__(self, texts: list[str]) -> None:
        self.payloads = [text.encode() for text in texts]
        self.wire = b"".join(
            Frame(Opcode.TEXT, payload).serialize(mask=False)
            for payload in self.payloads
        )

    def write_to(self, connection: ServerConnection) -> None:
        protocol = connection.protocol
        if protocol.state is not State.OPEN:
            return  # closing: it would refuse frames, and resumes anyway
        try:
            if protocol.extensions:
                for payload in self.payloads:
                    protocol.send_text(payload)
                # One write for the run here too. An open connection's
                # pending output is frames only (EOF comes after closing).
                connection.transport.write(b"".join(protocol.data_to_send()))
            else:
                connection.transport.write(self.wire)
        except Exception as exc:  # one broken socket must not stop the fan-out
            logger.warning("could not write to %s: %r", connection.id, exc)


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

    async def dispatch(self, messages: Sequence[RedisMessage]) -> None:
        """Apply messages in order; runs of events go out together."""
        events: list[EventMessage] = []
        for message in messages:
            if isinstance(message, EventMessage):
                events.append(message)
                continue
            self.deliver(events)
            events = []
            if isinstance(message, UserFrame):
                self._send(self.hub.of_user(message.user_id), [(None, message.frame)])
            elif isinstance(message, SessionEnded):
                for client in self.hub.of_session(message.session):
                    logger.info("closing %r: session ended", client)
                    client.close(CloseCode.SESSION_REVOKED, "session ended")
            elif isinstance(message, UserChanged):
                await self.recheck(self.hub.of_user(message.user_id))
        self.deliver(events)

    def deliver(self, events: Sequence[EventMessage]) -> None:
        """
        Send events to their audiences, once each, in order.

        Consecutive events with the same recipients (the hub returns the same
        set for "everyone" or "staff") are sent as one run.
        """
        recipients: Collection[Client] | None = None
        run: list[Item] = []
        for event in events:
            if not self._recent.add(event.event_id):
                continue
            self.last_event_id = max(self.last_event_id, event.event_id)
            clients = self.hub.recipients(event.audience)
            if clients is not recipients and run:
                self._send(recipients or (), run)
                run = []
            recipients = clients
            run.append((event.event_id, event.frame))
        if run:
            self._send(recipients or (), run)

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
            self.deliver(messages)
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

    async def recheck(self, clients: list[Client], batch_size: int = 500) -> None:
        """Re-authenticate clients; close the refused, re-index the rest."""
        for start in range(0, len(clients), batch_size):
            batch = clients[start : start + batch_size]
            keys = [client.principal.session_key for client in batch]
            results = await run_orm(authenticate_sessions, keys)
            for client, key in zip(batch, keys, strict=True):
                principal = results[key]
                if isinstance(principal, AuthenticationFailed):
                    logger.info("closing %r: %s", client, principal)
                    client.close(CloseCode.SESSION_REVOKED, "session revoked")
                elif client in self.hub:  # it may have left while the check ran
                    self.hub.update(client, principal)
                    logger.debug("re-checked %r: still authorized", client)

    def _send(self, clients: Collection[Client], items: Sequence[Item]) -> None:
        send(
            clients,
            items,
            max_buffer=self.max_buffer,
            pending_limit=self.pending_limit,
        )
