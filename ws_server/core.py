"""
The delivery core: which frame goes to which connection, and when. No I/O.

The asyncio layer feeds it what happened (stream messages read, events the
sweep found, a handshake, a replay loaded, a re-check's results, a close)
and carries out what it returns: :class:`Send` frames, :class:`Close` a
connection, :class:`Recheck` connections against the database. Every
decision that the "nothing lost, nothing twice, nothing to the wrong user"
argument rests on is made here, in one place, so the model-based test
(``tests/test_core_model.py``) can drive it through any interleaving.

A connection (:class:`Subscriber`) is *routed* (in the hub's audience index,
getting the plain fan-out) unless one of these holds, in which case the core
offers it each event one by one:

* **replaying**: registered, its replay not loaded yet. Frames meant for it
  are held, in order, and released after the replay.
* **in doubt**: an audience change, a revocation that may have passed, or a
  lost stretch of the stream makes its principal uncertain. Everything that
  might concern it is held until a re-check that started after the doubt
  settles it; then the held frames are filtered with the new principal.
  This is what keeps a member removed from a group from receiving the
  group's next notification, and a member just added from missing it: an
  event is never routed with rights older than the changes published before
  it.
* **closing**: it gets nothing more.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from notifications.wire import (
    AudienceSpec,
    CloseCode,
    EventMessage,
    GroupChanged,
    RedisMessage,
    SessionEnded,
    UserChanged,
    UserFrame,
    UserKey,
    encode_frame,
    encode_resync,
    encode_welcome,
)

from . import metrics
from .auth import AuthenticationFailed, Principal
from .hub import Hub, Index, includes
from .ledger import Ledger
from .revocations import Revocations

__all__ = [
    "Action",
    "Close",
    "Core",
    "Recheck",
    "Replay",
    "Send",
    "Subscriber",
]

logger = logging.getLogger(__name__)

#: A frame for a connection: the event id it carries (None for other
#: frames) and its text.
Item = tuple[int | None, str]
#: A frame held for a connection that isn't routed, with the audience that
#: decides whether it is the connection's (None: it is, whoever the user is).
Held = tuple[int | None, AudienceSpec | None, str]


class Subscriber:
    """One authenticated connection, as the core sees it."""

    __slots__ = (
        "checked_at",
        "checked_generation",
        "closing",
        "connection",
        "doubt",
        "doubt_at",
        "doubt_since",
        "held",
        "overflowed",
        "principal",
        "replay",
        "replaying",
    )

    def __init__(self, connection: Any, principal: Principal, checked_at: float):
        #: The I/O layer's handle; the core never touches it.
        self.connection = connection
        self.principal = principal
        #: When the lookup that gave ``principal`` started (monotonic).
        self.checked_at = checked_at
        #: The core's generation when that lookup started.
        self.checked_generation = 0
        #: The generation of the newest doubt not settled yet; 0: none.
        self.doubt = 0
        #: When the connection went into doubt, and when its doubt was
        #: last raised (monotonic).
        self.doubt_since = 0.0
        self.doubt_at = 0.0
        self.replaying = True
        #: A replay loaded while in doubt, released once the doubt settles.
        self.replay: Replay | None = None
        self.closing = False
        #: Frames kept while it isn't routed (None while there are none: an
        #: empty deque costs 600 bytes a connection).
        self.held: deque[Held] | None = None
        self.overflowed = False

    @property
    def routed(self) -> bool:
        return not (self.replaying or self.doubt or self.closing)

    def __repr__(self) -> str:
        return f"<Client user={self.principal.user_id} {getattr(self.connection, 'id', '')}>"


@dataclass(frozen=True, slots=True)
class Send:
    """Write ``items``, in order, to each of ``subscribers`` that is open."""

    subscribers: Collection[Subscriber]
    items: Sequence[Item]


@dataclass(frozen=True, slots=True)
class Close:
    """Close ``subscriber`` with ``code`` and ``reason``; ``cause`` is for the log."""

    subscriber: Subscriber
    code: int
    reason: str
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Recheck:
    """Authenticate these connections again and report with ``Core.rechecked``."""

    subscribers: tuple[Subscriber, ...]


Action = Send | Close | Recheck


@dataclass(frozen=True, slots=True)
class Replay:
    """
    What a resuming connection missed, as read from the database.

    ``notifications`` are the user's own (inbox rows); ``pushes`` are every
    durable push after the batch's lowest position, matched here against
    the connection's principal. ``unread`` counts the user's unread
    notifications in the same database snapshot as ``notifications``, so
    that every one of them the replay sends is in the count; ``read`` lists
    which of ``notifications`` are read.
    """

    last_id: int | None
    notifications: Sequence[tuple[int, str]]
    pushes: Sequence[tuple[int, AudienceSpec, str]] = ()
    unread: int = 0
    read: frozenset[int] = frozenset()
    overflow: bool = False


class Core:
    """
    The delivery state of one process: its ledger, its connections, and
    which of them are routed, held or closing.
    """

    def __init__(
        self,
        *,
        ledger: Ledger,
        revocations: Revocations,
        pending_limit: int,
        resume_limit: int,
        doubt_timeout: float,
    ) -> None:
        self.ledger = ledger
        self.revocations = revocations
        #: Frames held per connection before it is told to resync.
        self.pending_limit = pending_limit
        #: Most notifications a replay sends before it says resync instead.
        self.resume_limit = resume_limit
        #: Seconds a connection may stay in doubt (its re-checks failing)
        #: before it is closed with "try again later".
        self.doubt_timeout = doubt_timeout
        #: Every registered connection, routed or not, by user.
        self._by_user: Index[UserKey, Subscriber] = Index()
        self.hub: Hub[Subscriber] = Hub(self._by_user)
        #: Registered connections that are not routed (see the module docstring).
        self._special: set[Subscriber] = set()
        self._by_session: Index[str, Subscriber] = Index()
        #: Counts what put connections in doubt; a re-check settles the
        #: doubts that were raised before it started.
        self.generation = 0
        #: Messages the stream may have lost were lost before this time: a
        #: connection authenticated earlier is in doubt when it registers.
        self.lost_before = float("-inf")

    # Connections.

    def __len__(self) -> int:
        return len(self.hub) + len(self._special)

    def __contains__(self, subscriber: object) -> bool:
        return subscriber in self.hub or subscriber in self._special

    def subscribers(self) -> list[Subscriber]:
        """A snapshot of every connection, safe to iterate across awaits."""
        return [*self.hub, *self._special]

    def count_of_user(self, user_id: UserKey) -> int:
        return len(self._by_user.get(user_id))

    def register(
        self, connection: Any, principal: Principal, checked_at: float, now: float
    ) -> tuple[Subscriber, list[Action]]:
        """
        Take a connection that just authenticated; it replays before it is
        routed. Revocations that passed while it authenticated reached the
        core before it did: they are applied now.
        """
        sub = Subscriber(connection, principal, checked_at)
        sub.checked_generation = self.generation
        self._special.add(sub)
        self._by_user.add(principal.user_id, sub)
        self._by_session.add(principal.session_digest, sub)
        if self.revocations.is_ended(principal.session_digest, now):
            return sub, self.close(sub, CloseCode.SESSION_REVOKED, "session ended")
        if checked_at < self.lost_before or self.revocations.changed_since(
            principal, checked_at
        ):
            return sub, self._doubt([sub], now)
        return sub, []

    def replayed(self, sub: Subscriber, replay: Replay) -> list[Action]:
        """
        Release a connection's replay, then what was held meanwhile; while
        the connection is in doubt, keep the replay until a re-check
        settles it (its pushes are matched with the principal then).
        """
        if sub.closing or sub not in self:
            return []
        if sub.doubt:
            sub.replay = replay
            return []
        last_id = replay.last_id
        missed: list[Held] = [(id_, None, frame) for id_, frame in replay.notifications]
        if last_id is not None:
            missed += [
                (id_, audience, frame)
                for id_, audience, frame in replay.pushes
                if id_ > last_id and includes(audience, sub.principal)
            ]
            missed.sort(key=itemgetter(0))
        # What the replay read that this process hasn't relayed yet comes
        # live, routed with the rights of that moment: sent from the replay,
        # it could reach a user whose revocation the relay hasn't read yet.
        # Coming after the welcome, such a notification is counted as new
        # unread by the client: the welcome's count must leave it out.
        later = {id_ for id_, _a, _f in missed if self.ledger.is_new(id_ or 0)}
        missed = [item for item in missed if item[0] not in later]
        notifications = {id_ for id_, _frame in replay.notifications}
        unread = replay.unread - len((notifications & later) - replay.read)
        overflow = replay.overflow or len(missed) > self.resume_limit
        if overflow:
            missed = []
        replayed = {id_ for id_, _audience, _frame in missed}
        # Everything up to the cursor is in the replay or held below.
        welcome = encode_welcome(
            user_id=sub.principal.user_id,
            username=sub.principal.username,
            unread=unread,
            cursor=self.ledger.cursor,
            read=sorted(replay.read & replayed),
        )
        held = [
            item
            for item in sub.held or ()
            if item[0] is None or item[0] not in replayed
        ]
        sub.held = deque(
            [(None, None, encode_resync("too many missed notifications"))]
            if overflow
            else []
        )
        sub.held.extend(missed)
        sub.held.append((None, None, welcome))
        sub.held.extend(held)
        sub.replaying = False
        return self._release(sub)

    def close(
        self, sub: Subscriber, code: int, reason: str, cause: str | None = None
    ) -> list[Action]:
        """Stop sending to ``sub`` and have it closed (once)."""
        if sub.closing or sub not in self:
            return []
        self._unroute(sub)
        sub.closing = True
        sub.held = None
        return [Close(sub, code, reason, cause)]

    def discard(self, sub: Subscriber) -> None:
        """Forget a connection that is gone."""
        if sub not in self:
            return
        self._special.discard(sub)
        self.hub.discard(sub)
        self._by_user.discard(sub.principal.user_id, sub)
        self._by_session.discard(sub.principal.session_digest, sub)

    # The stream.

    def receive(self, messages: Sequence[RedisMessage], now: float) -> list[Action]:
        """Apply stream messages in order; runs of events go out together."""
        actions: list[Action] = []
        events: list[EventMessage] = []
        for message in messages:
            if isinstance(message, EventMessage):
                events.append(message)
                continue
            actions += self.deliver(events, now)
            events = []
            # A control message can move connections out of the hub's sets,
            # which runs of events so far still point at.
            actions = _detached(actions)
            if isinstance(message, UserFrame):
                actions += self._user_frame(message)
            elif isinstance(message, SessionEnded):
                self.revocations.session_ended(message.session, now)
                for sub in list(self._by_session.get(message.session)):
                    actions += self.close(
                        sub, CloseCode.SESSION_REVOKED, "session ended"
                    )
            elif isinstance(message, UserChanged):
                self.revocations.user_changed(message.user_id, now)
                actions += self._doubt(list(self._by_user.get(message.user_id)), now)
            elif isinstance(message, GroupChanged):
                self.revocations.group_changed(message.group_id, now)
                actions += self._doubt(
                    [
                        sub
                        for sub in self.subscribers()
                        if message.group_id in sub.principal.group_ids
                    ],
                    now,
                )
        actions += self.deliver(events, now)
        return actions

    def deliver(self, events: Sequence[EventMessage], now: float) -> list[Action]:
        """
        Send events to their audiences, once each, in order.

        Each frame carries the ledger's cursor as it stands once the event
        is accepted; a live-only push has no id, so the ledger never sees
        it. Consecutive events with the same recipients (the hub returns the
        same set for "everyone" or "staff") are sent as one run.
        """
        actions: list[Action] = []
        recipients: Collection[Subscriber] | None = None
        run: list[Item] = []
        for event in events:
            event_id = event.event_id
            if event_id is not None and not self.ledger.accept(event_id, now):
                continue
            frame = encode_frame(event, cursor=self.ledger.cursor)
            clients = self.hub.recipients(event.audience)
            if clients is not recipients and run:
                actions.append(Send(recipients or (), run))
                run = []
            recipients = clients
            run.append((event_id, frame))
            for sub in self._special:
                self._offer(sub, (event_id, event.audience, frame))
        if run:
            actions.append(Send(recipients or (), run))
        return actions

    def swept(
        self, events: Sequence[EventMessage], missing_since: float, now: float
    ) -> list[Action]:
        """
        Deliver events the stream lost, found in the database.

        Control messages travel on the same stream and may have been lost
        with them: every connection not authenticated since the events went
        missing is in doubt until a re-check (so a lost logout, or a lost
        group change, isn't acted on with old rights).
        """
        fresh = [
            event
            for event in events
            if event.event_id is not None and self.ledger.is_new(event.event_id)
        ]
        if not fresh:
            return []
        self.lost_before = max(self.lost_before, missing_since)
        # A doubt raised since they went missing is settled by a re-check
        # that starts later still: no need for another.
        unchecked = [
            sub
            for sub in self.subscribers()
            if sub.checked_at < missing_since
            and not (sub.doubt and sub.doubt_at >= missing_since)
        ]
        return self._doubt(unchecked, now) + self.deliver(fresh, now)

    def expire_gaps(self, now: float, timeout: float) -> list[int]:
        """Stop waiting for ledger gaps older than ``timeout``; return them."""
        return self.ledger.expire(now, timeout)

    # Authorization.

    def doubt_everyone(self, now: float) -> list[Action]:
        """Hold every connection until re-checked (the stream lost messages)."""
        self.lost_before = max(self.lost_before, now)
        return self._doubt(self.subscribers(), now)

    def rechecked(
        self,
        generation: int,
        started_at: float,
        results: Iterable[tuple[Subscriber, Principal | AuthenticationFailed]],
        now: float,
    ) -> list[Action]:
        """
        Apply a re-check that started at ``generation`` (``started_at``).

        A refused connection is closed; an authorized one gets its new
        principal, and its doubts raised before the re-check started are
        settled. A result older than one already applied changes nothing.
        """
        actions: list[Action] = []
        for sub, result in results:
            if sub.closing or sub not in self:
                continue  # it left or was closed while the check ran
            if generation < sub.checked_generation:
                continue  # a newer re-check was applied already
            if isinstance(result, AuthenticationFailed):
                actions += self.close(
                    sub, CloseCode.SESSION_REVOKED, "session revoked", str(result)
                )
                continue
            if sub in self.hub:
                self.hub.update(sub, result)
            sub.principal = result
            sub.checked_at = started_at
            sub.checked_generation = generation
            logger.debug("re-checked %r: still authorized", sub)
            if sub.doubt and sub.doubt <= generation:
                logger.debug("releasing %r: re-checked", sub)
                sub.doubt = 0
                if sub.held:
                    sub.held = deque(
                        item
                        for item in sub.held
                        if item[1] is None or includes(item[1], result)
                    )
                replay, sub.replay = sub.replay, None
                if replay is not None:
                    actions += self.replayed(sub, replay)
                else:
                    actions += self._release(sub)
        return actions

    def overdue(self, now: float) -> list[Action]:
        """Close connections whose doubt no re-check could settle in time."""
        actions: list[Action] = []
        for sub in list(self._special):
            if sub.doubt and now - sub.doubt_since > self.doubt_timeout:
                actions += self.close(
                    sub,
                    CloseCode.TRY_AGAIN_LATER,
                    "try again later",
                    f"not re-checked within {self.doubt_timeout}s",
                )
        return actions

    def in_doubt(self) -> list[Subscriber]:
        return [sub for sub in self._special if sub.doubt and not sub.closing]

    # Internals.

    def _doubt(self, subs: Sequence[Subscriber], now: float) -> list[Action]:
        subs = [sub for sub in subs if not sub.closing]
        if not subs:
            return []
        self.generation += 1
        for sub in subs:
            if not sub.doubt:
                sub.doubt_since = now
                metrics.HOLDS.inc()
                logger.debug("holding %r until it is re-checked", sub)
            sub.doubt, sub.doubt_at = self.generation, now
            self._unroute(sub)
        return [Recheck(tuple(subs))]

    def _user_frame(self, message: UserFrame) -> list[Action]:
        routed: list[Subscriber] = []
        for sub in self._by_user.get(message.user_id):
            if sub.routed:
                routed.append(sub)
            else:
                self._offer(sub, (None, None, message.frame))
        return [Send(routed, [(None, message.frame)])] if routed else []

    def _offer(self, sub: Subscriber, item: Held) -> None:
        """Hold a frame for a connection that isn't routed, if it may be its."""
        if sub.closing:
            return
        audience = item[1]
        if audience is None:
            self._hold(sub, item)
        elif sub.doubt:
            # Its rights are unknown: keep whatever could be its, decide later.
            if _might_include(audience, sub.principal):
                self._hold(sub, item)
        elif includes(audience, sub.principal):
            self._hold(sub, item)

    def _hold(self, sub: Subscriber, item: Held) -> None:
        if sub.overflowed:
            return
        if sub.held is None:
            sub.held = deque()
        elif len(sub.held) >= self.pending_limit:
            sub.overflowed = True
            sub.held = None
            return
        sub.held.append(item)

    def _release(self, sub: Subscriber) -> list[Action]:
        """Send what a connection held, once it is neither replaying nor in doubt."""
        if sub.replaying or sub.doubt or sub.closing:
            return []
        items: list[Item] = [
            (event_id, frame) for event_id, _audience, frame in sub.held or ()
        ]
        if sub.overflowed:
            items.append(
                (None, encode_resync("too many live notifications while resuming"))
            )
        sub.held = None
        sub.overflowed = False
        self._route(sub)
        return [Send((sub,), items)] if items else []

    def _route(self, sub: Subscriber) -> None:
        if sub.routed and sub in self._special:
            self._special.discard(sub)
            self.hub.add(sub)

    def _unroute(self, sub: Subscriber) -> None:
        if sub not in self._special:
            self.hub.discard(sub)
            self._special.add(sub)


def _detached(actions: list[Action]) -> list[Action]:
    """The actions, with the recipients of each run copied out of the hub."""
    return [
        Send(tuple(action.subscribers), action.items)
        if isinstance(action, Send) and isinstance(action.subscribers, set)
        else action
        for action in actions
    ]


def _might_include(audience: AudienceSpec, principal: Principal) -> bool:
    """Whether ``audience`` could cover this user whatever their rights."""
    return (
        audience.everyone
        or audience.staff
        or audience.superusers
        or bool(audience.groups)
        or bool(audience.permissions)
        or principal.user_id in audience.users
    )
