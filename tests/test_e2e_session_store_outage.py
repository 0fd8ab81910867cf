"""
Cache-backed sessions in a Redis of their own, and that Redis going away for
``OUTAGE`` seconds (killed, or hung with SIGSTOP) under a real runwsserver:
the process keeps serving. It answers /healthz throughout, open sockets stay
open (or are closed with 1013 "try again later", or, once a killed store has
lost their session, 4003), a handshake it can't check meanwhile is refused
with 1013, and once the store is back a new handshake is welcomed.
"""

import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from notifications import services
from scripts.probes import http_ok
from scripts.redis_server import RedisServer
from tests.clients import (
    close_of,
    logged_in_client,
    receive,
    send_json,
    session_key_of,
    subscriber,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess, cache_sessions_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: Seconds the session store stays away.
OUTAGE = 10.0
#: Seconds the server may take to welcome a handshake once the store is back.
BACK_BOUND = 5.0
#: Re-checks load every session this often (seconds), so some run in the outage.
RECHECK = 2.0
TRY_AGAIN = (1013, "try again later")


@pytest.fixture
def session_store() -> RedisServer:
    with RedisServer() as server:
        yield server


@pytest.fixture
def server(session_store, redis_prefix):
    """Django and a runwsserver keeping sessions in ``session_store``'s cache."""
    with cache_sessions_server(
        session_store.url,
        redis_prefix,
        NOTIFICATIONS_RECHECK_INTERVAL=str(RECHECK),
        # A hung store costs a handshake this long before its 1013.
        NOTIFICATIONS_DB_TIMEOUT="2",
    ) as server:
        yield server


def assert_serving(server: WebSocketServerProcess) -> None:
    code = server.process.poll()
    assert code is None, f"runwsserver exited with {code}"
    ok, answer = http_ok("127.0.0.1", server.port, "/healthz", timeout=2)
    assert ok, f"/healthz: {answer}; runwsserver exit code {server.process.poll()}"


def refused_handshake(server: WebSocketServerProcess, session_key: str) -> tuple:
    """Open a socket with ``session_key`` and say hello; how the server closed it."""
    with websocket(server, session_key=session_key) as ws:
        send_json(ws, {"type": "hello", "last_id": None})
        return close_of(ws, timeout=5)


def welcomed_within(server: WebSocketServerProcess, user, bound: float) -> float:
    """Seconds until a new login's handshake is welcomed; fail past ``bound``."""
    started = time.monotonic()
    while True:
        try:
            with subscriber(server, user) as ws:
                assert ws.welcome["user"]["id"] == user.pk
                return time.monotonic() - started
        except (ConnectionClosed, InvalidHandshake, OSError) as error:
            # TimeoutError (an OSError) too: the store may not answer yet.
            if time.monotonic() - started > bound:
                pytest.fail(
                    f"no welcome within {bound}s of the store's return: {error!r}"
                )
            time.sleep(0.2)


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_a_session_store_outage_leaves_the_server_serving(server, session_store, fault):
    """The session Redis killed or hung for 10 s: runwsserver keeps running and
    answering, open sockets stay usable or are told to retry, and new ones are
    welcomed once it is back."""
    alice, bob = make_user(), make_user()
    bob_session = session_key_of(logged_in_client(bob))
    with subscriber(server, alice) as ws:
        if fault == "killed":
            session_store.kill()
        else:
            session_store.pause()
        try:
            assert refused_handshake(server, bob_session) == TRY_AGAIN
            until = time.monotonic() + OUTAGE
            while time.monotonic() < until:
                assert_serving(server)
                time.sleep(0.5)
        finally:
            if fault == "killed":
                session_store.start()
            else:
                session_store.resume()
        assert_serving(server)
        event = services.send_event(title="after the outage")
        try:
            assert receive(ws, timeout=3)["id"] == event.pk
        except TimeoutError:
            pytest.fail("the open socket got nothing after the outage")
        except ConnectionClosed:
            allowed = {TRY_AGAIN}
            if fault == "killed":  # the store lost every session
                allowed.add((4003, "session revoked"))
            assert close_of(ws, timeout=0) in allowed
    # With a login of its own: a killed store has lost the earlier sessions.
    welcomed_within(server, bob, BACK_BOUND)
