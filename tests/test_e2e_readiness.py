"""
GET /readyz on a real runwsserver: 503 with the reason while Redis is down
or hung, while what is published doesn't come back through the stream, or
while the database is cut off; 200 again once it is back; /healthz stays 200
throughout.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
import redis
from django.db import connection, transaction

from notifications.models import Event
from tests.faultproxy import FaultProxy
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: The issue's bound on noticing, and on noticing the recovery.
FLIP_BOUND = 5.0


def probe(server: WebSocketServerProcess, path: str) -> tuple[int, str]:
    """GET ``path`` on the server's port: the status and the body."""
    url = server.url.replace("ws://", "http://").replace("/ws", path)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def content_types(server: WebSocketServerProcess, path: str) -> list[str]:
    """The Content-Type headers of the answer to GET ``path``."""
    url = server.url.replace("ws://", "http://").replace("/ws", path)
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.headers.get_all("Content-Type")


def wait_for_status(server: WebSocketServerProcess, status: int) -> tuple[float, str]:
    """Poll /readyz until it answers ``status``; how long it took, and the body."""
    started = time.monotonic()
    while True:
        answer, body = probe(server, "/readyz")
        took = time.monotonic() - started
        if answer == status:
            return took, body
        assert took < FLIP_BOUND, f"/readyz still {answer} after {took:.1f}s: {body}"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["killed", "hung"])
def test_readiness_follows_redis(private_redis, redis_prefix, fault):
    """Killed: the relay's read fails at once; hung (SIGSTOP): its read times
    out. Either way /readyz answers 503 naming Redis within 5 s, while the
    loop still answers /healthz, and 200 within 5 s of Redis coming back."""
    with WebSocketServerProcess(
        redis_prefix=redis_prefix, redis_url=private_redis.url
    ) as server:
        _took, body = wait_for_status(server, 200)
        assert json.loads(body) == {"ready": True, "problems": []}
        # Once: websockets' respond() sets text/plain, which used to stay.
        assert content_types(server, "/readyz") == ["application/json"]
        if fault == "killed":
            private_redis.kill()
        else:
            private_redis.pause()
        try:
            _took, body = wait_for_status(server, 503)
            assert json.loads(body) == {
                "ready": False,
                "problems": ["redis: the relay is not reading the stream"],
            }
            assert probe(server, "/healthz") == (200, "OK\n")
        finally:
            if fault == "killed":
                private_redis.start()
            else:
                private_redis.resume()
        wait_for_status(server, 200)


def test_readiness_follows_the_canary(private_redis, redis_prefix):
    """Redis pauses writes (CLIENT PAUSE WRITE, as its failover does): the
    relay's XREAD still answers on time and PING works, so no timeout fires,
    yet nothing published arrives. The relay's canary doesn't come back:
    within 5 s /readyz says "what is published does not come back" and the
    relay logs that it reconnects; within 5 s of writes resuming, 200."""
    with WebSocketServerProcess(
        redis_prefix=redis_prefix, redis_url=private_redis.url
    ) as server:
        wait_for_status(server, 200)
        client = redis.Redis.from_url(private_redis.url)
        client.client_pause(10_000, all=False)
        paused_at = time.monotonic()
        try:
            while True:
                answer, body = probe(server, "/readyz")
                if answer == 503 and json.loads(body)["problems"] == [
                    "redis: what is published does not come back"
                ]:
                    break
                assert time.monotonic() - paused_at < FLIP_BOUND, body
                time.sleep(0.1)
            server.wait_for_log(
                "no canary came back through the stream within 3.0s", timeout=5
            )
        finally:
            client.client_unpause()
            client.close()
        wait_for_status(server, 200)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs a database reached over TCP (PostgreSQL)",
)
def test_readiness_follows_the_database(private_redis, redis_prefix):
    """PostgreSQL cut under the server: its next query (the sweep's, every
    0.5 s) fails within NOTIFICATIONS_DB_TIMEOUT and /readyz says
    "database: unavailable"; after the link heals, 200 again."""
    database = connection.settings_dict
    with (
        FaultProxy(
            database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432)
        ) as proxy,
        WebSocketServerProcess(
            redis_prefix=redis_prefix,
            redis_url=private_redis.url,
            env={
                "DATABASE_URL": proxy.postgres_url(database["NAME"], database["USER"]),
                "NOTIFICATIONS_DB_TIMEOUT": "2",
            },
        ) as server,
    ):
        wait_for_status(server, 200)
        proxy.cut()
        try:
            _took, body = wait_for_status(server, 503)
            assert json.loads(body)["problems"] == ["database: unavailable"]
        finally:
            proxy.pass_through()
        wait_for_status(server, 200)


#: NOTIFICATIONS_DB_TIMEOUT for the wedged-threads test.
DB_TIMEOUT = 1.0
#: From the lock to /healthz failing: four sweeps (0.5 s apart) each losing a
#: thread after the timeout, then WEDGED_FACTOR (6) timeouts, plus slack.
WEDGED_BOUND = 4 * (0.5 + DB_TIMEOUT) + 6 * DB_TIMEOUT + 8.0


def wait_for(server: WebSocketServerProcess, path: str, status: int, bound: float):
    """Poll ``path`` until it answers ``status`` within ``bound``; the body."""
    started = time.monotonic()
    while True:
        answer, body = probe(server, path)
        if answer == status:
            return body
        took = time.monotonic() - started
        assert took < bound, f"{path} still {answer} after {took:.1f}s: {body}"
        time.sleep(0.1)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="a query waits on a table lock only on PostgreSQL (SQLite gives up "
    "with 'database is locked' after its busy timeout, freeing the thread)",
)
def test_wedged_orm_threads_fail_liveness(private_redis, redis_prefix):
    """The test holds an ACCESS EXCLUSIVE lock on the events table, so every
    sweep query waits: each call times out for its caller but keeps its ORM
    thread. /readyz names the stuck calls; once all four threads have been
    stuck for six timeouts, /healthz answers 503 (it used to stay 200 with
    the process wedged) so an orchestrator restarts it; when the lock goes,
    both answer 200 again."""
    with WebSocketServerProcess(
        redis_prefix=redis_prefix,
        redis_url=private_redis.url,
        env={"NOTIFICATIONS_DB_TIMEOUT": str(DB_TIMEOUT)},
    ) as server:
        wait_for_status(server, 200)
        with transaction.atomic(), connection.cursor() as cursor:
            table = connection.ops.quote_name(Event._meta.db_table)
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            body = wait_for(server, "/readyz", 503, WEDGED_BOUND)
            problems = json.loads(body)["problems"]
            assert "database: unavailable" in problems
            body = wait_for(server, "/healthz", 503, WEDGED_BOUND)
            assert body == "ORM threads wedged\n"
            stuck = json.loads(probe(server, "/readyz")[1])["problems"]
            assert "database: 4 of 4 ORM threads stuck in a call" in stuck
        assert wait_for(server, "/healthz", 200, FLIP_BOUND) == "OK\n"
        wait_for_status(server, 200)
        server.wait_for_log("every ORM thread is stuck in a database call")
