"""
The audience index: which connections an event's audience covers.

No I/O happens here. The delivery core (``ws_server.core``) adds the
connections it routes, re-indexes them when their rights change, and asks
for the ``recipients`` of each event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from notifications.wire import AudienceSpec, UserKey

from .auth import Principal

__all__ = ["Hub", "Index", "includes"]

K = TypeVar("K", bound=int | str)


class Indexed(Protocol):
    principal: Principal


C = TypeVar("C", bound=Indexed)


class Index(Generic[K, C]):
    """
    Connections by a key that nearly always has one: a user, a session.

    A key's only connection is kept as it is, and a set only from the second
    one on: an index of one-element sets would cost 216 bytes a connection
    for each of them, a third of what the core kept per connection.
    """

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[K, C | set[C]] = {}

    def get(self, key: K) -> Collection[C]:
        """The connections under ``key`` (a snapshot only when it is one)."""
        items = self._items.get(key)
        if items is None:
            return ()
        if isinstance(items, set):
            return items
        return (items,)

    def add(self, key: K, client: C) -> None:
        items = self._items.get(key)
        if items is None:
            self._items[key] = client
        elif isinstance(items, set):
            items.add(client)
        elif items is not client:
            self._items[key] = {items, client}

    def discard(self, key: K, client: C) -> None:
        """Remove ``client`` from ``key``, and the key once it has none."""
        items = self._items.get(key)
        if items is client:
            del self._items[key]
        elif isinstance(items, set):
            items.discard(client)
            if len(items) == 1:
                self._items[key] = items.pop()


class Hub(Generic[C]):
    """
    The routed connections, indexed by what audiences select on.

    Connections by user are the owner's index of every connection, routed
    or not (``by_user``): the hub picks the routed ones from it rather than
    keep a second index of its own.
    """

    def __init__(self, by_user: Index[UserKey, C]) -> None:
        self._all: set[C] = set()
        self._staff: set[C] = set()
        self._superusers: set[C] = set()
        self._by_user = by_user
        self._by_group: defaultdict[int, set[C]] = defaultdict(set)
        self._by_permission: defaultdict[str, set[C]] = defaultdict(set)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, client: object) -> bool:
        return client in self._all

    def __iter__(self) -> Iterator[C]:
        return iter(self._all)

    def add(self, client: C) -> None:
        principal = client.principal
        self._all.add(client)
        if principal.is_staff:
            self._staff.add(client)
        if principal.is_superuser:
            self._superusers.add(client)
        for group_id in principal.group_ids:
            self._by_group[group_id].add(client)
        for permission in principal.permissions:
            self._by_permission[permission].add(client)

    def discard(self, client: C) -> None:
        principal = client.principal
        self._all.discard(client)
        self._staff.discard(client)
        self._superusers.discard(client)
        for group_id in principal.group_ids:
            _forget(self._by_group, group_id, client)
        for permission in principal.permissions:
            _forget(self._by_permission, permission, client)

    def update(self, client: C, principal: Principal) -> None:
        """Re-index a client whose flags, groups or permissions changed."""
        self.discard(client)
        client.principal = principal
        self.add(client)

    def recipients(self, audience: AudienceSpec) -> Collection[C]:
        """
        Return the connected clients ``audience`` covers (only the staff
        among them if it is ``staff_only``).

        An audience of only "everyone" or only "staff" gets the hub's own
        set, the same object each time, which lets the dispatcher send a run
        of such events together. Don't change it.
        """
        clients = self._covered(audience)
        if not audience.staff_only:
            return clients
        if clients is self._all:
            return self._staff
        return {client for client in clients if client in self._staff}

    def _covered(self, audience: AudienceSpec) -> Collection[C]:
        """The union of the audience's parts, before ``staff_only`` narrows it."""
        if audience.everyone:
            return self._all
        parts: list[set[C]] = []
        if audience.staff:
            parts.append(self._staff)
        if audience.superusers or audience.permissions:
            parts.append(self._superusers)
        if audience.groups:
            parts.append(_union(self._by_group, audience.groups))
        if audience.users:
            parts.append(
                {
                    client
                    for user_id in audience.users
                    for client in self._by_user.get(user_id)
                    if client in self._all
                }
            )
        if audience.permissions:
            parts.append(_union(self._by_permission, audience.permissions))
        if len(parts) == 1:
            return parts[0]
        return set().union(*parts)


def includes(audience: AudienceSpec, principal: Principal) -> bool:
    """Tell whether ``audience`` covers ``principal``: ``Hub.recipients`` for one."""
    if audience.staff_only and not principal.is_staff:
        return False
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


def _forget(index: dict[K, set[C]], key: K, client: C) -> None:
    """Remove ``client`` from ``index[key]``, and the key once it is empty."""
    members = index.get(key)
    if members is not None:
        members.discard(client)
        if not members:
            del index[key]


def _union(index: defaultdict[K, set[C]], keys: Iterable[K]) -> set[C]:
    clients: set[C] = set()
    for key in keys:
        clients.update(index.get(key, ()))
    return clients
