"""
The delivery core, one interleaving at a time: the cases the model-based
test (tests/test_core_model.py) found or was built to find, kept as
examples that fail with a plain message.
"""

import json
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from notifications.wire import (
    AudienceSpec,
    CloseCode,
    EventMessage,
    SessionEnded,
    UserChanged,
)
from ws_server.auth import AuthenticationFailed, Principal
from ws_server.core import Close, Core, Recheck, Replay, Send, Subscriber
from ws_server.ledger import Ledger
from ws_server.revocations import Revocations

pytestmark = pytest.mark.once

TEAM = AudienceSpec(groups=frozenset({7}))
EVERYONE = AudienceSpec(everyone=True)


def principal(user_id: int = 1, *, groups: frozenset[int] = frozenset()) -> Principal:
    return Principal(
        user_id=user_id,
        username=f"u{user_id}",
        is_staff=False,
        group_ids=groups,
        session_key=f"key{user_id}",
        session_digest=f"digest{user_id}",
    )


def make_core() -> Core:
    return Core(
        ledger=Ledger(),
        revocations=Revocations(horizon=60),
        pending_limit=100,
        resume_limit=10,
        doubt_timeout=25,
    )


def connect(core: Core, who: Principal, now: float = 1.0) -> Subscriber:
    """A connection that authenticated at ``now`` and replayed nothing."""
    sub, actions = core.register(object(), who, now, now)
    assert actions == []
    core.replayed(sub, Replay(last_id=None, notifications=()))
    return sub


def event(event_id: int | None, audience: AudienceSpec, kind: str = "notification"):
    return EventMessage(event_id, audience, {"id": event_id}, kind)


def received(actions, sub: Subscriber) -> list:
    """The frames ``actions`` write to ``sub``, as (type, id)."""
    frames = []
    for action in actions:
        if isinstance(action, Send) and sub in action.subscribers:
            for _event_id, text in action.items:
                frame = json.loads(text)
                frames.append((frame["type"], frame.get("id")))
    return frames


def recheck(core: Core, actions, result, now: float) -> list:
    """Run the re-check ``actions`` ask for, reading ``result`` for each."""
    (request,) = [action for action in actions if isinstance(action, Recheck)]
    return core.rechecked(
        core.generation, now, [(sub, result) for sub in request.subscribers], now
    )


def test_a_member_removed_then_notified_in_one_read_gets_nothing():
    """The issue's leak: removal and notification arrive together; the core
    holds the notification until the re-check says she left, then drops it."""
    core = make_core()
    alice = connect(core, principal(groups=frozenset({7})))
    actions = core.receive([UserChanged(1), event(1, TEAM)], 2.0)
    assert received(actions, alice) == []
    settled = recheck(core, actions, principal(), 3.0)
    assert received(settled, alice) == []
    assert received(core.receive([event(2, EVERYONE)], 4.0), alice) == [
        ("notification", 2)
    ]


def test_a_user_added_then_notified_in_one_read_gets_it():
    """The issue's loss: she joins and the group is notified; the held
    notification goes out once the re-check says she is a member."""
    core = make_core()
    alice = connect(core, principal())
    actions = core.receive([UserChanged(1), event(1, TEAM)], 2.0)
    assert received(actions, alice) == []
    settled = recheck(core, actions, principal(groups=frozenset({7})), 3.0)
    assert received(settled, alice) == [("notification", 1)]


def test_an_older_recheck_never_overwrites_a_newer_one():
    """Two re-checks overlap and the older ends last: its stale rights are
    ignored, so the removed member stays out of the group."""
    core = make_core()
    alice = connect(core, principal(groups=frozenset({7})))
    old_generation = core.generation
    actions = core.receive([UserChanged(1)], 2.0)
    recheck(core, actions, principal(), 3.0)
    core.rechecked(old_generation, 1.5, [(alice, principal(groups={7}))], 4.0)
    assert received(core.receive([event(1, TEAM)], 5.0), alice) == []


def test_a_replay_offers_only_the_users_own_pushes():
    """Durable pushes are read for a whole batch of resumes; each connection
    replays only those its principal is in the audience of."""
    core = make_core()
    core.receive([event(1, EVERYONE), event(2, EVERYONE)], 1.0)
    sub, _ = core.register(object(), principal(), 1.0, 1.0)
    mine = (1, AudienceSpec(users=frozenset({1})), '{"type": "push", "id": 1}')
    bobs = (2, AudienceSpec(users=frozenset({2})), '{"type": "push", "id": 2}')
    actions = core.replayed(
        sub, Replay(last_id=0, notifications=(), pushes=[mine, bobs])
    )
    assert received(actions, sub) == [("push", 1), ("welcome", None)]


