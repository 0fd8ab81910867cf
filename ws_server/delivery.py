"""
Apply what the relay reads to the connected clients.

Events go to the clients their audience covers. The relay hands over every
message of a Redis read at once, and consecutive events for the same
audience are sent together: each frame is serialized once for all clients,
and each client gets the whole run in one write, so a burst costs one system
call per client rather than one per client and event. A client whose write
buffer is past the limit is closed (``TOO_SLOW``) rather than allowed to hold
memory or slow anyone else; it reconnects and resumes from its last id.
Control messages close the connections they concern, or have them
re-checked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from notifications import selectors
from notifications.wire import (
    CloseCode,
    EventMessage,
    GroupChanged,
    RedisMessage,
    SessionEnded,
    UserChanged,
    UserFrame,
    encode_frame,
)

from . import metrics
from .db import run_orm
from .hub import Client, Hub
from .ledger import Ledger
from .maintenance import Rechecker, Revocations

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
) -> int:
    """
    Send ``items``, in order, to ``clients`` without waiting for any of them;
    return how many clients they went to (or wait for, while resuming).
    """
    if not clients:
        # Common with several processes: the recipients are on another one.
        return 0
    frames = Frames([frame for _event_id, frame in items])
    reached = len(clients)
    for client in clients:
        if client.closing:
            reached -= 1
            continue  # revoked or too slow: it gets nothing more
        if client.pending is not None:
            for event_id, frame in items:
                client.hold(event_id, frame, pending_limit)
        elif client.connection.transport.get_write_buffer_size() > max_buffer:
            reached -= 1
            client.close(CloseCode.TOO_SLOW, "too slow")
        elif client.ahead:
            # Rare: just resumed, and the replay read some of these first.
            own = [
                frame for event_id, frame in items if not client.already_sent(event_id)
            ]
            if own:
                Frames(own).write_to(client.connection)
        else:
            frames.write_to(client.connection)
    return reached


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


class Dispatcher:
    """
    Turn Redis messages and reconciled events into frames for the hub.

    The ledger lets each event through once, whether it came by the stream,
    by the database sweep, or both. Control messages never wait on the
    database here: a session that ended is closed at once, and a user that
    changed is handed to the re-checker, which batches and coalesces.
    """

    def __init__(
        self,
        hub: Hub,
        revocations: Revocations,
        rechecker: Rechecker,
        *,
        max_buffer: int,
        pending_limit: int,
    ) -> None:
        self.hub = hub
        self.revocations = revocations
        self.rechecker = rechecker
        self.max_buffer = max_buffer
        self.pending_limit = pending_limit
        self.ledger = Ledger()

    async def start(self, lookback: int = 1_000) -> None:
        """
        Start after the newest committed event; clients resume the rest.

        Ids missing among the last ``lookback`` may belong to transactions
        that haven't committed yet: they start as gaps.
        """
        self.ledger = await run_orm(_initial_ledger, lookback, time.monotonic())

    def dispatch(self, messages: Sequence[RedisMessage]) -> None:
        """Apply messages in order; runs of events go out together."""
        now = time.monotonic()
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
                self.revocations.session_ended(message.session, now)
                for client in self.hub.of_session(message.session):
                    client.close(CloseCode.SESSION_REVOKED, "session ended")
            elif isinstance(message, UserChanged):
                self.revocations.user_changed(message.user_id, now)
                self.rechecker.request(message.user_id)
            elif isinstance(message, GroupChanged):
                self.revocations.group_changed(message.group_id, now)
                for client in self.hub.of_group(message.group_id):
                    self.rechecker.request(client.principal.user_id)
        self.deliver(events)

    def deliver(self, events: Sequence[EventMessage]) -> None:
        """
        Send events to their audiences, once each, in order.

        Each frame carries the ledger's cursor as it stands once the event
        is accepted; a live-only push has no id, so the ledger never sees
        it. Consecutive events with the same recipients (the hub returns the
        same set for "everyone" or "staff") are sent as one run.
        """
        now = time.monotonic()
        recipients: Collection[Client] | None = None
        run: list[Item] = []
        for event in events:
            if event.event_id is not None and not self.ledger.accept(
                event.event_id, now
            ):
                continue
            frame = encode_frame(event, cursor=self.ledger.cursor)
            clients = self.hub.recipients(event.audience)
            if clients is not recipients and run:
                self._send_events(recipients or (), run)
                run = []
            recipients = clients
            run.append((event.event_id, frame))
        if run:
            self._send_events(recipients or (), run)

    def _send_events(self, clients: Collection[Client], run: Sequence[Item]) -> None:
        """Send a run of events; count its deliveries once for the whole run."""
        reached = self._send(clients, run)
        if reached:
            metrics.DELIVERIES.inc(reached * len(run))

    def _send(self, clients: Collection[Client], items: Sequence[Item]) -> int:
        return send(
            clients,
            items,
            max_buffer=self.max_buffer,
            pending_limit=self.pending_limit,
        )


def _initial_ledger(lookback: int, now: float) -> Ledger:
    """Blocking: the ledger of a process that starts now."""
    high = selectors.latest_event_id()
    floor = max(high - lookback, 0)
    present = set(selectors.event_ids_after(after=floor, limit=lookback))
    return Ledger(high, (i for i in range(floor + 1, high) if i not in present), now)
