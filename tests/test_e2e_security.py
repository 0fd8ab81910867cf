"""
The bad-input matrix: each row is a real client doing something wrong against
a real runwsserver. Each asserts what that client sees (close code and reason,
HTTP status, or error reply), that the server logged the refusal once with the
client's address and without the credential, and that the server goes on
serving everybody else.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core import signing
from websockets.exceptions import ConnectionClosed, InvalidStatus

from notifications import services, tickets
from tests.clients import (
    close_of,
    logged_in_client,
    receive,
    request_ticket,
    send_json,
    session_key_of,
    subscriber,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@dataclass(frozen=True)
class Seen:
    """What a misbehaving client observed."""

    kind: str  # "close", "http" or "error"
    code: int | str
    reason: str = ""


def closes(code: int, reason: str) -> Seen:
    return Seen("close", code, reason)


def hello_with(ticket: str) -> Callable[[Any], Seen]:
    """Connect without a cookie and present ``ticket``."""

    def act(server: WebSocketServerProcess) -> Seen:
        with websocket(server) as ws:
            send_json(ws, {"type": "hello", "ticket": ticket})
            return closes(*close_of(ws))

    return act


def as_first_message(frame: str | bytes) -> Callable[[Any], Seen]:
    """Connect with a valid cookie and send ``frame`` instead of hello."""

    def act(server: WebSocketServerProcess) -> Seen:
        with websocket(server, session_key=fresh_session()) as ws:
            ws.send(frame)
            return closes(*close_of(ws))

    return act


def after_welcome(frame: str | bytes) -> Callable[[Any], Seen]:
    """Authenticate properly, then send ``frame``; return the reply."""

    def act(server: WebSocketServerProcess) -> Seen:
        with subscriber(server, make_user()) as ws:
            ws.send(frame)
            try:
                reply = receive(ws)
            except ConnectionClosed as closed:
                return closes(closed.rcvd.code, closed.rcvd.reason)
            return Seen(reply["type"], reply["code"], reply["message"])

    return act


def fresh_session() -> str:
    return session_key_of(logged_in_client(make_user()))


def no_credential(server: WebSocketServerProcess) -> Seen:
    with websocket(server) as ws:
        send_json(ws, {"type": "hello"})
        return closes(*close_of(ws))


def garbage_cookie(server: WebSocketServerProcess) -> Seen:
    with websocket(server, session_key="0123456789abcdefghijklmnopqrstuv") as ws:
        send_json(ws, {"type": "hello"})
        return closes(*close_of(ws))


def tampered_ticket(server: WebSocketServerProcess) -> Seen:
    ticket = request_ticket(logged_in_client(make_user()))
    value, _colon, signature = ticket.rpartition(":")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    return hello_with(f"{value}:{flipped}")(server)


def expired_ticket(server: WebSocketServerProcess) -> Seen:
    from unittest import mock

    issued_long_ago = signing.b62_encode(int(time.time()) - 3600)
    with mock.patch.object(
        signing.TimestampSigner, "timestamp", return_value=issued_long_ago
    ):
        ticket = request_ticket(logged_in_client(make_user()))
    return hello_with(ticket)(server)


def ticket_after_logout(server: WebSocketServerProcess) -> Seen:
    browser = logged_in_client(make_user())
    ticket = request_ticket(browser)
    browser.post("/accounts/logout/")
    return hello_with(ticket)(server)


def ticket_of_inactive_user(server: WebSocketServerProcess) -> Seen:
    user = make_user()
    ticket = request_ticket(logged_in_client(user))
    user.is_active = False
    user.save()
    return hello_with(ticket)(server)


def ticket_naming_another_user(server: WebSocketServerProcess) -> Seen:
    """Alice's nonce in a ticket signed for Bob (only the SECRET_KEY can do it)."""
    alice_ticket = request_ticket(logged_in_client(make_user()))
    nonce = tickets.load_ticket(alice_ticket).nonce
    bob = make_user()
    return hello_with(signing.dumps({"u": bob.pk, "n": nonce}, salt=tickets.SALT))(
        server
    )


