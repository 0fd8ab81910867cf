"""
Keep open connections as authorized as Django says they are.

Three things can leave a socket open that Django would refuse: a revocation
message that passed while the connection was still authenticating (it was
not in the hub yet), a message that never arrived (Redis hung, a publish
failed on Django's side, the stream was trimmed), and a change no signal
announces (``QuerySet.update``, raw SQL, a session row deleted in bulk).

* :class:`Revocations` remembers recent revocations, so a handshake that read
  the session before one of them is closed or re-checked as it registers.
* :class:`Rechecker` authenticates connections again, in batches, off the
  relay's path: users named by a ``user_changed`` message (coalesced, within
  a second), sessions past their expiry, everyone after an outage, and
  every connection once per ``NOTIFICATIONS_RECHECK_INTERVAL`` whatever
  happened, spread over the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from notifications.wire import CloseCode, UserKey

from .auth import AuthenticationFailed, Principal, authenticate_sessions
from .db import DatabaseUnavailable, run_orm
from .hub import Client, Hub

__all__ = ["Rechecker", "Revocations"]

logger = logging.getLogger(__name__)

#: Seconds between two passes of the re-check loop (requested users wait
#: at most this long), and between two scans of every connection for an
#: expired session or a periodic re-check that is due.
TICK = 0.25
SCAN_INTERVAL = 1.0
#: Sessions re-authenticated per database round trip.
BATCH_SIZE = 500


class Revocations:
    """
    Revocations seen in the last ``horizon`` seconds, at most ``size`` each.

    An ended session never comes back (Django never reuses a session key),
    so any connection presenting it within the horizon is refused, however
    its own lookup went. A changed user is re-checked if the change came
    after that connection's lookup started.
    """

    def __init__(self, horizon: float, size: int = 100_000) -> None:
        self.horizon = horizon
        self.size = size
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._changed: OrderedDict[UserKey, float] = OrderedDict()
        self._groups_changed: OrderedDict[int, float] = OrderedDict()

    def session_ended(self, digest: str, now: float) -> None:
        self._remember(self._ended, digest, now)

    def user_changed(self, user_id: UserKey, now: float) -> None:
        self._remember(self._changed, user_id, now)

    def group_changed(self, group_id: int, now: float) -> None:
        self._remember(self._groups_changed, group_id, now)

    def is_ended(self, digest: str, now: float) -> bool:
        ended = self._ended.get(digest)
        return ended is not None and now - ended <= self.horizon

    def changed_since(self, principal: Principal, since: float) -> bool:
        """Tell whether the user, or a group of theirs, changed at ``since`` or later."""
        return any(
            changed is not None and changed >= since
            for changed in (
                self._changed.get(principal.user_id),
                *map(self._groups_changed.get, principal.group_ids),
            )
        )

    def _remember(self, log: OrderedDict[Any, float], key: object, now: float) -> None:
        log[key] = now
        log.move_to_end(key)
        while log and (
            len(log) > self.size or now - next(iter(log.values())) > self.horizon
        ):
            log.popitem(last=False)


class Rechecker:
    def __init__(self, hub: Hub, revocations: Revocations, *, interval: float) -> None:
        self.hub = hub
        self.revocations = revocations
        self.interval = interval
        self._users: set[UserKey] = set()
        self._everyone = False
        self._wake = asyncio.Event()
        self._scanned_at = 0.0

    def request(self, user_id: UserKey) -> None:
        """Re-check ``user_id``'s connections soon (coalesced)."""
        self._users.add(user_id)
        self._wake.set()

    def request_everyone(self) -> None:
        """Re-check every connection soon (after an outage or a trimmed stream)."""
        self._everyone = True
        self._wake.set()

    async def recheck_everyone(self) -> None:
        """
        Re-check every connection now; the caller waits for it.

        If the database is out, the re-check is left to the background loop
        rather than holding up the caller.
        """
        clients = self.hub.clients()
        logger.info("re-checking %d connection(s)", len(clients))
        try:
            await self.recheck(clients)
        except DatabaseUnavailable:
            self.request_everyone()

    async def run(self) -> None:
        """Re-check whatever is due, forever; survive database outages."""
        while True:
            # A database outage is logged once by run_orm; requests stay pending.
            with contextlib.suppress(DatabaseUnavailable):
                await self._step()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await self._wake.wait()
            self._wake.clear()

    async def _step(self) -> None:
        if self._everyone:
            self._everyone = False
            await self.recheck_everyone()
        if self._users:
            users, self._users = self._users, set()
            try:
                await self.recheck(
                    [client for user in users for client in self.hub.of_user(user)]
                )
            except DatabaseUnavailable:
                self._users |= users
                raise
        now = time.monotonic()
        if now - self._scanned_at >= SCAN_INTERVAL:
            self._scanned_at = now
            await self.recheck(self.hub.expired(time.time()))
            await self.recheck(self._due(now))

    def _due(self, now: float) -> list[Client]:
        """The connections checked longest ago, enough to cover all per interval."""
        # Due before the next scan counts as due now, so none waits past the
        # interval for the scan after it.
        cutoff = now - self.interval + SCAN_INTERVAL
        stale = [client for client in self.hub.clients() if client.checked_at <= cutoff]
        # Twice the even share: a crowd that connected together spreads out.
        share = math.ceil(2 * len(self.hub) * SCAN_INTERVAL / self.interval)
        stale.sort(key=lambda client: client.checked_at)
        return stale[: max(share, 50)]

    async def recheck(self, clients: Sequence[Client]) -> None:
        """Authenticate ``clients`` again; close the refused, re-index the rest."""
        for start in range(0, len(clients), BATCH_SIZE):
            await self._recheck_batch(clients[start : start + BATCH_SIZE])

    async def _recheck_batch(self, batch: Sequence[Client]) -> None:
        started = time.monotonic()
        keys = [client.principal.session_key for client in batch]
        results = await run_orm(authenticate_sessions, keys)
        for client, key in zip(batch, keys, strict=True):
            principal = results[key]
            if isinstance(principal, AuthenticationFailed):
                client.close(
                    CloseCode.SESSION_REVOKED, "session revoked", str(principal)
                )
            elif client in self.hub:  # it may have left while the check ran
                self.hub.update(client, principal)
                client.checked_at = started
                logger.debug("re-checked %r: still authorized", client)
                if self.revocations.changed_since(principal, started):
                    self.request(principal.user_id)  # changed again meanwhile
