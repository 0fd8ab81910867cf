"""
Carry out what the delivery core decides: write frames, close connections,
queue re-checks.

The relay hands over every message of a Redis read at once, and the core
turns consecutive events for the same audience into one run: each frame is
serialized once for all clients, and each client gets the whole run in one
write, so a burst costs one system call per client rather than one per
client and event. A client whose write buffer is past the limit is closed
(``TOO_SLOW``) rather than allowed to hold memory or slow anyone else; it
reconnects and resumes from its last id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from notifications import selectors
from notifications.wire import CloseCode, EventMessage, RedisMessage

from . import lifecycle, metrics
from .core import Action, Close, Core, Recheck, Send, Subscriber
from .db import run_orm
from .ledger import Ledger

__all__ = ["Dispatcher", "Frames", "initial_ledger"]

logger = logging.getLogger(__name__)


class Frames:
    """
    Text frames serialized once and written to many connections.

    An uncompressed server frame is the same bytes on every connection (no
    mask, no per-connection state), so the run is built once and handed to
    each transport in one ``write``. A connection that negotiated
    permessage-deflate has its own compression context: its frames are
    compressed by its protocol, then written in one ``write`` as well.

    Writing beside websockets rather than through ``send()`` is valid only
    while every message is one final frame. Never fragmented: nothing in
    ws_server sends a message in pieces, so no connection is ever between
    fragments, where these bytes would land inside someone else's message.
    Never masked: servers don't mask (RFC 6455 5.1), so the bytes don't
    depend on the connection. Never shared compressed: a deflate
    connection's bytes depend on its own context, so it takes the
    per-connection path. tests/test_websockets_contract.py checks all
    three, and the websockets internals used here.
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
    The delivery core's hands: everything it returns is carried out here.

    Re-checks the core asks for are queued for the re-checker
    (``ws_server.maintenance``), which batches them off the relay's path.
    """

    def __init__(self, core: Core, *, max_buffer: int) -> None:
        self.core = core
        self.max_buffer = max_buffer
        #: Connections the core wants re-checked, and a flag that says so.
        self.recheck_requests: set[Subscriber] = set()
        self.recheck_wanted = asyncio.Event()
        # Close handshakes under way; each removes itself when done.
        self._closing: set[asyncio.Task[None]] = set()

    def dispatch(self, messages: Sequence[RedisMessage]) -> None:
        """Apply messages read from the stream, in order."""
        self.apply(self.core.receive(messages, time.monotonic()))

    def deliver_swept(
        self, events: Sequence[EventMessage], missing_since: float
    ) -> None:
        """Deliver events the sweep found in the database."""
        self.apply(self.core.swept(events, missing_since, time.monotonic()))

    def apply(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action)
            elif isinstance(action, Close):
                self._close(action)
            elif isinstance(action, Recheck):
                self.recheck_requests.update(action.subscribers)
                self.recheck_wanted.set()

    def close(
        self, sub: Subscriber, code: int, reason: str, cause: str | None = None
    ) -> None:
        self.apply(self.core.close(sub, code, reason, cause))

    def _send(self, action: Send) -> None:
        """Write a run to its subscribers without waiting for any of them."""
        subscribers = action.subscribers
        if not subscribers:
            # Common with several processes: the recipients are on another one.
            return
        frames = Frames([frame for _event_id, frame in action.items])
        reached = 0
        too_slow = []
        for sub in subscribers:
            if sub.closing:
                continue  # revoked or too slow: it gets nothing more
            connection = sub.connection
            if connection.transport.get_write_buffer_size() > self.max_buffer:
                too_slow.append(sub)
                continue
            frames.write_to(connection)
            reached += 1
        for sub in too_slow:
            self.close(sub, CloseCode.TOO_SLOW, "too slow")
        events = sum(1 for event_id, _frame in action.items if event_id is not None)
        if reached and events:
            metrics.DELIVERIES.inc(reached * events)

    def _close(self, action: Close) -> None:
        connection = action.subscriber.connection
        lifecycle.closing(connection, action.code, action.cause)
        task = asyncio.create_task(connection.close(action.code, action.reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


async def initial_ledger(lookback: int = 1_000) -> Ledger:
    """
    The ledger of a process that starts now: after the newest committed
    event (clients resume the rest). Ids missing among the last
    ``lookback`` may belong to transactions that haven't committed yet:
    they start as gaps.
    """
    return await run_orm(_initial_ledger, lookback, time.monotonic())


def _initial_ledger(lookback: int, now: float) -> Ledger:
    """Blocking: see ``initial_ledger``."""
    high = selectors.latest_event_id()
    floor = max(high - lookback, 0)
    present = set(selectors.event_ids_after(after=floor, limit=lookback))
    return Ledger(high, (i for i in range(floor + 1, high) if i not in present), now)
