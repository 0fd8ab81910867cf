"""
Reconciliation: deliver from the database whatever the Redis stream didn't.

The database is the log and Redis the fast path. Every
``NOTIFICATIONS_SWEEP_INTERVAL`` seconds the sweep asks the database, in one
index range scan, for committed event ids this process has not delivered:
above the ledger's highest id, or in its gaps. Whatever way an event missed
the stream (a publish that failed on Django's side, Redis killed, hung or
trimmed, a relay that started late, a transaction that committed after a
newer one) it turns up here.

An event is taken from the database only once it has been missing for a
whole sweep interval, since the stream normally brings it within
milliseconds of the commit; while the relay is disconnected, at once. The
bound from commit to socket is therefore two sweep intervals plus the
queries (about 1 s with the defaults); idle, a sweep costs one query.

A missing event means a stream that dropped things, and revocations travel
on the same stream: the delivery core holds the found events for every
connection not authenticated since they went missing until a re-check says
what that connection may see (``Core.swept``), so a socket whose logout or
group change was lost with the event doesn't receive it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from notifications import selectors
from notifications.payloads import event_message_of
from notifications.wire import EventMessage

from . import metrics
from .db import DatabaseUnavailable, run_orm
from .delivery import Dispatcher

__all__ = ["Sweeper"]

logger = logging.getLogger(__name__)

#: Most event ids one sweep looks at; the next sweep goes on from there.
BATCH_SIZE = 1_000


class Sweeper:
    def __init__(
        self,
        dispatcher: Dispatcher,
        relay_connected: asyncio.Event,
        *,
        interval: float,
        gap_timeout: float,
    ) -> None:
        self.dispatcher = dispatcher
        self.relay_connected = relay_connected
        self.interval = interval
        self.gap_timeout = gap_timeout
        # Missing event id -> when a sweep first found it missing.
        self._missing: dict[int, float] = {}
        # The loop's sweeps and the relay's catch-up take turns: each
        # replaces ``_missing``, which the other may be in the middle of.
        self._sweeping = asyncio.Lock()
        #: Whether the last sweep reached the database: readiness follows it,
        #: not every query (one slow handshake query is no outage), and
        #: nothing before the first sweep.
        self.database_ok = False

    async def run(self) -> None:
        """Sweep forever; a database outage only delays the next sweep."""
        while True:
            await self.tick()
            await asyncio.sleep(self.interval)

    async def tick(self) -> None:
        """One sweep of ``run``; whether it reached the database is noted."""
        try:
            await self.sweep()
        except DatabaseUnavailable:  # logged by run_orm
            self.database_ok = False
        else:
            self.database_ok = True

    async def catch_up(self, missing_since: float) -> int:
        """
        Deliver everything missing now, without waiting a sweep interval.

        The relay calls this after an outage, before reading the stream on,
        so the events committed meanwhile arrive before the newer ones. It
        takes what the database holds now, a batch at a time, and stops at
        the first batch that isn't full: whatever commits after that comes
        on the stream, which the relay reads again next. (Sweeping until a
        sweep found nothing never ended under steady traffic.)
        """
        delivered = 0
        while True:
            count, full = await self.sweep(hurry=True, missing_since=missing_since)
            delivered += count
            if not full:
                return delivered

    async def sweep(
        self, *, hurry: bool = False, missing_since: float | None = None
    ) -> tuple[int, bool]:
        """
        Deliver the events that are due (all missing ones if ``hurry``);
        return how many, and whether the batch of ids was full.
        """
        # The wait is bounded by the sweep holding the lock: two ORM calls,
        # each within DB_TIMEOUT.
        async with self._sweeping:
            return await self._sweep(hurry=hurry, missing_since=missing_since)

    async def _sweep(
        self, *, hurry: bool, missing_since: float | None
    ) -> tuple[int, bool]:
        core = self.dispatcher.core
        for gap in core.expire_gaps(time.monotonic(), self.gap_timeout):
            logger.debug("stopped waiting for event %d (rolled back?)", gap)
        ledger = core.ledger
        ids = await run_orm(
            selectors.event_ids_after,
            after=ledger.high,
            also=ledger.gaps,
            limit=BATCH_SIZE,
        )
        full = len(ids) >= BATCH_SIZE
        now = time.monotonic()
        self._missing = {
            event_id: self._missing.get(event_id, now)
            for event_id in ids
            if ledger.is_new(event_id)
        }
        hurry = hurry or not self.relay_connected.is_set()
        due = [
            event_id
            for event_id, since in self._missing.items()
            if hurry or since < now
        ]
        if not due:
            return 0, full
        events = await run_orm(_load_events, due)
        since = min(self._missing[event_id] for event_id in due)
        if missing_since is not None:
            since = min(since, missing_since)
        fresh = [
            event
            for event in events
            if event.event_id is not None and ledger.is_new(event.event_id)
        ]
        self.dispatcher.deliver_swept(fresh, since)
        if fresh:
            metrics.CATCHUPS.inc(len(fresh))
            logger.info(
                "reconciled %d event(s) from the database (%d to %d)",
                len(fresh),
                fresh[0].event_id,
                fresh[-1].event_id,
            )
        return len(fresh), full


def _load_events(ids: list[int]) -> list[EventMessage]:
    """Blocking: the events with these ids, as the stream would carry them."""
    return [
        event_message_of(event, prefetched=True)
        for event in selectors.events_with_audience(ids=ids)
    ]
