"""
Fault injection with real processes: Redis killed and restarted, ws_server
killed and replaced, two ws_server processes side by side. Each test that
kills Redis starts its own private redis-server, never the shared one.
"""

import subprocess
import sys
import time

import pytest

from notifications import services
from tests.clients import receive, send_json, subscriber
from tests.factories import make_user
from tests.servers import BASE_DIR, WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def send(count: int, title: str = "event") -> list[int]:
    return [services.send_event(title=f"{title} {i}").pk for i in range(count)]


def receive_ids(connection, count: int, timeout: float = 10.0) -> list[int]:
    """Receive until ``count`` distinct ids arrived; keep them in arrival order.

    Like the browser client, de-duplicate by id: delivery is at-least-once.
    """
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ids) < count:
        frame = receive(connection, timeout=max(0.01, deadline - time.monotonic()))
        if frame["type"] == "notification" and frame["id"] not in ids:
            ids.append(frame["id"])
    return ids


def test_redis_killed_and_restarted_loses_nothing(private_redis, redis_prefix):
    """Events sent before, during and after a Redis crash all arrive once, in order."""
    alice, bob = make_user(), make_user()
    with (
        WebSocketServerProcess(
            redis_prefix=redis_prefix, redis_url=private_redis.url
        ) as server,
        subscriber(server, alice) as alice_ws,
        subscriber(server, bob) as bob_ws,
    ):
        before = send(5, "before")
        assert receive_ids(alice_ws, 5) == before
        since = len(server.lines)
        private_redis.kill()
        during = send(5, "during")  # publishing fails; the rows are committed
        server.wait_for_log("Redis connection lost", since=since)
        private_redis.start()
        server.wait_for_log("Redis connection restored", since=since, timeout=15)
        after = send(5, "after")
        assert receive_ids(alice_ws, 10) == during + after
        assert receive_ids(bob_ws, 15) == before + during + after
    lost = [line for line in server.lines[since:] if "Redis connection lost" in line]
    assert len(lost) == 1, "the outage should be logged once, not once per retry"


def test_ws_server_killed_and_replaced_clients_resume(redis_prefix):
    """After a SIGKILL, clients reconnect to a new process with their last id and miss nothing."""
    alice = make_user()
    first_server = WebSocketServerProcess(redis_prefix=redis_prefix)
    first_server.start()
    with subscriber(first_server, alice) as ws:
        [seen] = send(1)
        assert receive_ids(ws, 1) == [seen]
        first_server.kill()
    missed = send(5)
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix) as second_server,
        subscriber(second_server, alice, last_id=seen) as ws,
    ):
        assert [frame["id"] for frame in ws.replayed] == missed
        [live] = send(1)
        assert receive_ids(ws, 1) == [live]


def test_two_processes_each_recipient_gets_every_event_once(ws_server, redis_prefix):
    """With clients spread over two ws_server processes, every recipient gets each event once."""
    alice, bob = make_user(), make_user()
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix) as other_server,
        subscriber(ws_server, alice) as alice_on_first,
        subscriber(other_server, alice) as alice_on_second,
        subscriber(other_server, bob) as bob_on_second,
    ):
        ids = send(10)
        for ws in (alice_on_first, alice_on_second, bob_on_second):
            frames = [receive(ws) for _ in ids]
            assert [frame["id"] for frame in frames] == ids
        [last] = send(1)
        # Nothing extra was queued before the last event: no duplicates.
        for ws in (alice_on_first, alice_on_second, bob_on_second):
            assert receive(ws)["id"] == last


def test_read_state_reaches_tabs_on_another_process(ws_server, redis_prefix):
    """Marking read on one process updates the user's tab on another within 1 s."""
    alice = make_user()
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix) as other_server,
        subscriber(ws_server, alice) as here,
        subscriber(other_server, alice) as there,
    ):
        [event_id] = send(1)
        assert receive(here)["id"] == receive(there)["id"] == event_id
        send_json(here, {"type": "mark_read", "id": event_id})
        assert receive(there, timeout=1) == {
            "type": "read",
            "ids": [event_id],
            "up_to": None,
            "unread": 0,
        }


def test_graceful_shutdown_closes_with_going_away(redis_prefix):
    """SIGTERM closes every connection with 1001 and the process exits 0."""
    alice = make_user()
    server = WebSocketServerProcess(redis_prefix=redis_prefix)
    server.start()
    with subscriber(server, alice) as ws:
        assert server.stop() == 0
        with pytest.raises(Exception) as closed:  # noqa: PT011
            ws.recv(timeout=5)
    assert closed.value.rcvd.code == 1001


def test_an_unmigrated_database_stops_the_server_with_a_clear_error(
    redis_prefix, tmp_path
):
    """runwsserver on a database without its tables exits 1 at once, saying
    what is wrong and what to run, without a traceback."""
    server = WebSocketServerProcess(
        redis_prefix=redis_prefix,
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"},
    )
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "manage.py", "runwsserver", "--port", "0"],
        cwd=BASE_DIR,
        env=server.environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 1
    assert "CommandError: the database is unavailable (no such table" in (
        completed.stderr
    )
    assert "manage.py migrate" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert time.monotonic() - started < 30
