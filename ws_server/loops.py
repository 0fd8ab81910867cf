"""
Pick the event loop: uvloop when it is installed, else asyncio's own.

The benchmark (docs/benchmarks.md) measured uvloop saving memory per idle
connection and CPU per handshake, so ``--loop auto`` (the default) uses it
when the package is there. It stays optional: it doesn't build on every
platform, and the server behaves the same on either loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LOOPS", "loop_runner"]

T = TypeVar("T")

Loop = Literal["auto", "asyncio", "uvloop"]
LOOPS: tuple[Loop, ...] = ("auto", "asyncio", "uvloop")


def loop_runner(choice: Loop) -> Callable[[Coroutine[Any, Any, T]], T]:
    """Return ``asyncio.run`` or ``uvloop.run`` for ``choice``."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError as exc:
        if choice == "uvloop":
            raise RuntimeError(
                "--loop uvloop: the uvloop package is not installed"
            ) from exc
        return asyncio.run
    return uvloop.run
