"""
LOG_FORMAT=json: one JSON object per line; one line per connection open,
close and refusal, with its fields; never a credential.
"""

import json
import socket
import time

import pytest

from tests.clients import (
    close_of,
    logged_in_client,
    session_key_of,
    subscriber,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess
from tests.test_e2e_metrics import refuse_oversize_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FORGED_TICKET = "forged-ticket-0123456789abcdef"


@pytest.fixture
def json_server(redis_prefix):
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix,
        env={"LOG_FORMAT": "json", "NOTIFICATIONS_WS_OPEN_TIMEOUT": "1"},
    )
    with server:
        yield server


def records(server: WebSocketServerProcess, since: int) -> list[dict]:
    """The log lines from ``since`` on, each parsed (fails on a non-JSON line)."""
    return [json.loads(line) for line in server.lines[since:]]


def wait_for_records(
    server: WebSocketServerProcess, since: int, count: int, **fields: object
) -> list[dict]:
    """Wait until ``count`` records with ``fields`` are logged; return them."""
    deadline = time.monotonic() + 5
    while True:
        found = [
            record
            for record in records(server, since)
            if all(record.get(name) == value for name, value in fields.items())
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_an_open_and_a_close_are_one_line_each(json_server):
    user = make_user()
    client = logged_in_client(user)
    since = len(json_server.lines)
    with subscriber(json_server, user, client=client):
        (opened,) = wait_for_records(json_server, since, 1, event="opened")
    (closed,) = wait_for_records(json_server, since, 1, event="closed")
    assert opened["user"] == user.pk
    assert opened["message"].endswith(f"user {user.pk} by session cookie")
    assert opened["level"] == "INFO"
    assert closed["connection_id"] == opened["connection_id"]
    assert closed["peer"] == opened["peer"]
    assert (closed["code"], closed["closed_by"]) == (1000, "client")
    assert closed["seconds"] >= 0
    log = "\n".join(json_server.lines[since:])
    assert session_key_of(client) not in log
    assert log.count(opened["connection_id"]) == 2


@pytest.mark.parametrize(
    ("refuse", "reason", "answer"),
    [
        pytest.param(
            lambda server: refuse_oversize_headers(server.port),
            "headers_too_large",
            {"status": 431},
            id="431",
        ),
        pytest.param(
            lambda server: _half_a_request(server.port),
            "handshake_timeout",
            {},
            id="handshake timeout",
        ),
        pytest.param(
            lambda server: _hello(server, {"type": "hello", "ticket": FORGED_TICKET}),
            "authentication_failed",
            {"code": 4001},
            id="forged ticket",
        ),
        pytest.param(
            lambda server: _hello(server, None),
            "hello_timeout",
            {"code": 4002},
            id="no hello",
        ),
    ],
)
def test_each_refusal_is_one_line(json_server, refuse, reason, answer):
    since = len(json_server.lines)
    refuse(json_server)
    found = wait_for_records(json_server, since, 1, event="refused")
    assert len(found) == 1, records(json_server, since)
    (record,) = found
    assert record["reason"] == reason
    assert {name: record[name] for name in answer} == answer
    assert record["peer"].startswith("127.0.0.1:")
    assert record["message"].startswith(f"refused {record['peer']}: ")
    # Nothing else about that connection: one line per refusal.
    time.sleep(0.3)
    assert [
        r for r in records(json_server, since) if r.get("peer") == record["peer"]
    ] == [record]
    assert FORGED_TICKET not in "\n".join(json_server.lines[since:])


def _half_a_request(port: int) -> None:
    """Start a handshake and stall until the 1 s open timeout passes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sock.settimeout(3)
        assert sock.recv(1) == b""  # dropped by the server


def _hello(server: WebSocketServerProcess, hello: dict | None) -> None:
    with websocket(server) as ws:
        if hello is not None:
            ws.send(json.dumps(hello))
        close_of(ws)
