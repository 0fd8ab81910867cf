"""
Changing the WebSocket port is one setting: NOTIFICATIONS_WS_PORT is where
runwsserver listens by default and where pages connect on their own host.
"""

import json
import re

import pytest
from django.test import override_settings

from tests.clients import (
    logged_in_client,
    receive,
    send_json,
    session_key_of,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_one_setting_moves_the_server_and_the_pages_url(redis_prefix):
    """With NOTIFICATIONS_WS_PORT set, runwsserver (no --port) listens there and
    the inbox page tells the browser to connect there: the user is welcomed."""
    port = free_port()
    alice = make_user()
    browser = logged_in_client(alice)
    with override_settings(NOTIFICATIONS_WS_PORT=port):
        page = browser.get("/").content.decode()
    config = re.search(r'id="notifications-config"[^>]*>(.*?)</script>', page)
    assert json.loads(config.group(1))["wsUrl"] == f"ws://testserver:{port}/ws"

    server = WebSocketServerProcess(
        redis_prefix=redis_prefix, env={"NOTIFICATIONS_WS_PORT": str(port)}
    )
    server.start(port=None)
    try:
        assert server.port == port
        with websocket(server, session_key=session_key_of(browser)) as ws:
            send_json(ws, {"type": "hello", "last_id": None})
            welcome = receive(ws, timeout=5)
        assert (welcome["type"], welcome["user"]["id"]) == ("welcome", alice.pk)
    finally:
        server.stop()
