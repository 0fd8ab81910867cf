"""End to end: the credentials that open a socket: session cookie and ticket."""

import urllib.request

import pytest
from django.core import signing
from django.test import Client

from notifications import tickets
from tests.clients import (
    logged_in_client,
    receive,
    request_ticket,
    send_json,
    session_key_of,
    websocket,
)
from tests.factories import make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_session_cookie_authenticates(ws_server):
    """A logged-in browser's cookie opens the socket; the welcome names the user."""
    alice = make_user(username="alice-cookie")
    with websocket(
        ws_server, session_key=session_key_of(logged_in_client(alice))
    ) as ws:
        send_json(ws, {"type": "hello"})
        welcome = receive(ws)
    assert isinstance(welcome.pop("cursor"), int)
    assert welcome == {
        "type": "welcome",
        "protocol": 1,
        "user": {"id": alice.pk, "username": "alice-cookie"},
        "unread": 0,
        "read": [],
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
