"""
One log line, and the metrics, for each step of a connection's life.

A connection is either refused, in one line that says why and what the
client saw (an HTTP status or a close code), or opened once authenticated
and closed later, one line each: the close line is written when the socket
is gone, with the code the client saw, who closed first, and how long it
lasted. Whatever closes a connection calls ``closing()`` when it decides
to (that is when the close is counted, by code), with a cause in words
where the close frame's reason says too little or there is no close frame
(an abort); there is no separate "closing" line.

Each line carries its fields for a JSON formatter too (``LOG_FORMAT=json``):
``event`` (``refused``, ``opened``, ``closed``), ``peer``, and as relevant
``reason``, ``status``, ``code``, ``user``, ``connection_id``, ``seconds``.
Never a credential: no cookie, session key or ticket is ever logged.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode as WebSocketCloseCode

from notifications.wire import UserKey

from . import metrics

if TYPE_CHECKING:
    # The connection log is a leaf: ws_server.connection imports it.
    from .connection import GuardedConnection

__all__ = ["ABNORMAL_CLOSURE", "closed", "closing", "opened", "peer", "refused"]

logger = logging.getLogger(__name__)

#: The code of a connection lost or aborted without a close frame.
ABNORMAL_CLOSURE = int(WebSocketCloseCode.ABNORMAL_CLOSURE)


def peer(connection: ServerConnection) -> str:
    """The client's address, for log lines."""
    address = connection.remote_address
    return f"{address[0]}:{address[1]}" if address else "unknown peer"


def refused(
    connection: GuardedConnection,
    reason: str,
    detail: str,
    *,
    status: int | None = None,
    code: int | None = None,
) -> None:
    """
    Count and log a connection turned away before it was served.

    ``reason`` is a short, fixed label (the metric's); ``detail`` says it
    in words. ``status`` is the HTTP status answered, ``code`` the close
    code sent; neither for a socket dropped without an answer.
    """
    connection.refused = True
    metrics.REFUSALS.labels(reason).inc()
    if code is not None:
        metrics.CLOSES.labels(str(code)).inc()
    answer = (
        f" (HTTP {status})"
        if status is not None
        else f" (close {code})"
        if code is not None
        else ""
    )
    address = peer(connection)
    fields: dict[str, Any] = {"event": "refused", "peer": address, "reason": reason}
    if status is not None:
        fields["status"] = status
    if code is not None:
        fields["code"] = code
    logger.info("refused %s: %s%s", address, detail, answer, extra=fields)


def opened(
    connection: GuardedConnection, user_id: UserKey, *, by: str, accepted_at: float
) -> None:
    """Count and log a connection that authenticated and is now served."""
    if connection.lost:
        # Gone while it resumed: closed() has run already and would never
        # take it off the count.
        refused(connection, "lost", "lost while resuming")
        return
    now = connection.loop.time()
    connection.opened_at = now
    connection.user_id = user_id
    metrics.CONNECTIONS.inc()
    metrics.HANDSHAKE_SECONDS.observe(now - accepted_at)
    address = peer(connection)
    logger.info(
        "opened %s: user %s by %s",
        address,
        user_id,
        by,
        extra={
            "event": "opened",
            "peer": address,
            "user": user_id,
            "connection_id": str(connection.id),
        },
    )


def closing(
    connection: GuardedConnection, code: int | None, cause: str | None = None
) -> None:
    """
    Count a close the server starts with ``code`` (1006: an abort; None: a
    close already counted, now aborted) and keep its ``cause`` for the
    close line.
    """
    if code is not None:
        metrics.CLOSES.labels(str(code)).inc()
    if cause is not None:
        connection.close_cause = cause


def closed(connection: GuardedConnection) -> None:
    """Count and log the end of a connection ``opened()`` announced; else nothing."""
    connection.lost = True
    opened_at = connection.opened_at
    if opened_at is None:
        return
    metrics.CONNECTIONS.dec()
    protocol = connection.protocol
    sent, received = protocol.close_sent, protocol.close_rcvd
    cause = connection.close_cause
    # close_rcvd_then_sent: None unless both frames went, True if the
    # client's came first.
    if sent is not None and not protocol.close_rcvd_then_sent:
        code, reason, closer = sent.code, sent.reason, "server"
    elif received is not None:
        code, reason, closer = received.code, received.reason, "client"
    else:
        code, reason = ABNORMAL_CLOSURE, "connection lost"
        closer = "server" if cause else "nobody"
    seconds = round(connection.loop.time() - opened_at, 3)
    address = peer(connection)
    user_id = connection.user_id
    logger.info(
        "closed %s: user %s, %d %s by %s after %.1fs%s",
        address,
        user_id,
        code,
        repr(reason) if reason else "(no reason)",
        closer,
        seconds,
        f": {cause}" if cause else "",
        extra={
            "event": "closed",
            "peer": address,
            "user": user_id,
            "connection_id": str(connection.id),
            "code": code,
            "reason": cause or reason,
            "closed_by": closer,
            "seconds": seconds,
        },
    )
