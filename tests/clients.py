"""Real WebSocket clients for end-to-end tests, and ways to log users in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.servers import TEST_ORIGIN, WebSocketServerProcess


def logged_in_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def request_ticket(client: Client) -> str:
    """Ask Django for a ticket the way the page does: a CSRF-protected POST."""
    client.get("/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/api/ws-ticket/", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    return response.json()["ticket"]


def session_key_of(client: Client) -> str:
    return client.cookies[settings.SESSION_COOKIE_NAME].value


@contextmanager
def websocket(
    server: WebSocketServerProcess,
    *,
    session_key: str | None = None,
    origin: str | None = TEST_ORIGIN,
    query: str = "",
    **kwargs: Any,
) -> Iterator[ClientConnection]:
    """Open a real WebSocket connection, with the session cookie if given."""
    headers = {}
    # Browsers offer permessage-deflate; tests that want it ask for it.
    kwargs.setdefault("compression", None)
    if session_key is not None:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={session_key}"
    with connect(
        f"{server.url}?{query}" if query else server.url,
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
        proxy=None,
        open_timeout=5,
        **kwargs,
    ) as connection:
        yield connection


def send_json(connection: ClientConnection, message: dict[str, Any]) -> None:
    connection.send(json.dumps(message))


def receive(connection: ClientConnection, timeout: float = 1.0) -> dict[str, Any]:
    """The next frame as JSON; fail if none arrives within ``timeout``."""
    return json.loads(connection.recv(timeout=timeout))


@contextmanager
def subscriber(
    server: WebSocketServerProcess,
    user: Any,
    *,
    last_id: int | None = None,
    client: Client | None = None,
    **kwargs: Any,
) -> Iterator[ClientConnection]:
    """A user's connection, authenticated by cookie, past its welcome.

    ``client`` is the logged-in browser whose session to use (a new one if
    None); ``kwargs`` go to ``websocket`` (``compression="deflate"``, say).
    """
    client = client or logged_in_client(user)
    with websocket(server, session_key=session_key_of(client), **kwargs) as ws:
        send_json(ws, {"type": "hello", "last_id": last_id})
        frames = []
        while (frame := receive(ws, timeout=5))["type"] != "welcome":
            frames.append(frame)
        ws.replayed = frames  # type: ignore[attr-defined]
        ws.welcome = frame  # type: ignore[attr-defined]
        yield ws


def close_of(connection: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Wait for the server to close; return its close code and reason."""
    try:
        while True:
            connection.recv(timeout=timeout)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "closed without a close frame"
        return closed.rcvd.code, closed.rcvd.reason