def test_a_handshake_from_before_an_outage_is_rechecked_when_it_registers():
    """Its lookup ran before Redis lost messages (a group change, say): it
    is held until re-checked, though the outage's re-check missed it."""
    core = make_core()
    core.doubt_everyone(5.0)
    sub, actions = core.register(object(), principal(groups={7}), 4.0, 6.0)
    assert [type(action) for action in actions] == [Recheck]
    core.replayed(sub, Replay(last_id=None, notifications=()))
    assert received(core.receive([event(1, TEAM)], 7.0), sub) == []
    assert received(recheck(core, actions, principal(), 8.0), sub) == [
        ("welcome", None)
    ]


def test_the_replay_leaves_what_the_relay_has_not_read_to_the_relay():
    """An event the replay read before the relay did comes live, once,
    routed with the rights of that moment (a deactivation read meanwhile
    would hold it)."""
    core = make_core()
    sub, _ = core.register(object(), principal(), 1.0, 1.0)
    replay = Replay(last_id=0, notifications=[(1, '{"type": "notification", "id": 1}')])
    assert received(core.replayed(sub, replay), sub) == [("welcome", None)]
    assert received(core.receive([event(1, EVERYONE)], 2.0), sub) == [
        ("notification", 1)
    ]
    assert received(core.receive([event(1, EVERYONE)], 3.0), sub) == []


def test_the_welcome_does_not_count_what_comes_after_it():
    """A replayed notification is in the welcome's unread count; one the
    relay will bring after the welcome is not, so that the client, which
    counts each later notification as new, shows the true count: two unread
    of three, one of them (id 2) still to come, is a welcome saying 1."""
    core = make_core()
    core.receive([event(1, EVERYONE)], 1.0)
    sub, _ = core.register(object(), principal(), 1.0, 1.0)
    replay = Replay(
        last_id=0,
        notifications=[
            (id_, json.dumps({"type": "notification", "id": id_})) for id_ in (1, 2, 3)
        ],
        unread=2,
        read=frozenset({3}),
    )
    core.ledger.accept(3, 1.0)  # 2 is a gap: committed, not relayed yet
    frames = [
        json.loads(text)
        for action in core.replayed(sub, replay)
        for _id, text in action.items
    ]
    assert [(f["type"], f.get("id")) for f in frames] == [
        ("notification", 1),
        ("notification", 3),
        ("welcome", None),
    ]
    assert frames[-1]["unread"] == 1
    assert frames[-1]["read"] == [3]


def test_a_refused_recheck_closes_and_drops_what_was_held():
    """A deactivated user's held frames are dropped and the socket closed (4003)."""
    core = make_core()
    alice = connect(core, principal())
    actions = core.receive([UserChanged(1), event(1, EVERYONE)], 2.0)
    settled = recheck(core, actions, AuthenticationFailed("inactive"), 3.0)
    assert received(settled, alice) == []
    assert [(type(a), a.code) for a in settled] == [(Close, CloseCode.SESSION_REVOKED)]


def test_a_logout_closes_even_a_connection_in_doubt():
    """A session's end is acted on at once, whatever else is pending."""
    core = make_core()
    alice = connect(core, principal())
    core.receive([UserChanged(1)], 2.0)
    actions = core.receive([SessionEnded("digest1")], 3.0)
    assert [(type(a), a.subscriber) for a in actions] == [(Close, alice)]


def test_a_doubt_no_recheck_settles_in_time_closes_with_try_again_later():
    """The session store is out for longer than the doubt bound: 1013."""
    core = make_core()
    alice = connect(core, principal())
    core.receive([UserChanged(1)], 2.0)
    assert core.overdue(20.0) == []
    (close,) = core.overdue(28.0)
    assert (close.subscriber, close.code) == (alice, CloseCode.TRY_AGAIN_LATER)


def test_rights_do_not_change_what_is_routed_once_settled():
    """A settled connection is routed by its new rights from the hub."""
    core = make_core()
    alice = connect(core, replace(principal(), group_ids=frozenset({8})))
    actions = core.receive([UserChanged(1)], 2.0)
    recheck(core, actions, principal(groups=frozenset({7})), 3.0)
    assert received(core.receive([event(1, TEAM)], 4.0), alice) == [("notification", 1)]


def test_each_hold_is_counted_once_however_often_its_doubt_is_raised():
    """notifications_holds_total counts connections put on hold, not messages."""
    core = make_core()
    connect(core, principal())
    before = REGISTRY.get_sample_value("notifications_holds_total") or 0.0
    core.receive([UserChanged(1), UserChanged(1)], 2.0)
    assert REGISTRY.get_sample_value("notifications_holds_total") == before + 1
