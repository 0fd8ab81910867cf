"""
Bound what one client's socket can cost the server, from TCP accept on.

Below the handler, websockets does work for a client by itself: it answers
every ping with a pong, buffers whatever the client doesn't read, and every
accepted TCP connection holds a file descriptor, handshake or not. A client
can turn that into CPU, memory or descriptors taken from everyone else.
``GuardedConnection`` (``serve(create_connection=...)``) caps each of them:

* Admission: open TCP connections are counted from accept to close, per
  client address and in all. Past ``max_per_address``, or past what the soft
  ``RLIMIT_NOFILE`` leaves after ``FD_RESERVE`` descriptors, a new connection
  is aborted at once (no HTTP response), so the process never runs into
  EMFILE, where accept would fail for everybody.
* Control frames: pings and pongs from the client spend a token bucket;
  an empty bucket fails the connection with 4008 and its input is dropped.
* Output: once the transport holds more than ``max_buffer`` bytes for the
  client, reading from it stops (nothing it sends can add pongs); if it is
  still over ``OUTPUT_GRACE`` seconds later, the connection is aborted. A
  closing connection whose close frame is stuck behind unread output is
  aborted at its close deadline.
* Handshakes that websockets refuses or drops silently (open timeout,
  malformed or oversize request) are logged once, with the peer.

Counts are per process: ``runwsserver --workers N`` has N of each.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from websockets.asyncio.server import Server, ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Event, State
from websockets.server import ServerProtocol

from notifications.wire import CloseCode, UserKey

from . import lifecycle
from .limits import TokenBucket

__all__ = [
    "FD_RESERVE",
    "Admission",
    "ConnectionLimits",
    "GuardedConnection",
    "guarded",
    "guarded_connection",
]

logger = logging.getLogger(__name__)

#: Descriptors kept out of the connection budget: Redis, the database, log
#: files, the listening sockets, the event loop's own.
FD_RESERVE = 32

#: Share of the connection budget at which a warning is logged, and the share
#: it must drop under before the warning can be logged again.
WARN_AT = 0.9
REARM_BELOW = 0.8

#: Bytes of input fed to websockets at a time. It parses every frame it is
#: given and queues a pong for each ping before we see any of them, so the
#: control-frame limit can only cut a flood off between slices.
INPUT_SLICE = 4096

#: Seconds a client whose output is over the limit has to drain it, and how
#: often its buffer is looked at meanwhile.
OUTPUT_GRACE = 2.0
OUTPUT_CHECK_INTERVAL = 0.25


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    control_rate: float
    control_burst: int
    max_buffer: int
    #: Open TCP connections from one client address; 0 for no cap.
    max_per_address: int


class Admission:
    """
    Open TCP connections, per client address and in all; no I/O.

    ``fd_limit`` is the soft RLIMIT_NOFILE (None: unlimited); connections
    may use all of it but ``fd_reserve`` descriptors.
    """

    def __init__(
        self, *, max_per_address: int, fd_limit: int | None, fd_reserve: int
    ) -> None:
        self.max_per_address = max_per_address
        self.fd_limit = fd_limit
        self.fd_reserve = fd_reserve
        self.capacity = None if fd_limit is None else max(fd_limit - fd_reserve, 0)
        self._by_address: Counter[str] = Counter()
        self._open = 0
        self._warned = False

    def __len__(self) -> int:
        return self._open

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``, or return why it's refused."""
        if self.capacity is not None and self._open >= self.capacity:
            return (
                f"too many open connections ({self._open}, the most the file "
                f"descriptor limit of {self.fd_limit} allows with "
                f"{self.fd_reserve} kept in reserve)"
            )
        if self.max_per_address and self._by_address[address] >= self.max_per_address:
            return "too many connections from this address"
        self._by_address[address] += 1
        self._open += 1
        if self.capacity and not self._warned and self._open >= self.capacity * WARN_AT:
            self._warned = True
            logger.warning(
                "%d connections open, %d%% of the %d the file descriptor limit "
                "allows (soft RLIMIT_NOFILE %d, %d kept in reserve): raise the "
                "limit or add processes; past it new connections are refused",
                self._open,
                round(WARN_AT * 100),
                self.capacity,
                self.fd_limit,
                self.fd_reserve,
            )
        return None

    def release(self, address: str) -> None:
        """Forget a connection that ``admit`` counted."""
        self._by_address[address] -= 1
        if not self._by_address[address]:
            del self._by_address[address]
        self._open -= 1
        if self._warned and self.capacity and self._open < self.capacity * REARM_BELOW:
            self._warned = False


