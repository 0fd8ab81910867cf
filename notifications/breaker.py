"""
A circuit breaker for the Redis commands Django runs inside requests.

A Redis that hangs makes every command wait for the socket timeout. The
breaker lets one request pay that wait, then refuses commands at once for
``NOTIFICATIONS_PUBLISH_COOLDOWN`` seconds, then lets one command through to
see whether Redis is back (half-open). Refusing loses nothing for good: the
database has the rows and the ws_server reconciles from it.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

__all__ = ["FAILURES", "CircuitBreaker", "CircuitOpen"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: What opens the breaker: the failures that cost a wait. An error reply
#: (``ResponseError``) came back fast and says nothing about stalls.
FAILURES = (redis.ConnectionError, redis.TimeoutError)


class CircuitOpen(redis.ConnectionError):
    """Redis failed moments ago: the command was refused without trying it."""


class CircuitBreaker:
    """
    Closed; open for ``cooldown()`` seconds after a failure; then half-open.

    Half-open lets exactly one call through, and the others are refused until
    it has answered: its success closes the breaker, its failure opens it
    again. Thread-safe: the state changes under a lock, calls run outside it.
    """

    def __init__(
        self,
        cooldown: Callable[[], float],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._opened_at: float | None = None  # None while closed
        self._down_since = 0.0
        self._trying = False
        self._refused = 0

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``function``, or raise ``CircuitOpen`` at once while open."""
        trial = self._admit()
        try:
            result = function(*args, **kwargs)
        except FAILURES as exc:
            self._failed(exc, trial=trial)
            raise
        except BaseException:
            # An error reply or a bug: no news about Redis's health.
            if trial:
                self._end_trial()
            raise
        if trial:
            self._recovered()
        return result

    def _admit(self) -> bool:
        """Let the call through (True if it is the half-open trial), or refuse it."""
        with self._lock:
            if self._opened_at is None:
                return False
            age = self._clock() - self._opened_at
            if self._trying or age < self._cooldown():
                self._refused += 1
                raise CircuitOpen(f"not tried: Redis failed {age:.1f} s ago")
            self._trying = True
            return True

    def _failed(self, exc: Exception, *, trial: bool) -> None:
        with self._lock:
            now = self._clock()
            if self._opened_at is None:
                self._down_since = now
            self._opened_at = now
            if trial:
                self._trying = False
        logger.debug("circuit open for %.1f s after: %r", self._cooldown(), exc)

    def _end_trial(self) -> None:
        with self._lock:
            self._trying = False

    def _recovered(self) -> None:
        with self._lock:
            down = self._clock() - self._down_since
            refused, self._refused = self._refused, 0
            self._opened_at = None
            self._trying = False
        logger.info(
            "Redis answers again after %.1f s; %d command(s) were skipped meanwhile",
            down,
            refused,
        )
