"""
Handshakes under load, against a real runwsserver: each one is refused with
1013 once past its deadline, however long its lookups wait in their queues;
a client that leaves while queued costs no lookup; a client that closes
while the server answers it is no error.

Sessions live in a Redis cache of their own, so a test can hang (SIGSTOP)
the lookups of handshakes, and see (MONITOR) which sessions were looked up,
on either database.
"""

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from websockets.frames import Close, CloseCode, Frame, Opcode

from scripts.redis_server import RedisServer
from tests.clients import (
    close_of,
    logged_in_client,
    send_json,
    session_key_of,
    subscriber,
    websocket,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess, cache_sessions_server

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: NOTIFICATIONS_DB_TIMEOUT for the server: each lookup's bound, and the
#: handshake's, from hello to the replay read.
DB_TIMEOUT = 3.0
#: Leeway for a loaded machine, well under what one more queued lookup costs.
SLACK = 1.0
TRY_AGAIN = (1013, "try again later")
HELLO = {"type": "hello", "last_id": None}


@pytest.fixture
def session_store() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def server(session_store, redis_prefix) -> Iterator[WebSocketServerProcess]:
    """Django and a runwsserver keeping sessions in ``session_store``'s cache."""
    with cache_sessions_server(
        session_store.url, redis_prefix, NOTIFICATIONS_DB_TIMEOUT=str(DB_TIMEOUT)
    ) as server:
        yield server


class Monitor:
    """Every command a Redis runs, as it runs them (MONITOR), from a thread."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.commands: list[str] = []
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                if self._stopping.is_set():
                    return
                self.commands.append(command["command"])

    def __enter__(self) -> "Monitor":
        self._thread.start()
        assert self._ready.wait(timeout=5)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self.client.ping()  # wakes the listener up, to see it should stop
        self._thread.join(timeout=5)
        self.client.close()


def new_sessions(count: int) -> list[str]:
    return [session_key_of(logged_in_client(make_user())) for _ in range(count)]


def test_a_handshake_queued_behind_a_hung_lookup_is_refused_by_its_deadline(
    server, session_store
):
    """The session store hangs: a handshake queued behind another's lookup gets
    1013 within NOTIFICATIONS_DB_TIMEOUT of its hello, not after its own
    lookup's timeout too, with one log line saying why."""
    first_key, second_key = new_sessions(2)
    since = len(server.lines)
    session_store.pause()
    try:
        with websocket(server, session_key=first_key) as first:
            send_json(first, HELLO)
            time.sleep(1)  # the first lookup hangs; the next one queues
            with websocket(server, session_key=second_key) as second:
                send_json(second, HELLO)
                said_hello = time.monotonic()
                assert close_of(second, timeout=3 * DB_TIMEOUT) == TRY_AGAIN
                waited = time.monotonic() - said_hello
            assert close_of(first, timeout=3 * DB_TIMEOUT) == TRY_AGAIN
    finally:
        session_store.resume()
    assert waited < DB_TIMEOUT + SLACK
    server.wait_for_log(
        rf"refused .*: authentication unavailable \(handshake not done within "
        rf"{DB_TIMEOUT}s\) \(close 1013\)",
        since=since,
    )
    assert not any("Traceback" in line for line in server.lines[since:])


def test_clients_that_leave_while_queued_are_not_looked_up(server, session_store):
    """Twenty clients say hello while the session store hangs and leave at
    once: when it answers again, the server looks up the one still waiting,
    not their sessions."""
    [staying] = new_sessions(1)
    leaving = new_sessions(20)
    since = len(server.lines)
    with Monitor(session_store.url) as monitor:
        session_store.pause()
        try:
            with websocket(server, session_key=staying) as ws:
                send_json(ws, HELLO)
                time.sleep(0.2)  # its lookup runs (and hangs); the next queue
                for key in leaving:
                    with websocket(server, session_key=key) as gone:
                        send_json(gone, HELLO)
                time.sleep(0.5)  # the server sees them close
                session_store.resume()
                assert ws.recv(timeout=DB_TIMEOUT)  # the welcome
        finally:
            session_store.resume()
        time.sleep(1)  # a lookup of the leavers would run now
    looked_up = " ".join(monitor.commands)
    assert staying in looked_up
    assert [key for key in leaving if key in looked_up] == []
    server.wait_for_log(r"refused .*: closed during authentication", since=since)


def test_a_client_that_closes_as_the_server_answers_it_is_no_error(server):
    """An invalid message and the close frame in one write: the server's error
    reply finds the connection closing, and ends it quietly."""
    user = make_user()
    since = len(server.lines)
    with subscriber(server, user) as ws:
        wire = Frame(Opcode.TEXT, b"not json").serialize(mask=True) + Frame(
            Opcode.CLOSE, Close(CloseCode.NORMAL_CLOSURE, "").serialize()
        ).serialize(mask=True)
        ws.socket.sendall(wire)
        server.wait_for_log(rf"closed .*: user {user.pk}, 1000", since=since)
    time.sleep(0.2)
    assert not any(
        "Traceback" in line or "handler failed" in line for line in server.lines[since:]
    )
