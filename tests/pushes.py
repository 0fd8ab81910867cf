"""
Helpers for tests of pushed events: tell who a push reached, by following it
with a sentinel to everyone (frames arrive in order, so a client outside the
audience sees the sentinel first), and wait for a permission change to apply.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.sync.client import ClientConnection

from notifications import live
from tests.clients import receive

#: The live-only type that follows every targeted push; declare it.
SENTINEL = "sentinel"

_marks = itertools.count()


def next_push(ws: ClientConnection, timeout: float = 2.0) -> dict[str, Any]:
    """The next push frame (other frames, such as read state, are skipped)."""
    while (frame := receive(ws, timeout=timeout))["type"] != "push":
        pass
    return frame


def reached_by(
    clients: dict[str, ClientConnection], send: Callable[[], None], name: str
) -> dict[str, dict[str, Any]]:
    """
    Call ``send`` (which pushes one event named ``name``), then push the
    sentinel to everyone; return the frame each client got before the
    sentinel, by client name, for the clients it reached.
    """
    send()
    mark = next(_marks)
    live.push(SENTINEL, {"mark": mark}, to=live.everyone())
    reached = {}
    for client, ws in clients.items():
        frame = next_push(ws)
        if frame["name"] == name:
            reached[client] = frame
            frame = next_push(ws)
        assert (frame["name"], frame["data"]) == (SENTINEL, {"mark": mark})
    return reached


def seconds_until(
    ws: ClientConnection,
    send: Callable[[], None],
    name: str,
    *,
    reached: bool,
    bound: float,
) -> float:
    """
    Seconds until a push sent by ``send`` (again every 100 ms) reaches ``ws``
    if ``reached``, or stops reaching it if not; fail past ``bound`` + 1 s.
    """
    started = time.monotonic()
    while time.monotonic() - started < bound + 1:
        if bool(reached_by({"me": ws}, send, name)) == reached:
            return time.monotonic() - started
        time.sleep(0.1)
    pytest.fail(f"the connection's rights did not change within {bound + 1}s")
