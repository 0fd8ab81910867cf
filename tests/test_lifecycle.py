"""The connection count and lines when a client goes away mid-resume."""

import asyncio
import logging
from unittest import mock

from prometheus_client import REGISTRY
from websockets.server import ServerProtocol

from ws_server import lifecycle
from ws_server.connection import ConnectionLimits, GuardedConnection, guarded_connection

LIMITS = ConnectionLimits(
    control_rate=1.0, control_burst=1, max_buffer=1 << 16, max_per_address=0
)


def connection() -> GuardedConnection:
    """A connection as serve() creates it, with its fields as declared, for
    a socket already gone (its loop is closed; its time still runs)."""

    async def create() -> GuardedConnection:
        created = guarded_connection(LIMITS)(ServerProtocol(), mock.Mock())
        created.transport = mock.Mock()
        created.transport.get_extra_info.return_value = ("127.0.0.1", 50000)
        return created

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(create())
    finally:
        loop.close()


def open_connections() -> float:
    return REGISTRY.get_sample_value("notifications_connections") or 0.0


def test_a_client_lost_while_resuming_is_not_counted_open(caplog):
    """connection_lost ran before the resume finished: opened() must not
    count it (nothing would take it off), and logs one refusal instead."""
    lost = connection()
    before = open_connections()
    with caplog.at_level(logging.INFO, logger="ws_server.lifecycle"):
        lifecycle.closed(lost)
        lifecycle.opened(lost, 7, by="session cookie", accepted_at=0.0)
    assert open_connections() == before
    assert [record.message for record in caplog.records] == [
        "refused 127.0.0.1:50000: lost while resuming"
    ]


def test_an_opened_connection_is_counted_until_it_is_closed(caplog):
    served = connection()
    before = open_connections()
    with caplog.at_level(logging.INFO, logger="ws_server.lifecycle"):
        lifecycle.opened(served, 7, by="ticket", accepted_at=served.loop.time())
        assert open_connections() == before + 1
        lifecycle.closed(served)
    assert open_connections() == before
    opened, closed = (record.message for record in caplog.records)
    assert opened == "opened 127.0.0.1:50000: user 7 by ticket"
    assert closed.startswith("closed 127.0.0.1:50000: user 7, 1006 'connection lost'")
