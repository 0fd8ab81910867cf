"""
Revocations seen recently, for connections still authenticating.

A handshake loads its session from the database before the connection
joins the delivery core; a revocation message that passes meanwhile finds
no connection to act on. The core remembers recent ones and applies them
as the connection registers. No I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from notifications.wire import UserKey

from .auth import Principal

__all__ = ["Revocations"]


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
