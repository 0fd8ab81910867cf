"""
Shared fixtures. Every run isolates itself: its own database (named after the
run) and its own Redis key prefix, so parallel and repeated runs never see
each other's rows or events.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from notifications import wire
from notifications.broker import get_redis, stream_key
from scripts.redis_server import RedisServer
from tests.servers import WebSocketServerProcess

RUN_ID = uuid.uuid4().hex[:10]

# Browser tests reach the live server by IP as well as by "localhost".
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        # A file, not :memory:, so the runwsserver process can open it too.
        name = str(tmp_path_factory.mktemp("db") / "test.sqlite3")
    else:
        name = f"test_notifications_{RUN_ID}"
    database.setdefault("TEST", {})["NAME"] = name


@pytest.fixture(scope="session", autouse=True)
def fast_password_hashing() -> None:
    """Test users need passwords, not 1,000,000 PBKDF2 rounds each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session", autouse=True)
def redis_prefix() -> str:
    prefix = f"test-{RUN_ID}"
    settings.NOTIFICATIONS_REDIS_PREFIX = prefix
    return prefix


@pytest.fixture(scope="session")
def ws_server(django_db_setup, django_db_blocker, redis_prefix):
    """A real ``runwsserver`` process on a free port, against the test database."""
    with WebSocketServerProcess(redis_prefix=redis_prefix) as server:
        yield server


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, that Django publishes to: its stream
    holds only this test's messages."""
    with RedisServer() as server, override_settings(REDIS_URL=server.url):
        get_redis.cache_clear()
        yield server
    get_redis.cache_clear()


@pytest.fixture
def published(private_redis, django_capture_on_commit_callbacks):
    """Run the block's on_commit callbacks; then list what reached the stream."""

    @contextmanager
    def capture() -> Iterator[list[wire.RedisMessage]]:
        messages: list[wire.RedisMessage] = []
        with django_capture_on_commit_callbacks(execute=True):
            yield messages
        raw = get_redis().xrange(stream_key())
        messages.extend(wire.decode_redis(fields["m"]) for _id, fields in raw)

    return capture


@pytest.fixture(autouse=True)
def _forget_started_servers() -> None:
    """Each test's report shows the logs of the servers it started."""
    WebSocketServerProcess.started.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Attach the runwsserver logs to failed end-to-end tests."""
    report = yield
    if not report.failed:
        return report
    servers = list(WebSocketServerProcess.started)
    session_server = getattr(item, "funcargs", {}).get("ws_server")
    if session_server is not None and session_server not in servers:
        servers.insert(0, session_server)
    for number, server in enumerate(servers, 1):
        report.sections.append(
            (
                f"runwsserver {number} log (last 60 lines)",
                "\n".join(server.lines[-60:]),
            )
        )
    return report


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """
    The browser tests drive the client, which never sees the database, and
    the delivery core's tests (marked ``once``) use none; the e2e tests run
    the servers on both. So those run once, in the SQLite pass, which keeps
    the whole suite within its time budget.
    """
    if connection.vendor == "sqlite":
        return
    once = pytest.mark.skip(
        reason="doesn't depend on the project's database: the SQLite pass runs it"
    )
    for item in items:
        if "browser" in item.keywords or "once" in item.keywords:
            item.add_marker(once)
