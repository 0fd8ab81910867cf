"""
The delivery core against a model of everything around it.

Hypothesis drives ``ws_server.core.Core`` through random interleavings of
what the asyncio layer feeds it: transactions that change memberships and
send notifications and pushes, committing out of id order or rolling back;
a stream that delivers late, loses a transaction's messages, duplicates an
event or loses everything in an outage; sweeps; re-checks that overlap,
fail or finish out of order; handshakes whose lookup races revocations;
replays that load before or after events arrive; closes and resumes from
the client's cursor. After every step it checks what a connection received:

* no event id twice on one connection;
* no frame to a user who was in the event's audience neither when the
  event was sent, nor when it committed, nor when the frame was sent;
* nothing to a connection after the core read its session's end, or its
  user's deactivation;

and, whenever everything in flight has settled, that every open connection
(with the connections it resumed from) received every event its user was
entitled to and whose rights didn't change since, with no gap.

``NOTIFICATIONS_MODEL_EXAMPLES`` runs longer locally (docs/protocol.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from notifications.wire import (
    AudienceSpec,
    EventMessage,
    GroupChanged,
    RedisMessage,
    SessionEnded,
    UserChanged,
    UserFrame,
)
from ws_server.auth import AuthenticationFailed, Principal
from ws_server.core import Close, Core, Recheck, Replay, Send, Subscriber
from ws_server.ledger import Ledger
from ws_server.revocations import Revocations

pytestmark = pytest.mark.once

USERS = (1, 2, 3)
GROUPS = (7, 8)
AUDIENCES = (
    AudienceSpec(everyone=True),
    AudienceSpec(staff=True),
    AudienceSpec(groups=frozenset({7})),
    AudienceSpec(groups=frozenset({8})),
    AudienceSpec(users=frozenset({1})),
    AudienceSpec(users=frozenset({2, 3})),
    # The admin's activity: the staff among an audience.
    AudienceSpec(everyone=True, staff_only=True),
    AudienceSpec(groups=frozenset({7}), users=frozenset({3}), staff_only=True),
)
#: Model time units a gap, a doubt, a replay may last.
GAP_TIMEOUT = 40
DOUBT_TIMEOUT = 25
PENDING_LIMIT = 12
RESUME_LIMIT = 10


@dataclass
class Rights:
    groups: set[int] = field(default_factory=set)
    staff: bool = False
    active: bool = True

    def copy(self) -> Rights:
        return Rights(set(self.groups), self.staff, self.active)


def covers(audience: AudienceSpec, user: int, rights: Rights) -> bool:
    """The model's own reading of an audience (not the hub's)."""
    return (
        rights.active
        and (rights.staff or not audience.staff_only)
        and (
            audience.everyone
            or (audience.staff and rights.staff)
            or bool(audience.groups & rights.groups)
            or user in audience.users
        )
    )


@dataclass
class Sent:
    """An event as the model's database knows it."""

    event_id: int | None
    tag: int  # identifies a live-only push, which has no id
    audience: AudienceSpec
    kind: str  # "notification" or "push" (durable if it has an id)
    #: Users in the audience when it was sent (a notification's inbox rows).
    at_call: frozenset[int]
    at_commit: frozenset[int] = frozenset()
    committed_at: int | None = None
    #: When the core read its stream message (never, if it was lost).
    read_at: int | None = None
    #: Its place in the stream (or where it would have been, if lost).
    position: int = 0


@dataclass(frozen=True)
class Entry:
    """A stream entry; ``revokes``: it announces a logout or a deactivation."""

    message: RedisMessage
    sent: Sent | None = None
    position: int = 0
    revokes: bool = False


@dataclass
class Txn:
    ops: list[tuple[str, Any]] = field(default_factory=list)
    #: The rights it changed, as they stand inside it.
    rights: dict[int, Rights] = field(default_factory=dict)
    events: list[Sent] = field(default_factory=list)
    lost: bool = False


@dataclass
class Conn:
    """A model client connection."""

    user: int
    session: str
    last_id: int
    #: The connection this one resumed from, for the no-gap check.
    previous: Conn | None = None
    checked_at: int = 0
    principal: Principal | None = None
    sub: Subscriber | None = None
    replay: Replay | None = None
    ids: list[int] = field(default_factory=list)
    tags: set[int] = field(default_factory=set)
    cursor: int = 0
    #: The stream position of this connection's logout, or of its user's
    #: deactivation, once the core has read it.
    revoked_at: float = float("inf")
    resynced: bool = False
    welcomed: bool = False
    closed: bool = False
    registered_at: int = 0