def soft_fd_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE, or None if it is unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def guarded_connection(limits: ConnectionLimits) -> type[GuardedConnection]:
    """A ``GuardedConnection`` class with ``limits`` and its own admission count."""

    class BoundConnection(GuardedConnection):
        pass

    BoundConnection.limits = limits
    BoundConnection.admission = Admission(
        max_per_address=limits.max_per_address,
        fd_limit=soft_fd_limit(),
        fd_reserve=FD_RESERVE,
    )
    return BoundConnection


def guarded(connection: ServerConnection) -> GuardedConnection:
    """
    ``connection`` as ``serve(create_connection=guarded_connection(...))``
    made it: websockets types its hooks' argument as ``ServerConnection``.
    """
    if not isinstance(connection, GuardedConnection):
        raise TypeError(
            f"{type(connection).__name__} is not a GuardedConnection: serve() "
            "needs create_connection=guarded_connection(...)"
        )
    return connection


class GuardedConnection(ServerConnection):
    """
    A server connection that bounds its client's input and output, and
    holds what the server knows of its client.

    ``guarded_connection()`` gives a subclass bound to its limits, for
    ``serve(create_connection=...)``.
    """

    limits: ClassVar[ConnectionLimits]
    admission: ClassVar[Admission]

    def __init__(self, protocol: ServerProtocol, server: Server, **kwargs: Any) -> None:
        super().__init__(protocol, server, **kwargs)
        self._controls = TokenBucket(
            self.limits.control_rate, self.limits.control_burst
        )
        self._address: str | None = None  # set while admission counts it
        #: Loop time of the TCP accept; handshakes are timed from it.
        self.accepted_at = self.loop.time()
        #: The handshake's Django session cookie, if any (``process_request``).
        #: A credential: never logged.
        self.session_key: str | None = None
        # The connection log's (ws_server.lifecycle), set by its functions.
        #: Refused before it was served: logged and counted then.
        self.refused = False
        #: Loop time it authenticated and was opened; None until then.
        self.opened_at: float | None = None
        #: The user it was opened for.
        self.user_id: UserKey | None = None
        #: Why the server closed it, in words, for the close line.
        self.close_cause: str | None = None
        #: Its socket is gone (``connection_lost`` ran).
        self.lost = False
        self._received = False  # any bytes at all
        # Failed (flood) or refused: its input is dropped until it goes.
        self._failed = False
        self._over_since: float | None = None  # output over the limit since
        self._watch: asyncio.TimerHandle | None = None
        self._abort: asyncio.TimerHandle | None = None

    # Admission.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Even for a refusal: super() sets up what connection_lost() needs,
        # and the handshake task it starts returns once the connection is lost.
        super().connection_made(transport)
        # Reading pauses while websockets' receive queue is full (its own
        # flow control) or while our output is over the limit.
        self.recv_messages.pause = self._update_reading
        self.recv_messages.resume = self._update_reading
        address = self.remote_address[0] if self.remote_address else ""
        refusal = self.admission.admit(address)
        if refusal is not None:
            lifecycle.refused(self, "admission", refusal)
            self._failed = True
            self.transport.abort()
            return
        self._address = address

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        lifecycle.closed(self)
        for timer in (self._watch, self._abort):
            if timer is not None:
                timer.cancel()
        if self._address is not None:
            self.admission.release(self._address)
            self._address = None

    async def handshake(self, *args: Any, **kwargs: Any) -> None:
        """Log the handshakes websockets drops without a word."""
        try:
            await super().handshake(*args, **kwargs)
        except asyncio.CancelledError:
            # serve()'s open_timeout: websockets aborts the connection next.
            elapsed = self.loop.time() - self.accepted_at
            self._log_lost_handshake(
                "handshake_timeout", f"no complete handshake within {elapsed:.1f}s"
            )
            raise
        if self.request is None and self._received:
            # Lost before a request websockets could parse (a client that
            # sent nothing at all is a TCP probe, not worth a line).
            self._log_lost_handshake("handshake_lost", "closed during the handshake")

    def _log_lost_handshake(self, reason: str, default: str) -> None:
        if self._failed:
            return  # refused at accept: logged then
        # Set when websockets refused the request itself (HTTP 400, 414, 431).
        refusal = self.protocol.handshake_exc
        if refusal is not None:
            status = None if self.response is None else self.response.status_code
            lifecycle.refused(self, "bad_request", str(refusal), status=status)
        else:
            lifecycle.refused(self, reason, default)

    # Input.

    def data_received(self, data: bytes) -> None:
        self._received = True
        for start in range(0, len(data), INPUT_SLICE):
            if self._failed:
                return
            super().data_received(data[start : start + INPUT_SLICE])
        self._check_output()

    def process_event(self, event: Event) -> None:
        if self._failed:
            return
        if (
            isinstance(event, Frame)
            and event.opcode in (Opcode.PING, Opcode.PONG)
            and not self._controls.take()
        ):
            self._note_closing(
                CloseCode.RATE_LIMITED, "control frames over the rate limit"
            )
            self._fail(CloseCode.RATE_LIMITED, "rate limit exceeded")
            return
        super().process_event(event)

    def _note_closing(self, code: int, cause: str) -> None:
        """
        Count the close and say why, or log a refusal if it never opened;
        a close already started (its deadline set) was counted then, and a
        connection already refused was logged then.
        """
        counted = None if self.close_deadline is not None else code
        if self.opened_at is not None:
            lifecycle.closing(self, counted, cause)
        elif not self.refused:
            lifecycle.refused(self, "limit", cause, code=counted)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): close frame, EOF, no more input."""
        self._failed = True
        if self.protocol.state is not State.OPEN:
            # Mid-handshake or already closing: no close frame to send.
            self.transport.abort()
            return
        self.protocol.fail(code, reason)
        try:
            self.send_data()
        except Exception as exc:  # as Connection.data_received does
            self.set_connection_exc(exc)
        # It has close_timeout to read the close frame and hang up.
        if self.close_timeout is not None:
            self._abort = self.loop.call_later(self.close_timeout, self.transport.abort)

    # Output.

    def pause_writing(self) -> None:
        super().pause_writing()
        # Called from inside a transport.write(): look at the buffer later.
        self._watch_output()

    def _watch_output(self) -> None:
        """Look at the output while it is behind; reschedule until it isn't."""
        if self._watch is None and not self.transport.is_closing():
            self._watch = self.loop.call_later(OUTPUT_CHECK_INTERVAL, self._on_watch)

    def _on_watch(self) -> None:
        self._watch = None
        if self.close_deadline is not None and self.loop.time() >= self.close_deadline:
            # websockets starts its close timeout only once the close frame
            # has drained: a client that doesn't read would hold it forever
            # (and hold up shutdown, which closes everyone with 1001).
            self._note_closing(
                lifecycle.ABNORMAL_CLOSURE, "close frame not read in time"
            )
            self._failed = True
            self.transport.abort()
            return
        self._check_output()
        if self.paused or self._over_since is not None:
            self._watch_output()

    def _check_output(self) -> None:
        """Stop reading from a client over the output limit; abort one that stays."""
        if self._failed or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() <= self.limits.max_buffer:
            if self._over_since is not None:
                self._over_since = None
                self._update_reading()
            return
        now = self.loop.time()
        if self._over_since is None:
            self._over_since = now
            self._update_reading()
            self._watch_output()
        elif now - self._over_since >= OUTPUT_GRACE:
            self._note_closing(
                lifecycle.ABNORMAL_CLOSURE,
                f"output buffer over {self.limits.max_buffer} bytes",
            )
            self._failed = True
            self.transport.abort()

    def _update_reading(self) -> None:
        """Read while the receive queue has room and the output is under limit."""
        if self.transport.is_closing():
            return
        pause = self.recv_messages.paused or self._over_since is not None
        if pause and self.transport.is_reading():
            self.transport.pause_reading()
        elif not pause and not self.transport.is_reading():
            self.transport.resume_reading()
