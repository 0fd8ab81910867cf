"""End to end: who may open a socket, and what a refused client sees."""

import time
import urllib.request
from unittest import mock

import pytest
from django.core import signing
from django.test import Client
from websockets.exceptions import InvalidStatus

from notifications import tickets
from tests.clients import (
    close_of,
    logged_in_client,
    receive,
    send_json,
    session_key_of,
    websocket,
)
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def request_ticket(client: Client) -> str:
    """Ask Django for a ticket the way the page does: a CSRF-protected POST."""
    client.get("/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/api/ws-ticket/", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    return response.json()["ticket"]


def test_session_cookie_authenticates(ws_server):
    """A logged-in browser's cookie opens the socket; the welcome names the user."""
    alice = make_user(username="alice-cookie")
    with websocket(
        ws_server, session_key=session_key_of(logged_in_client(alice))
    ) as ws:
        send_json(ws, {"type": "hello"})
        welcome = receive(ws)
    assert welcome == {
        "type": "welcome",
        "protocol": 1,
        "user": {"id": alice.pk, "username": "alice-cookie"},
        "unread": 0,
    }


def test_ticket_authenticates_without_cookie(ws_server):
    """A ticket from the CSRF-protected ticket view opens a socket with no cookie."""
    alice = make_user()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    ticket = request_ticket(browser)
    with websocket(ws_server) as ws:
        send_json(ws, {"type": "hello", "ticket": ticket})
        assert receive(ws)["user"]["id"] == alice.pk


def test_ticket_view_requires_login_and_csrf():
    """Anonymous users get 401 JSON; a POST without the CSRF token gets 403."""
    assert Client().post("/api/ws-ticket/").status_code == 401
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user())
    assert browser.post("/api/ws-ticket/").status_code == 403


def test_missing_credential_is_refused(ws_server):
    """No cookie and no ticket: close 4001 "authentication failed", logged with the reason."""
    since = len(ws_server.lines)
    with websocket(ws_server) as ws:
        send_json(ws, {"type": "hello"})
        assert close_of(ws) == (4001, "authentication failed")
    ws_server.wait_for_log("refused .*: no session cookie and no ticket", since=since)


def test_garbage_cookie_is_refused(ws_server):
    """A session cookie that names no session: close 4001."""
    with websocket(ws_server, session_key="not-a-session") as ws:
        send_json(ws, {"type": "hello"})
        assert close_of(ws) == (4001, "authentication failed")


def test_forged_ticket_is_refused(ws_server):
    """A ticket with a tampered signature: close 4001; the log says why."""
    browser = logged_in_client(make_user())
    ticket = request_ticket(browser)
    forged = ticket[:-2] + ("AA" if not ticket.endswith("AA") else "BB")
    since = len(ws_server.lines)
    with websocket(ws_server) as ws:
        send_json(ws, {"type": "hello", "ticket": forged})
        assert close_of(ws) == (4001, "authentication failed")
    ws_server.wait_for_log("ticket refused: bad signature", since=since)
    assert ticket not in "\n".join(ws_server.lines), "a credential reached the log"


def test_expired_ticket_is_refused(ws_server):
    """A ticket older than NOTIFICATIONS_TICKET_MAX_AGE: close 4001, logged as expired."""
    browser = logged_in_client(make_user())
    issued_long_ago = signing.b62_encode(int(time.time()) - 3600)
    with mock.patch.object(
        signing.TimestampSigner, "timestamp", return_value=issued_long_ago
    ):
        ticket = request_ticket(browser)
    since = len(ws_server.lines)
    with websocket(ws_server) as ws:
        send_json(ws, {"type": "hello", "ticket": ticket})
        assert close_of(ws) == (4001, "authentication failed")
    ws_server.wait_for_log("ticket refused: expired", since=since)


def test_ticket_works_once(ws_server):
    """A ticket presented twice opens the first socket and refuses the second."""
    ticket = request_ticket(logged_in_client(make_user()))
    with websocket(ws_server) as first, websocket(ws_server) as second:
        send_json(first, {"type": "hello", "ticket": ticket})
        assert receive(first)["type"] == "welcome"
        send_json(second, {"type": "hello", "ticket": ticket})
        assert close_of(second) == (4001, "authentication failed")


def test_ticket_from_logged_out_session_is_refused(ws_server):
    """Logging out invalidates the tickets the session issued."""
    browser = logged_in_client(make_user())
    ticket = request_ticket(browser)
    browser.post("/accounts/logout/")
    with websocket(ws_server) as ws:
        send_json(ws, {"type": "hello", "ticket": ticket})
        assert close_of(ws) == (4001, "authentication failed")


def test_ticket_is_not_accepted_in_the_url(ws_server):
    """A ticket in the query string is ignored: without hello it authenticates nothing."""
    ticket = request_ticket(logged_in_client(make_user()))
    with websocket(ws_server, query=f"ticket={ticket}") as ws:
        send_json(ws, {"type": "hello"})
        assert close_of(ws) == (4001, "authentication failed")


def test_disallowed_origin_is_refused(ws_server):
    """A page on another origin, even with the user's cookie, gets HTTP 403."""
    session_key = session_key_of(logged_in_client(make_user()))
    with (
        pytest.raises(InvalidStatus) as refused,
        websocket(ws_server, session_key=session_key, origin="https://evil.example"),
    ):
        pass
    assert refused.value.response.status_code == 403


def test_health_check_answers_on_the_same_port(ws_server):
    """GET /healthz answers 200 on the WebSocket port, for load balancers."""
    with urllib.request.urlopen(
        f"http://127.0.0.1:{ws_server.port}/healthz", timeout=2
    ) as r:
        assert (r.status, r.read()) == (200, b"OK\n")


def test_ticket_claims_round_trip():
    """load_ticket returns what the ticket was signed with, and rejects other salts."""
    ticket = signing.dumps({"u": 7, "n": "nonce"}, salt=tickets.SALT)
    assert tickets.load_ticket(ticket) == tickets.TicketClaims(user_id=7, nonce="nonce")
    with pytest.raises(tickets.InvalidTicket, match="bad signature"):
        tickets.load_ticket(signing.dumps({"u": 7, "n": "nonce"}, salt="other"))
