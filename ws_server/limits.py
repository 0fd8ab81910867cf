"""Per-connection limits that need state: the client message rate."""

from __future__ import annotations

import time

__all__ = ["TokenBucket"]


class TokenBucket:
    """
    Allow ``rate`` events per second on average, with bursts up to ``burst``.

    A browser sends a message per click; a burst allowance keeps "mark read"
    on a dozen items from tripping the limit, while a flood still does.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend a token; return False when none is left."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
