"""Real processes for end-to-end tests: the ``runwsserver`` command."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote

from django.conf import settings
from django.db import connection
from django.test import override_settings

from scripts.probes import NotAnswered, http_ok, wait_until

BASE_DIR = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on ws://[^:]+:(\d+)/ws")
TEST_ORIGIN = "http://testserver"
# What ws_server.server answers on the WebSocket port (importing it here
# would import the models before pytest-django sets Django up).
HEALTH_PATH, READY_PATH = "/healthz", "/readyz"
CACHE_SESSION_ENGINE = "django.contrib.sessions.backends.cache"
#: Seconds from "listening" to /readyz (or /healthz) answering 200.
READY_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port nothing listens on now, for a process to bind."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, *, timeout: float) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on port {port} after {timeout}s"
                ) from None
            time.sleep(0.1)


def database_url(name: str | None = None) -> str:
    """
    The URL of the database Django is using now (the test database), or of
    the database ``name`` on the same server.
    """
    params = connection.settings_dict
    name = name or params["NAME"]
    if params["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{name}"
    credentials = quote(params["USER"] or "", safe="")
    if params["PASSWORD"]:
        credentials += ":" + quote(params["PASSWORD"], safe="")
    host = params["HOST"] or "localhost"
    port = f":{params['PORT']}" if params["PORT"] else ""
    return f"postgres://{credentials}@{host}{port}/{name}"


class WebSocketServerProcess:
    """
    Start ``manage.py runwsserver --port 0``, learn its port from its log,
    and wait until ``GET /readyz`` answers 200.

    A test that starts a server it knows can't be ready (its Redis answers
    too slowly, its database is cut) passes ``expect_ready=False``: then
    ``start()`` waits only for ``GET /healthz`` (the loop answers), and the
    test checks what it expects of the unready server itself.

    The log is collected as it comes, so tests can assert on log lines.
    Every process started is kept in ``started`` (cleared per test), so a
    failed test's report can show each one's log.
    """

    started: ClassVar[list[WebSocketServerProcess]] = []

    def __init__(
        self,
        *,
        redis_prefix: str,
        redis_url: str | None = None,
        origins: list[str] | None = None,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        expect_ready: bool = True,
    ) -> None:
        self.redis_prefix = redis_prefix
        self.redis_url = redis_url or settings.REDIS_URL
        self.origins = origins or [TEST_ORIGIN]
        self.extra_env = env or {}
        self.args = args
        self.expect_ready = expect_ready
        self.lines: list[str] = []
        self._new_line = threading.Condition()
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": self.redis_url,
            "SECRET_KEY": settings.SECRET_KEY,
            "SESSION_ENGINE": settings.SESSION_ENGINE,
            "NOTIFICATIONS_REDIS_PREFIX": self.redis_prefix,
            "NOTIFICATIONS_WS_ORIGINS": ",".join(self.origins),
            "LOG_LEVEL": "DEBUG",
            # Short enough that the slow-hello test doesn't wait long.
            "NOTIFICATIONS_AUTH_TIMEOUT": "1",
            **self.extra_env,
        }

    def start(self, port: int | None = 0) -> None:
        """
        Start the process; return once it is ready (or, if not expected,
        live). ``port`` None: no ``--port``, the command's default.
        """
        if self not in WebSocketServerProcess.started:
            WebSocketServerProcess.started.append(self)
        # Started again (after kill()): the earlier run's lines don't count.
        since = len(self.lines)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "runwsserver",
                "--host",
                "127.0.0.1",
                *([] if port is None else ["--port", str(port)]),
                *self.args,
            ],
            cwd=BASE_DIR,
            env=self.environment(),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self._collector = threading.Thread(
            target=self._collect, args=(self.process,), daemon=True
        )
        self._collector.start()
        # How --port 0 tells its port; the probe below says when it serves.
        match = self.wait_for_log(LISTENING, timeout=20, since=since)
        self.port = int(match.group(1))
        self._wait_until_answering(READY_PATH if self.expect_ready else HEALTH_PATH)

    def _wait_until_answering(self, path: str) -> None:
        """Poll ``GET path`` on the server's port until it answers 200."""
        try:
            wait_until(
                lambda: http_ok("127.0.0.1", self.port, path),
                timeout=READY_TIMEOUT,
                alive=lambda: self.process is not None and self.process.poll() is None,
            )
        except NotAnswered as error:
            # Not left running: it would hold the test database open.
            self.kill()
            raise AssertionError(
                f"GET {path} on port {self.port}: no 200, {error}; log:\n"
                + "\n".join(self.lines[-40:])
            ) from None

    def _collect(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        with process.stderr:
            for line in process.stderr:
                with self._new_line:
                    self.lines.append(line.rstrip("\n"))
                    self._new_line.notify_all()

    def wait_for_log(
        self, pattern: re.Pattern[str] | str, timeout: float = 5, since: int = 0
    ) -> re.Match[str]:
        """Wait for a log line matching ``pattern`` (from line ``since`` on)."""
        pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                # Read before scanning: lines that arrive later can't be missed.
                finished = self.process is not None and not self._collector.is_alive()
                for line in self.lines[since:]:
                    if match := pattern.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or finished:
                    raise AssertionError(
                        f"no log line matching {pattern.pattern!r} in {timeout}s; log:\n"
                        + "\n".join(self.lines[-40:])
                    )
                self._new_line.wait(min(remaining, 0.2))

    def stop(self) -> int:
        """SIGTERM and wait; return the exit code."""
        assert self.process is not None
        self.process.terminate()
        # The server may take its own bounds to stop: a database lookup in
        # flight (NOTIFICATIONS_DB_TIMEOUT, 10 s), then the drain
        # (NOTIFICATIONS_SHUTDOWN_TIMEOUT, 10 s), then Redis (2 s).
        code = self.process.wait(timeout=30)
        self._collector.join(timeout=5)
        return code

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=15)
        self._collector.join(timeout=5)

    def __enter__(self) -> WebSocketServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process and self.process.poll() is None:
            self.stop()


@contextmanager
def cache_sessions_server(
    redis_url: str, redis_prefix: str, **env: str
) -> Iterator[WebSocketServerProcess]:
    """
    Django and a runwsserver that both keep sessions in the Redis cache at
    ``redis_url`` (under the test's prefix); ``env`` configures the server.
    """
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": redis_prefix,
        }
    }
    env = {"CACHE_URL": f"{redis_url}?KEY_PREFIX={redis_prefix}", **env}
    with (
        override_settings(SESSION_ENGINE=CACHE_SESSION_ENGINE, CACHES=caches),
        WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server,
    ):
        yield server
