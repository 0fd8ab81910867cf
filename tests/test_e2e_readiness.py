"""
GET /readyz on a real runwsserver: 503 with the reason while Redis is down
or hung or the database is cut off, 200 again once it is back; /healthz
stays 200 throughout.
"""

import json
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

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