def ticket_used_twice(server: WebSocketServerProcess) -> Seen:
    ticket = request_ticket(logged_in_client(make_user()))
    with websocket(server) as first:
        send_json(first, {"type": "hello", "ticket": ticket})
        assert receive(first)["type"] == "welcome"
        return hello_with(ticket)(server)


def ticket_in_url(server: WebSocketServerProcess) -> Seen:
    ticket = request_ticket(logged_in_client(make_user()))
    with websocket(server, query=f"ticket={ticket}") as ws:
        send_json(ws, {"type": "hello"})
        return closes(*close_of(ws))


def wrong_origin(server: WebSocketServerProcess) -> Seen:
    try:
        with websocket(
            server, session_key=fresh_session(), origin="https://evil.example"
        ):
            pass
    except InvalidStatus as refused:
        return Seen("http", refused.response.status_code)
    raise AssertionError("the handshake was accepted")


def missing_origin(server: WebSocketServerProcess) -> Seen:
    with websocket(server, session_key=fresh_session(), origin=None) as ws:
        send_json(ws, {"type": "hello"})
        return Seen("welcome", receive(ws)["type"])


def slow_hello(server: WebSocketServerProcess) -> Seen:
    with websocket(server, session_key=fresh_session()) as ws:
        return closes(*close_of(ws))  # never says hello


def message_flood(server: WebSocketServerProcess) -> Seen:
    with subscriber(server, make_user()) as ws:
        try:
            for _ in range(200):
                send_json(ws, {"type": "mark_read", "id": 1})
        except ConnectionClosed:
            pass
        return closes(*close_of(ws))


def second_hello(server: WebSocketServerProcess) -> Seen:
    return after_welcome(json.dumps({"type": "hello"}))(server)


OVERSIZE = json.dumps({"type": "hello", "ticket": "x" * 5000})
# Small, but nested past the JSON decoder's recursion limit.
DEEP = "[" * 3_000
# Valid JSON for a string Python can't encode: a lone surrogate.
SURROGATE_TICKET = '{"type": "hello", "ticket": "\\ud800"}'

