"""
A client that behaves like the reference browser client, for fault tests.

It authenticates with a session cookie, resumes from the server's cursor
after every disconnect, and shows each event id once; it records what each
connection received, so tests can assert the delivery promise (every
committed event shown once, no id twice on one connection, within a bound)
and the revocation promise (closed with 4003, nothing received after the
revocation).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from django.conf import settings
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from tests.servers import TEST_ORIGIN

#: Close codes after which the reference client doesn't reconnect blindly.
REVOKED = {4001, 4003}


@dataclass
class Connection:
    """What one WebSocket connection received, in order, with arrival times."""

    resumed_from: int | None = None
    ids: list[int] = field(default_factory=list)
    frames: list[tuple[float, dict]] = field(default_factory=list)
    close: tuple[int, str] | None = None

    def summary(self) -> str:
        """One line for a failure message: where it resumed, what it got."""
        welcome = next(
            (f["cursor"] for _at, f in self.frames if f["type"] == "welcome"), None
        )
        span = f"{self.ids[0]}..{self.ids[-1]}" if self.ids else "nothing"
        return (
            f"resumed from {self.resumed_from}, welcome cursor {welcome}, "
            f"{len(self.ids)} ids {span}, closed {self.close}"
        )


class ResumingClient:
    """
    Connect, resume from the cursor, de-duplicate, reconnect: in a thread.

    ``url`` is called before each attempt (a restarted server may move).
    """

    def __init__(self, url: Callable[[], str], session_key: str) -> None:
        self.url = url
        self.session_key = session_key
        self.cursor: int | None = None
        self.shown: dict[int, float] = {}  # event id -> when first shown
        self.connections: list[Connection] = []
        self.revoked: tuple[int, str] | None = None
        self.welcomes = 0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, cursor: int | None = None) -> ResumingClient:
        self.cursor = cursor
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the client did not stop"

    def __enter__(self) -> ResumingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def wait_for(self, ids: Collection[int], timeout: float) -> None:
        """Wait until every id in ``ids`` has been shown."""
        self._wait(lambda: set(ids) <= self.shown.keys(), timeout, "ids", ids)

    def wait_until_live(self, welcomes: int = 1, timeout: float = 10) -> None:
        """Wait until ``welcomes`` connections have been welcomed in all."""
        self._wait(lambda: self.welcomes >= welcomes, timeout, f"{welcomes} welcome(s)")

    def wait_revoked(self, timeout: float) -> tuple[int, str]:
        self._wait(lambda: self.revoked is not None, timeout, "a revocation")
        assert self.revoked is not None
        return self.revoked

    def assert_no_id_twice_per_connection(self) -> None:
        for connection in self.connections:
            assert len(connection.ids) == len(set(connection.ids)), connection.ids

    def received_after(self, moment: float) -> list[int]:
        """Notification ids any connection received after ``moment``."""
        return [
            frame["id"]
            for connection in self.connections
            for at, frame in connection.frames
            if frame["type"] == "notification" and at > moment
        ]

    def _wait(
        self,
        done: Callable[[], bool],
        timeout: float,
        what: str,
        what_ids: Collection[int] = (),
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"no {what} within {timeout}s; missing "
                        f"{sorted(set(what_ids) - self.shown.keys())}; connections: "
                        + "; ".join(c.summary() for c in self.connections)
                    )
                self._changed.wait(min(remaining, 0.1))

    def _run(self) -> None:
        delay = 0.1
        while not self._stop.is_set() and self.revoked is None:
            try:
                self._connect_once()
                delay = 0.1
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                pass
            # Backoff, capped low: tests measure the server, not the client.
            self._stop.wait(delay)
            delay = min(delay * 2, 0.5)

    def _connect_once(self) -> None:
        cookie = f"{settings.SESSION_COOKIE_NAME}={self.session_key}"
        with connect(
            self.url(),
            origin=TEST_ORIGIN,  # type: ignore[arg-type]
            additional_headers={"Cookie": cookie},
            proxy=None,
            open_timeout=3,
            # Stopping shouldn't wait on a server that is hung or killed.
            close_timeout=1,
            compression=None,
        ) as ws:
            connection = Connection(resumed_from=self.cursor)
            with self._changed:
                self.connections.append(connection)
            ws.send(json.dumps({"type": "hello", "last_id": self.cursor}))
            try:
                while not self._stop.is_set():
                    try:
                        raw = ws.recv(timeout=0.1)
                    except TimeoutError:
                        continue
                    self._handle(connection, json.loads(raw))
            except ConnectionClosed as closed:
                self._closed(connection, closed)

    def _handle(self, connection: Connection, frame: dict) -> None:
        now = time.monotonic()
        with self._changed:
            connection.frames.append((now, frame))
            if (
                frame["type"] in {"notification", "push", "welcome"}
                and frame.get("cursor") is not None
            ):
                self.cursor = max(self.cursor or 0, frame["cursor"])
            if frame["type"] == "welcome":
                self.welcomes += 1
            # Durable pushes have ids and resume like notifications.
            if frame["type"] == "notification" or (
                frame["type"] == "push" and frame["id"] is not None
            ):
                connection.ids.append(frame["id"])
                self.shown.setdefault(frame["id"], now)
            self._changed.notify_all()

    def _closed(self, connection: Connection, closed: ConnectionClosed) -> None:
        with self._changed:
            if closed.rcvd is not None:
                connection.close = (closed.rcvd.code, closed.rcvd.reason)
                if closed.rcvd.code in REVOKED:
                    self.revoked = connection.close
            self._changed.notify_all()