class CoreModel(RuleBasedStateMachine):
    @initialize()
    def setup(self) -> None:
        self.now = 1
        self.rights = {user: Rights() for user in USERS}
        # When a user's rights last changed (committed).
        self.changed_at = dict.fromkeys(USERS, 0)
        self.sessions = {f"s{user}": user for user in USERS}
        self.ended: set[str] = set()
        self.ids = count(1)
        self.tags = count(1)
        self.txns: list[Txn] = []
        self.sent: dict[int, Sent] = {}  # by tag
        self.stream: list[Entry] = []
        self.positions = count(1)
        #: Per user, the times from a change whose announcement was lost
        #: until a re-check applied it.
        self.unannounced: dict[int, list[list[float]]] = {u: [] for u in USERS}
        #: Per user, (time, rights from then on) for every change.
        self.history: dict[int, list[tuple[int, Rights]]] = {u: [] for u in USERS}
        #: Per user, (stream position, active after it) for every change.
        self.activity: dict[int, list[tuple[int, bool]]] = {u: [] for u in USERS}
        self.relay_up = True
        self.conns: list[Conn] = []
        self.rechecks_requested: set[Subscriber] = set()
        self.rechecks: list[tuple[int, int, list[tuple[Subscriber, Any]]]] = []
        # Ledger gaps the core gave up waiting for.
        self.given_up: set[int] = set()
        self.core = Core(
            ledger=Ledger(),
            revocations=Revocations(horizon=1_000),
            pending_limit=PENDING_LIMIT,
            resume_limit=RESUME_LIMIT,
            doubt_timeout=DOUBT_TIMEOUT,
        )

        for user in USERS:
            self._connect(user, previous=None)

    def tick(self) -> int:
        self.now += 1
        return self.now

    # The database: transactions.

    @rule(data=st.data())
    def begin(self, data: st.DataObject) -> None:
        self.tick()
        if len(self.txns) < 3:
            self.txns.append(Txn())

    @precondition(lambda self: self.txns)
    @rule(data=st.data(), user=st.sampled_from(USERS), group=st.sampled_from(GROUPS))
    def change_membership(self, data: st.DataObject, user: int, group: int) -> None:
        txn = data.draw(st.sampled_from(self.txns))
        change = data.draw(st.sampled_from(["join", "leave", "staff", "deactivate"]))
        self._change(txn, user, group, change)

    def _change(self, txn: Txn, user: int, group: int, change: str) -> None:
        rights = txn.rights.setdefault(user, self.rights[user].copy())
        if change == "join":
            rights.groups.add(group)
        elif change == "leave":
            rights.groups.discard(group)
        elif change == "staff":
            rights.staff = not rights.staff
        else:
            rights.active = not rights.active
        txn.ops.append(("user", user))
        self.tick()

    @precondition(lambda self: self.txns)
    @rule(data=st.data(), group=st.sampled_from(GROUPS))
    def change_group(self, data: st.DataObject, group: int) -> None:
        """A group's permissions change: no audience here depends on them."""
        data.draw(st.sampled_from(self.txns)).ops.append(("group", group))

    @precondition(lambda self: self.txns)
    @rule(
        data=st.data(),
        audience=st.sampled_from(AUDIENCES),
        kind=st.sampled_from(["notification", "durable push", "live push"]),
    )
    def send(self, data: st.DataObject, audience: AudienceSpec, kind: str) -> None:
        self._send(data.draw(st.sampled_from(self.txns)), audience, kind)

    def _send(self, txn: Txn, audience: AudienceSpec, kind: str) -> None:
        sent = Sent(
            event_id=next(self.ids) if kind != "live push" else None,
            tag=next(self.tags),
            audience=audience,
            kind="notification" if kind == "notification" else "push",
            at_call=frozenset(
                user for user in USERS if covers(audience, user, self._view(txn, user))
            ),
        )
        txn.events.append(sent)
        txn.ops.append(("event", sent))
        self.tick()

    @precondition(lambda self: self.txns)
    @rule(data=st.data(), lost=st.booleans(), rollback=st.booleans())
    def commit(self, data: st.DataObject, lost: bool, rollback: bool) -> None:
        txn = data.draw(st.sampled_from(self.txns))
        self._commit(
            txn,
            lost=lost and data.draw(st.integers(0, 3)) == 0,
            rollback=rollback and data.draw(st.integers(0, 4)) == 0,
        )

    def _commit(self, txn: Txn, *, lost: bool, rollback: bool) -> None:
        self.txns.remove(txn)
        now = self.tick()
        if rollback:
            return  # its ids stay holes for good
        for user, rights in txn.rights.items():
            self.rights[user] = rights
            self.changed_at[user] = now
            self.history[user].append((now, rights.copy()))
        positions = [next(self.positions) for _op in txn.ops]
        for (kind, what), position in zip(txn.ops, positions, strict=True):
            if kind == "event":
                what.committed_at, what.position = now, position
                what.at_commit = frozenset(
                    user
                    for user in USERS
                    if covers(what.audience, user, self.rights[user])
                )
                self.sent[what.tag] = what
            elif kind == "user":
                self.activity[what].append((position, self.rights[what].active))
        # A publish that failed on Django's side loses the whole transaction's
        # messages; the rows are in the database.
        if lost:
            # Only the periodic re-check learns of these rights (a lost
            # logout is held to the same bound): until one has been
            # applied, events follow the user's old rights.
            for user in txn.rights:
                windows = self.unannounced[user]
                if not windows or windows[-1][1] != float("inf"):
                    windows.append([now, float("inf")])
            return
        for (kind, what), position in zip(txn.ops, positions, strict=True):
            if kind == "user":
                revokes = not self.rights[what].active
                self.stream.append(Entry(UserChanged(what), None, position, revokes))
            elif kind == "group":
                self.stream.append(Entry(GroupChanged(what), None, position))
            else:
                self.stream.append(Entry(self._message(what), what, what.position))

    @rule(
        ops=st.lists(
            st.tuples(
                st.sampled_from(["join", "leave", "staff", "deactivate", "send"]),
                st.sampled_from(USERS),
                st.sampled_from(GROUPS),
                st.sampled_from(AUDIENCES),
                st.sampled_from(["notification", "durable push", "live push"]),
            ),
            min_size=1,
            max_size=3,
        ),
        lost=st.booleans(),
    )
    def transaction(
        self, ops: list[tuple[str, int, int, AudienceSpec, str]], lost: bool
    ) -> None:
        """A whole transaction in one step: its changes and sends, then commit."""
        txn = Txn()
        self.txns.append(txn)
        for change, user, group, audience, kind in ops:
            if change == "send":
                self._send(txn, audience, kind)
            else:
                self._change(txn, user, group, change)
        self._commit(txn, lost=lost and self.now % 5 == 0, rollback=False)

    @rule(session=st.sampled_from(sorted(f"s{user}" for user in USERS)))
    def log_out(self, session: str) -> None:
        """Logging out ends the session; the browser logs in again with a new one."""
        if session in self.ended:
            return
        self.ended.add(session)
        user = self.sessions[session]
        fresh = f"{session}x"
        self.sessions[fresh] = user
        self.stream.append(
            Entry(SessionEnded(_digest(session)), None, next(self.positions), True)
        )
        self.tick()

    @rule(user=st.sampled_from(USERS))
    def read_state(self, user: int) -> None:
        """A read-state frame for every tab of a user."""
        self.stream.append(
            Entry(UserFrame(user, '{"type": "read"}'), None, next(self.positions))
        )

    def _view(self, txn: Txn, user: int) -> Rights:
        return txn.rights.get(user) or self.rights[user]

    def _message(self, sent: Sent) -> EventMessage:
        return EventMessage(
            sent.event_id,
            sent.audience,
            {"id": sent.event_id, "tag": sent.tag},
            sent.kind,
        )

    # The stream and the relay.

    @precondition(lambda self: self.relay_up and self.stream)
    @rule(count=st.integers(1, 6))
    def relay_reads(self, count: int) -> None:
        entries, self.stream = self.stream[:count], self.stream[count:]
        now = self.tick()
        for entry in entries:
            if entry.sent is not None and entry.sent.read_at is None:
                entry.sent.read_at = now
            self._note_revocation_read(entry)
        self._apply(self.core.receive([entry.message for entry in entries], now))

    @precondition(lambda self: self.stream)
    @rule(data=st.data())
    def stream_repeats_an_event(self, data: st.DataObject) -> None:
        events = [entry for entry in self.stream if entry.sent is not None]
        if events:
            self.stream.append(data.draw(st.sampled_from(events)))

    @precondition(lambda self: self.relay_up)
    @rule()
    def redis_dies(self) -> None:
        """Redis restarts empty: what it held is lost; the relay reconnects later."""
        self.stream.clear()
        self.relay_up = False
        self.tick()

    @precondition(lambda self: not self.relay_up)
    @rule()
    def relay_reconnects(self) -> None:
        now = self.tick()
        self.relay_up = True
        self._apply(self.core.doubt_everyone(now))
        self._sweep(missing_since=now)

    @rule()
    def sweep(self) -> None:
        """The sweep finds committed events the ledger hasn't seen."""
        self._sweep(missing_since=self.tick())

    def _sweep(self, missing_since: int) -> None:
        now = self.now
        self.given_up.update(self.core.expire_gaps(now, GAP_TIMEOUT))
        found = sorted(
            (
                sent
                for sent in self.sent.values()
                if sent.event_id is not None and self.core.ledger.is_new(sent.event_id)
            ),
            key=lambda sent: sent.event_id or 0,
        )
        events = [self._message(sent) for sent in found]
        self._apply(self.core.swept(events, missing_since, now))

    def _note_revocation_read(self, entry: Entry) -> None:
        """Nothing published after a logout or deactivation the core has read."""
        message = entry.message
        for conn in self._open():
            if isinstance(message, SessionEnded):
                if _digest(conn.session) == message.session:
                    conn.revoked_at = min(conn.revoked_at, entry.position)
            elif isinstance(message, UserChanged) and message.user_id == conn.user:
                # The newest change read decides: a reactivation lifts it.
                conn.revoked_at = entry.position if entry.revokes else float("inf")

    # Re-checks.

    @precondition(lambda self: len(self.rechecks) < 4)
    @rule(data=st.data(), periodic=st.booleans())
    def recheck_starts(self, data: st.DataObject, periodic: bool) -> None:
        subs = list(self.rechecks_requested)
        self.rechecks_requested.clear()
        if periodic:
            subs += [conn.sub for conn in self._open() if conn.sub is not None]
        subs = [sub for sub in dict.fromkeys(subs) if sub in self.core]
        if not subs:
            return
        now = self.tick()
        results = [(sub, self._authenticate(sub.principal.session_key)) for sub in subs]
        self.rechecks.append((self.core.generation, now, results))

    @precondition(lambda self: self.rechecks)
    @rule(data=st.data(), fails=st.booleans())
    def recheck_ends(self, data: st.DataObject, fails: bool) -> None:
        index = data.draw(st.integers(0, len(self.rechecks) - 1))
        generation, started, results = self.rechecks.pop(index)
        self.tick()
        if fails and data.draw(st.integers(0, 3)) == 0:
            # The database is out: the connections are asked for again.
            self.rechecks_requested.update(sub for sub, _result in results)
            return
        self._recheck_ends(generation, started, results)

    def _recheck_ends(self, generation: int, started: int, results: Any) -> None:
        now = self.tick()
        self._apply(self.core.rechecked(generation, started, results, now))
        for sub, _result in results:
            for window in self.unannounced[sub.principal.user_id]:
                if window[0] < started and window[1] == float("inf"):
                    window[1] = now

    @rule()
    def overdue(self) -> None:
        self._apply(self.core.overdue(self.tick()))

    def _authenticate(self, session: str) -> Principal | AuthenticationFailed:
        user = self.sessions[session]
        rights = self.rights[user]
        if session in self.ended or not rights.active:
            return AuthenticationFailed("refused")
        return Principal(
            user_id=user,
            username=f"u{user}",
            is_staff=rights.staff,
            group_ids=frozenset(rights.groups),
            session_key=session,
            session_digest=_digest(session),
        )

    # Connections.

    @precondition(lambda self: len(self._open()) < 6)
    @rule(data=st.data(), user=st.sampled_from(USERS))
    def handshake_starts(self, data: st.DataObject, user: int) -> None:
        """A client authenticates; it resumes from where a closed tab stopped."""
        self._start(user, data.draw(st.sampled_from([None, *self._resumable(user)])))

    @precondition(lambda self: len(self._open()) < 6)
    @rule(data=st.data(), user=st.sampled_from(USERS))
    def connect(self, data: st.DataObject, user: int) -> None:
        """A client authenticates and replays in one go."""
        self._connect(user, data.draw(st.sampled_from([None, *self._resumable(user)])))

    @precondition(lambda self: any(c.sub is None and not c.closed for c in self.conns))
    @rule(data=st.data())
    def handshake_ends(self, data: st.DataObject) -> None:
        self._register(
            data.draw(st.sampled_from(self._waiting(lambda c: c.sub is None)))
        )

    @precondition(lambda self: any(c.sub and c.replay is None for c in self._open()))
    @rule(data=st.data())
    def replay_loads(self, data: st.DataObject) -> None:
        waiting = self._waiting(lambda c: c.sub is not None and c.replay is None)
        self._load_replay(data.draw(st.sampled_from(waiting)))

    @precondition(lambda self: any(c.replay and not c.welcomed for c in self._open()))
    @rule(data=st.data())
    def replay_ends(self, data: st.DataObject) -> None:
        waiting = self._waiting(lambda c: c.replay is not None and not c.welcomed)
        self._end_replay(data.draw(st.sampled_from(waiting)))

    def _waiting(self, at_step: Any) -> list[Conn]:
        return [conn for conn in self._open() if at_step(conn)]

    def _resumable(self, user: int) -> list[Conn]:
        return [
            conn
            for conn in self.conns
            if conn.closed
            and conn.user == user
            and not conn.resynced
            and not any(c.previous is conn for c in self.conns)
        ]

    def _connect(self, user: int, previous: Conn | None) -> None:
        conn = self._start(user, previous)
        if conn is not None:
            self._register(conn)
            self._load_replay(conn)
            self._end_replay(conn)

    def _start(self, user: int, previous: Conn | None) -> Conn | None:
        session = max(s for s, u in self.sessions.items() if u == user)
        now = self.tick()
        principal = self._authenticate(session)
        if isinstance(principal, AuthenticationFailed):
            return None
        cursor = previous.cursor if previous else 0
        conn = Conn(
            user,
            session,
            last_id=cursor,
            previous=previous,
            checked_at=now,
            principal=principal,
            cursor=cursor,
        )
        self.conns.append(conn)
        return conn

    def _register(self, conn: Conn) -> None:
        if conn.closed:
            return
        assert conn.principal is not None
        now = self.tick()
        conn.sub, actions = self.core.register(
            conn, conn.principal, conn.checked_at, now
        )
        conn.registered_at = now
        self._apply(actions)

    def _load_replay(self, conn: Conn) -> None:
        """Read what the client missed, as ``handler.load_catchups`` does."""
        if conn.closed:
            return
        self.tick()
        committed = sorted(
            (
                sent
                for sent in self.sent.values()
                if sent.event_id is not None and sent.event_id > conn.last_id
            ),
            key=lambda sent: sent.event_id or 0,
        )
        notifications = [
            (sent.event_id, self._frame(sent))
            for sent in committed
            if sent.kind == "notification" and conn.user in sent.at_call
        ]
        pushes = [
            (sent.event_id, sent.audience, self._frame(sent))
            for sent in committed
            if sent.kind == "push"
        ]
        conn.replay = Replay(
            last_id=conn.last_id,
            notifications=notifications[: RESUME_LIMIT + 1],
            pushes=pushes,
            overflow=len(notifications) > RESUME_LIMIT,
        )

    def _end_replay(self, conn: Conn) -> None:
        if conn.closed:
            return
        assert conn.sub is not None
        assert conn.replay is not None
        self.tick()
        conn.welcomed = True
        self._apply(self.core.replayed(conn.sub, conn.replay))

    @precondition(lambda self: any(not c.closed for c in self.conns))
    @rule(data=st.data())
    def client_leaves(self, data: st.DataObject) -> None:
        conn = data.draw(st.sampled_from([c for c in self.conns if not c.closed]))
        self._close(conn)

    def _close(self, conn: Conn) -> None:
        conn.closed = True
        if conn.sub is not None:
            self.core.discard(conn.sub)
        self.tick()

    def _open(self) -> list[Conn]:
        return [conn for conn in self.conns if not conn.closed]

    def _frame(self, sent: Sent) -> str:
        return json.dumps({"id": sent.event_id, "tag": sent.tag, "cursor": None})

    # Carrying out the core's actions, as ws_server.delivery does.

    def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Send):
                for sub in action.subscribers:
                    if not sub.closing:
                        self._receive(sub.connection, action.items)
            elif isinstance(action, Close):
                self._close(action.subscriber.connection)
            else:
                assert isinstance(action, Recheck)
                self.rechecks_requested.update(action.subscribers)

    def _receive(self, conn: Conn, items: Any) -> None:
        assert not conn.closed, "a frame for a closed connection"
        for event_id, text in items:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "resync":
                conn.resynced = True
                continue
            if kind == "welcome":
                conn.cursor = frame["cursor"]
                continue
            if "tag" not in frame:
                continue  # a read-state frame
            sent = self.sent[frame["tag"]]
            assert sent.position < conn.revoked_at or self._active_at(
                conn, sent.position
            ), f"{sent} reached user {conn.user} after the core read its revocation"
            # A change whose message was lost holds until the periodic
            # re-check: meanwhile the server routes by the rights it knew.
            unannounced = any(
                end == float("inf") for _, end in self.unannounced[conn.user]
            )
            assert (
                unannounced
                or conn.user in sent.at_call
                or any(
                    covers(sent.audience, conn.user, rights)
                    for rights in self._rights_since(conn.user, sent)
                )
            ), f"event {sent} reached user {conn.user}, never in its audience"
            if event_id is not None:
                assert event_id not in conn.ids, f"event {event_id} sent twice"
                conn.ids.append(event_id)
            else:
                conn.tags.add(sent.tag)
            if frame.get("cursor") is not None:
                conn.cursor = frame["cursor"]

    # Invariants.

    @invariant()
    def settled_connections_have_no_gap(self) -> None:
        """Once nothing is in flight, every open connection has all it is owed."""
        if not self._settled():
            return
        for conn in self._open():
            if conn.resynced or not conn.welcomed:
                continue
            received = set(conn.ids)
            first = conn
            while first.previous is not None:
                first = first.previous
                received |= set(first.ids)
            for sent in self.sent.values():
                if not self._owed(conn, sent):
                    continue
                if sent.event_id is None:
                    if sent.read_at is not None and sent.read_at > conn.registered_at:
                        assert sent.tag in conn.tags, (
                            f"user {conn.user} never got live push {sent.tag}"
                        )
                elif (
                    sent.event_id > first.last_id and sent.event_id not in self.given_up
                ):
                    assert sent.event_id in received, (
                        f"user {conn.user} never got event {sent.event_id} "
                        f"(resumed from {first.last_id})"
                    )

    def _active_at(self, conn: Conn, position: int) -> bool:
        """Whether the connection's user was active at ``position`` or since."""
        if conn.session in self.ended:
            return False
        state = True
        for changed, active in self.activity[conn.user]:
            if changed < position:
                state = active
            elif active:
                return True
        return state

    def _rights_since(self, user: int, sent: Sent) -> list[Rights]:
        """The user's rights from the event's commit until now."""
        assert sent.committed_at is not None
        rights = [self.rights[user]]
        for changed, state in reversed(self.history[user]):
            rights.append(state)
            if changed <= sent.committed_at:
                break
        else:
            rights.append(Rights())  # as every user starts
        return rights

    def _owed(self, conn: Conn, sent: Sent) -> bool:
        """
        In the audience when sent and when committed, rights unchanged since,
        and none of them changed unannounced.
        """
        assert sent.committed_at is not None
        if any(
            start <= sent.committed_at <= end
            for start, end in self.unannounced[conn.user]
        ):
            return False
        return (
            conn.user in sent.at_call
            and conn.user in sent.at_commit
            and self.changed_at[conn.user] <= sent.committed_at
        )

    def _settled(self) -> bool:
        return (
            self.relay_up
            and not self.stream
            and not self.txns
            and not self.rechecks
            and not self.rechecks_requested
            and not self.core.in_doubt()
            and all(
                self.core.ledger.is_new(sent.event_id) is False
                for sent in self.sent.values()
                if sent.event_id is not None
            )
            and all(c.welcomed for c in self._open())
        )

    @rule()
    def settle(self) -> None:
        """Let everything in flight land: the stream, the sweep, the re-checks."""
        for _round in range(5):
            if self.txns:
                break
            for conn in self._open():
                if conn.sub is None:
                    self._register(conn)
                if conn.replay is None:
                    self._load_replay(conn)
                if not conn.welcomed:
                    self._end_replay(conn)
            if not self.relay_up:
                self.relay_reconnects()
            while self.stream:
                self.relay_reads(6)
            self.sweep()
            # The periodic re-check too, as the re-check interval passes.
            self.recheck_starts(None, periodic=True)  # type: ignore[arg-type]
            while self.rechecks or self.rechecks_requested:
                if self.rechecks_requested:
                    self.recheck_starts(None, periodic=False)  # type: ignore[arg-type]
                while self.rechecks:
                    self._recheck_ends(*self.rechecks.pop(0))


def _digest(session: str) -> str:
    return f"digest-{session}"


CoreModel.TestCase.settings = settings(
    max_examples=int(os.environ.get("NOTIFICATIONS_MODEL_EXAMPLES", 1000)),
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_core_model = CoreModel.TestCase
