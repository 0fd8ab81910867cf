"""
The registry of connected clients: who is here, and who an event is for.

No I/O happens here. Connection handlers ``add`` and ``discard`` their client
around the connection's lifetime; the relay asks for ``recipients`` of each
event and sends to them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Collection, Iterable
from typing import TypeVar

from websockets.asyncio.server import ServerConnection

from notifications.wire import AudienceSpec, UserKey

from . import lifecycle
from .auth import Principal

__all__ = ["Client", "Hub", "includes"]

K = TypeVar("K", bound=int | str)


class Client:
    """
    One authenticated connection.

    While the handler replays what the client missed, live frames wait in
    ``pending`` (bounded), so nothing is sent out of order or twice.
    """

    __slots__ = (
        "_closing",
        "ahead",
        "checked_at",
        "connection",
        "overflowed",
        "pending",
        "principal",
    )

    def __init__(
        self, connection: ServerConnection, principal: Principal, checked_at: float
    ) -> None:
        self.connection = connection
        self.principal = principal
        # When the lookup that authorized ``principal`` started (monotonic).
        self.checked_at = checked_at
        self.pending: deque[tuple[int | None, str]] | None = deque()
        # Replayed from the database before this process relayed them: when
        # they arrive live they are not sent again.
        # (None for nearly every client: an empty set costs 216 bytes each.)
        self.ahead: set[int] | None = None
        self.overflowed = False
        self._closing: asyncio.Task[None] | None = None

    def hold(self, event_id: int | None, frame: str, limit: int) -> None:
        """Keep a live frame until the replay is done; past ``limit``, give up."""
        assert self.pending is not None
        if len(self.pending) >= limit:
            self.overflowed = True
            self.pending.clear()
        if not self.overflowed:
            self.pending.append((event_id, frame))

    def already_sent(self, event_id: int | None) -> bool:
        """Tell whether ``event_id`` went out in the replay (once only)."""
        if event_id is None or not self.ahead or event_id not in self.ahead:
            return False
        self.ahead.discard(event_id)
        return True

    @property
    def closing(self) -> bool:
        """Closed by the server: nothing more is sent to it."""
        return self._closing is not None

    def close(self, code: int, reason: str, cause: str | None = None) -> None:
        """
        Start the closing handshake without waiting for it (idempotent);
        ``cause`` says more than ``reason`` in the close line.
        """
        if self._closing is None:
            lifecycle.closing(self.connection, code, cause)
            # The task holds itself via this attribute until the connection
            # closes; its handler then drops the client.
            self._closing = asyncio.create_task(self.connection.close(code, reason))

    def __repr__(self) -> str:
        return f"<Client user={self.principal.user_id} {self.connection.id}>"


class Hub:
    def __init__(self) -> None:
        self._all: set[Client] = set()
        self._staff: set[Client] = set()
        self._superusers: set[Client] = set()
        self._by_user: defaultdict[UserKey, set[Client]] = defaultdict(set)
        self._by_group: defaultdict[int, set[Client]] = defaultdict(set)
        self._by_session: defaultdict[str, set[Client]] = defaultdict(set)
        self._by_permission: defaultdict[str, set[Client]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, client: object) -> bool:
        return client in self._all

    def add(self, client: Client) -> None:
        principal = client.principal
        self._all.add(client)
        if principal.is_staff:
            self._staff.add(client)
        if principal.is_superuser:
            self._superusers.add(client)
        self._by_user[principal.user_id].add(client)
        self._by_session[principal.session_digest].add(client)
        for group_id in principal.group_ids:
            self._by_group[group_id].add(client)
        for permission in principal.permissions:
            self._by_permission[permission].add(client)

    def discard(self, client: Client) -> None:
        principal = client.principal
        self._all.discard(client)
        self._staff.discard(client)
        self._superusers.discard(client)
        _discard(self._by_user, principal.user_id, client)
        _discard(self._by_session, principal.session_digest, client)
        for group_id in principal.group_ids:
            _discard(self._by_group, group_id, client)
        for permission in principal.permissions:
            _discard(self._by_permission, permission, client)

    def update(self, client: Client, principal: Principal) -> None:
        """Re-index a client whose flags, groups or permissions changed."""
        self.discard(client)
        client.principal = principal
        self.add(client)

    def recipients(self, audience: AudienceSpec) -> Collection[Client]:
        """
        Return the connected clients ``audience`` covers.

        An audience of only "everyone" or only "staff" gets the hub's own
        set, the same object each time, which lets the dispatcher send a run
        of such events together. Don't change it.
        """
        if audience.everyone:
            return self._all
        parts: list[set[Client]] = []
        if audience.staff:
            parts.append(self._staff)
        if audience.superusers or audience.permissions:
            parts.append(self._superusers)
        if audience.groups:
            parts.append(_union(self._by_group, audience.groups))
        if audience.users:
            parts.append(_union(self._by_user, audience.users))
        if audience.permissions:
            parts.append(_union(self._by_permission, audience.permissions))
        if len(parts) == 1:
            return parts[0]
        return set().union(*parts)

    def of_user(self, user_id: UserKey) -> list[Client]:
        return list(self._by_user.get(user_id, ()))

    def of_group(self, group_id: int) -> list[Client]:
        return list(self._by_group.get(group_id, ()))

    def of_session(self, digest: str) -> list[Client]:
        return list(self._by_session.get(digest, ()))

    def count_of_user(self, user_id: UserKey) -> int:
        return len(self._by_user.get(user_id, ()))

    def clients(self) -> list[Client]:
        """A snapshot of every client, safe to iterate across awaits."""
        return list(self._all)

    def expired(self, now: float) -> list[Client]:
        """Clients whose session has expired by ``now`` (epoch seconds)."""
        return [
            client
            for client in self._all
            if client.principal.expires_at <= now and not client.closing
        ]


def includes(audience: AudienceSpec, principal: Principal) -> bool:
    """Tell whether ``audience`` covers ``principal``: ``Hub.recipients`` for one."""
    return (
        audience.everyone
        or (audience.staff and principal.is_staff)
        or (
            (audience.superusers or bool(audience.permissions))
            and principal.is_superuser
        )
        or principal.user_id in audience.users
        or not audience.groups.isdisjoint(principal.group_ids)
        or not audience.permissions.isdisjoint(principal.permissions)
    )


def _discard(index: dict[K, set[Client]], key: K, client: Client) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(client)
        if not members:
            del index[key]


def _union(index: defaultdict[K, set[Client]], keys: Iterable[K]) -> set[Client]:
    clients: set[Client] = set()
    for key in keys:
        clients.update(index.get(key, ()))
    return clients
