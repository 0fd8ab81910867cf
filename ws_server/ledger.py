"""
Which event ids this process has delivered, and which it may still receive.

Event ids are assigned when a transaction inserts the event and become
visible when it commits, so they don't become visible in id order: two
transactions can commit in the opposite order of their inserts, a rolled-back
one leaves a hole for good, and a publish can be lost on its way through
Redis. The ledger keeps the highest id delivered and the *gaps* below it, the
ids not seen yet. Whatever path an event takes (the Redis stream, the
database sweep, both), :meth:`Ledger.accept` lets it through exactly once.

The gaps also give the resume cursor: every id up to :attr:`Ledger.cursor`
has been delivered here, so a client that resumes from it misses nothing,
not even an event that commits late below an id it has already seen. A gap
that stays open longer than the gap timeout is given up (a rolled-back
transaction never fills its hole).

No I/O happens here; times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

__all__ = ["MAX_GAPS", "Ledger"]

logger = logging.getLogger(__name__)

#: Most gap ids tracked at once; an id jump past this is not waited for.
MAX_GAPS = 10_000


class Ledger:
    def __init__(
        self, high: int = 0, gaps: Iterable[int] = (), now: float = 0.0
    ) -> None:
        self.high = high
        # Gap id -> when it became a gap.
        self._gaps: dict[int, float] = dict.fromkeys(
            (gap for gap in gaps if gap < high), now
        )
        # The lowest gap, computed when asked after it went: every frame
        # carries the cursor, and new gaps only ever open above the old ones.
        self._lowest: int | None = None

    @property
    def cursor(self) -> int:
        """The highest id up to which every event has been delivered here."""
        if not self._gaps:
            return self.high
        if self._lowest is None:
            self._lowest = min(self._gaps)
        return self._lowest - 1

    @property
    def gaps(self) -> list[int]:
        """The ids below ``high`` still awaited, lowest first."""
        return sorted(self._gaps)

    def accept(self, event_id: int, now: float) -> bool:
        """Record ``event_id`` as delivered; False if it already was."""
        if event_id > self.high:
            self._open_gaps(self.high + 1, event_id, now)
            self.high = event_id
            return True
        if self._gaps.pop(event_id, None) is None:
            return False
        if event_id == self._lowest:
            self._lowest = None
        return True

    def is_new(self, event_id: int) -> bool:
        """Tell whether ``event_id`` would be accepted."""
        return event_id > self.high or event_id in self._gaps

    def expire(self, now: float, timeout: float) -> list[int]:
        """Stop waiting for gaps older than ``timeout``; return them."""
        expired = [gap for gap, since in self._gaps.items() if now - since > timeout]
        for gap in expired:
            del self._gaps[gap]
        if expired:
            self._lowest = None
        return expired

    def _open_gaps(self, start: int, stop: int, now: float) -> None:
        room = MAX_GAPS - len(self._gaps)
        if stop - start > room:
            # A sequence that jumped (restarted, altered, or thousands of
            # rollbacks): wait only for the ids just below the new one.
            logger.warning(
                "event ids jumped from %d to %d; waiting for the last %d only",
                start - 1,
                stop,
                max(room, 0),
            )
            start = stop - max(room, 0)
        for gap in range(start, stop):
            self._gaps[gap] = now
