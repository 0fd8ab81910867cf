"""The connection count and lines when a client goes away mid-resume."""

import asyncio
import logging
import types
import uuid

from prometheus_client import REGISTRY

from ws_server import lifecycle


def connection() -> types.SimpleNamespace:
    """What lifecycle reads of a ServerConnection, for a socket already gone."""
    return types.SimpleNamespace(
        loop=asyncio.new_event_loop(),
        id=uuid.uuid4(),
        remote_address=("127.0.0.1", 50000),
        protocol=types.SimpleNamespace(close_sent=None, close_rcvd=None),
    )


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
    lost.loop.close()
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
    served.loop.close()
    assert open_connections() == before
    opened, closed = (record.message for record in caplog.records)
    assert opened == "opened 127.0.0.1:50000: user 7 by ticket"
    assert closed.startswith("closed 127.0.0.1:50000: user 7, 1006 'connection lost'")
