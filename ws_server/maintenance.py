"""
Keep open connections as authorized as Django says they are.

Three things can leave a socket open that Django would refuse: a revocation
message that passed while the connection was still authenticating (the
delivery core remembers those, ``ws_server.revocations``), a message that
never arrived (Redis hung, a publish failed on Django's side, the stream
was trimmed), and a change no signal announces (``QuerySet.update``, raw
SQL, a session row deleted in bulk).

:class:`Rechecker` authenticates connections again, in batches, off the
relay's path, and hands the results to the core: connections the core put
in doubt (a ``user_changed`` or ``group_changed`` message, a lost stretch of
the stream; coalesced, within a tick), sessions past their expiry, and
every connection once per ``NOTIFICATIONS_RECHECK_INTERVAL`` whatever
happened, spread over the interval. A re-check that fails (the database or
the session store is out) leaves its connections as they are and is tried
again; the core closes a connection that stays in doubt too long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence

from .auth import authenticate_sessions
from .core import Subscriber
from .db import DatabaseUnavailable, run_orm
from .delivery import Dispatcher

__all__ = ["Rechecker"]

logger = logging.getLogger(__name__)

#: Seconds between two passes of the re-check loop (connections in doubt
#: wait at most this long), and between two scans of every connection for
#: an expired session or a periodic re-check that is due.
TICK = 0.25
SCAN_INTERVAL = 1.0
#: Sessions re-authenticated per database round trip.
BATCH_SIZE = 500


class Rechecker:
    def __init__(self, dispatcher: Dispatcher, *, interval: float) -> None:
        self.dispatcher = dispatcher
        self.core = dispatcher.core
        self.interval = interval
        self._scanned_at = 0.0

    async def run(self) -> None:
        """Re-check whatever is due, forever; survive outages of what it reads."""
        wanted = self.dispatcher.recheck_wanted
        while True:
            # An outage is logged once by run_orm; requests stay pending.
            with contextlib.suppress(DatabaseUnavailable):
                await self._step()
            self.dispatcher.apply(self.core.overdue(time.monotonic()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await wanted.wait()

    async def _step(self) -> None:
        self.dispatcher.recheck_wanted.clear()
        requests = self.dispatcher.recheck_requests
        if requests:
            batch = [sub for sub in requests if sub in self.core and not sub.closing]
            requests.clear()
            try:
                await self.recheck(batch)
            except DatabaseUnavailable:
                # Still in doubt (if they were): asked again next tick.
                requests.update(batch)
                raise
        now = time.monotonic()
        if now - self._scanned_at >= SCAN_INTERVAL:
            self._scanned_at = now
            await self.recheck(self._expired(time.time()))
            await self.recheck(self._due(now))

    def _expired(self, now: float) -> list[Subscriber]:
        """Connections whose session has expired by ``now`` (epoch seconds)."""
        return [
            sub
            for sub in self.core.subscribers()
            if sub.principal.expires_at <= now and not sub.closing
        ]

    def _due(self, now: float) -> list[Subscriber]:
        """The connections checked longest ago, enough to cover all per interval."""
        # Due before the next scan counts as due now, so none waits past the
        # interval for the scan after it.
        cutoff = now - self.interval + SCAN_INTERVAL
        stale = [sub for sub in self.core.subscribers() if sub.checked_at <= cutoff]
        # Twice the even share: a crowd that connected together spreads out.
        share = math.ceil(2 * len(self.core) * SCAN_INTERVAL / self.interval)
        stale.sort(key=lambda sub: sub.checked_at)
        return stale[: max(share, 50)]

    async def recheck(self, subs: Sequence[Subscriber]) -> None:
        """Authenticate ``subs`` again and let the core act on the results."""
        for start in range(0, len(subs), BATCH_SIZE):
            await self._recheck_batch(subs[start : start + BATCH_SIZE])

    async def _recheck_batch(self, batch: Sequence[Subscriber]) -> None:
        generation, started = self.core.generation, time.monotonic()
        keys = [sub.principal.session_key for sub in batch]
        results = await run_orm(authenticate_sessions, keys)
        self.dispatcher.apply(
            self.core.rechecked(
                generation,
                started,
                [(sub, results[key]) for sub, key in zip(batch, keys, strict=True)],
                time.monotonic(),
            )
        )
        logger.debug("re-checked %d connection(s)", len(batch))