MATRIX: list[tuple[str, Callable[[WebSocketServerProcess], Seen], Seen, str | None]] = [
    # (case, act, what the client sees, the reason the log gives)
    ("no credential", no_credential, closes(4001, "authentication failed"), "no session cookie and no ticket"),
    ("garbage session cookie", garbage_cookie, closes(4001, "authentication failed"), "no authenticated session"),
    ("garbage ticket", hello_with("garbage"), closes(4001, "authentication failed"), "ticket refused: bad signature"),
    ("tampered signature", tampered_ticket, closes(4001, "authentication failed"), "ticket refused: bad signature"),
    ("expired ticket", expired_ticket, closes(4001, "authentication failed"), "ticket refused: expired"),
    ("ticket from a logged-out session", ticket_after_logout, closes(4001, "authentication failed"), "no authenticated session"),
    ("ticket of an inactive user", ticket_of_inactive_user, closes(4001, "authentication failed"), "user is missing or inactive"),
    ("ticket naming another user", ticket_naming_another_user, closes(4001, "authentication failed"), "ticket issued to another user"),
    ("ticket used twice", ticket_used_twice, closes(4001, "authentication failed"), "ticket already used or expired"),
    ("ticket in the URL", ticket_in_url, closes(4001, "authentication failed"), "no session cookie and no ticket"),
    ("wrong Origin", wrong_origin, Seen("http", 403), "invalid Origin header: https://evil.example"),
    ("missing Origin (non-browser client: allowed)", missing_origin, Seen("welcome", "welcome"), None),
    ("very slow first message", slow_hello, closes(4002, "authentication timeout"), "no hello within"),
    ("oversize first frame", as_first_message(OVERSIZE), closes(1009, "frame with 5031 bytes exceeds limit of 4096 bytes"), "exceeds limit of 4096 bytes"),
    ("binary first frame", as_first_message(b'{"type": "hello"}'), closes(4004, "expected hello"), "bad hello (binary_frame)"),
    ("invalid JSON first frame", as_first_message("{hello"), closes(4004, "expected hello"), "bad hello (invalid_json)"),
    ("command before hello", as_first_message('{"type": "mark_read", "id": 1}'), closes(4004, "expected hello"), "first message was not hello"),
    ("deeply nested first frame", as_first_message(DEEP), closes(4004, "expected hello"), "bad hello (invalid_json)"),
    ("lone surrogate in a ticket", as_first_message(SURROGATE_TICKET), closes(4004, "expected hello"), "bad hello (invalid_message)"),
    ("oversize frame", after_welcome(OVERSIZE), closes(1009, "frame with 5031 bytes exceeds limit of 4096 bytes"), "exceeds limit of 4096 bytes"),
    ("binary frame", after_welcome(b"{}"), Seen("error", "binary_frame", "send JSON in text frames"), None),
    ("invalid JSON", after_welcome("{nope"), Seen("error", "invalid_json", "the frame is not valid JSON"), None),
    ("deeply nested JSON", after_welcome(DEEP), Seen("error", "invalid_json", "the frame is not valid JSON"), None),
    ("unknown type", after_welcome('{"type": "subscribe"}'), Seen("error", "unknown_type", "unknown message type: 'subscribe'"), None),
    ("wrong field type", after_welcome('{"type": "mark_read", "id": "1"}'), Seen("error", "invalid_message", "'id' must be a non-negative integer"), None),
    ("second hello", second_hello, Seen("error", "unexpected_hello", "already authenticated"), None),
    ("message flood", message_flood, closes(4008, "rate limit exceeded"), "rate limit exceeded"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("act", "expected", "logged"),
    [pytest.param(act, seen, logged, id=case) for case, act, seen, logged in MATRIX],
)
def test_bad_input(ws_server, act, expected, logged):
    """The misbehaving client gets a clear answer; everyone else is served on."""
    since = len(ws_server.lines)
    assert act(ws_server) == expected
    if logged is not None:
        ws_server.wait_for_log(f"(refused|closed) .*{re.escape(logged)}", since=since)
        refusals = [line for line in ws_server.lines[since:] if logged in line]
        assert len(refusals) == 1, f"logged {len(refusals)} times"
    assert_still_serving(ws_server)
    log = "\n".join(ws_server.lines[since:])
    assert "Traceback" not in log
    assert "sessionid=" not in log


def assert_still_serving(server: WebSocketServerProcess) -> None:
    """A well-behaved client still connects and receives events."""
    with subscriber(server, make_user()) as ws:
        event = services.send_event(title="still here")
        assert receive(ws)["id"] == event.pk


def test_connections_per_user_are_capped(redis_prefix):
    """Past NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_USER a user's next socket gets 4009."""
    alice = make_user()
    env = {"NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_USER": "2"}
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server,
        subscriber(server, alice),
        subscriber(server, alice),
        websocket(server, session_key=session_key_of(logged_in_client(alice))) as third,
    ):
        send_json(third, {"type": "hello"})
        assert close_of(third) == (4009, "too many connections")
        server.wait_for_log(f"user {alice.pk} has too many connections")


def test_refusal_log_names_the_peer(ws_server):
    """A refusal's log line carries the client's address and port."""
    since = len(ws_server.lines)
    with websocket(ws_server) as ws:
        port = ws.local_address[1]
        send_json(ws, {"type": "hello"})
        close_of(ws)
    ws_server.wait_for_log(f"refused 127.0.0.1:{port}: no session cookie", since=since)
