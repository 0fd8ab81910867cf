"""
An audience change and the events committed behind it, on one real
runwsserver: a user added to a group and the group notified in the same
transaction receives it live; a member removed (or a staff member demoted)
before an event to that group (or to staff) never receives it, whether the
change commits with the event or just before it. Signals announce the change
on the stream ahead of the event, so the server has what it needs to route
the event by the membership that committed with it.

Each case runs ``ROUNDS`` rounds on the same process, since the race doesn't
lose every time, and reports how many rounds went wrong. A round ends with a
notification to the user alone: frames arrive in order per user, so what the
user got before that marker is what the round delivered, without a sleep.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from websockets.sync.client import ClientConnection

from notifications import live, services
from notifications.models import Audience
from tests.clients import receive, subscriber
from tests.factories import make_group, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROUNDS = 50
#: Seconds a round's marker may take to arrive (the delivery bound is 2 s).
MARKER_TIMEOUT = 3.0
EVENT_TYPES = {
    "team.update": {"delivery": "durable"},
    "team.counter": {"delivery": "live"},
}
TRANSACTIONS = pytest.mark.parametrize(
    "one_transaction", [True, False], ids=["one-transaction", "two-transactions"]
)


@pytest.fixture(autouse=True)
def event_types():
    with override_settings(NOTIFICATIONS_EVENT_TYPES=EVENT_TYPES):
        yield


def received_before_marker(ws: ClientConnection, user: Any) -> list[dict[str, Any]]:
    """
    Notify ``user`` alone; return the notifications and pushes ``ws`` got
    before that marker (everything sent to the user before it).
    """
    marker = services.send_event(
        title="marker", audience=Audience.USERS, users=[user]
    ).pk
    received = []
    while (frame := receive(ws, timeout=MARKER_TIMEOUT)).get("id") != marker:
        if frame["type"] in {"notification", "push"}:
            received.append(frame)
    return received


def run_rounds(round_: Callable[[int], str | None]) -> None:
    """Run ``round_`` ROUNDS times; fail with what went wrong in each bad round."""
    wrong = {number: problem for number in range(ROUNDS) if (problem := round_(number))}
    examples = dict(list(wrong.items())[:3])
    assert not wrong, f"{len(wrong)}/{ROUNDS} rounds went wrong, e.g. {examples}"


def notify_group(group: Any, number: int) -> int:
    return services.send_event(
        title=f"round {number}", audience=Audience.GROUPS, groups=[group]
    ).pk


def test_a_user_added_and_notified_in_one_transaction_receives_it(ws_server):
    """Joining a group in the transaction that notifies it: the member's open page shows the notification live."""
    groups = [make_group() for _ in range(ROUNDS)]
    alice = make_user()
    with subscriber(ws_server, alice) as ws:

        def round_(number: int) -> str | None:
            with transaction.atomic():
                alice.groups.add(groups[number])
                event_id = notify_group(groups[number], number)
            got = [frame.get("id") for frame in received_before_marker(ws, alice)]
            return None if got == [event_id] else f"wanted [{event_id}], got {got}"

        run_rounds(round_)


@TRANSACTIONS
def test_a_removed_member_does_not_receive_the_groups_next_notification(
    ws_server, one_transaction
):
    """Removed from a group, then the group notified (in the same transaction or
    the next): the former member's page never shows it."""
    groups = [make_group() for _ in range(ROUNDS)]
    alice = make_user(groups=tuple(groups))
    with subscriber(ws_server, alice) as ws:

        def round_(number: int) -> str | None:
            with transaction.atomic() if one_transaction else nullcontext():
                alice.groups.remove(groups[number])
                notify_group(groups[number], number)
            got = [frame.get("id") for frame in received_before_marker(ws, alice)]
            return f"received {got}" if got else None

        run_rounds(round_)


@pytest.mark.parametrize("event_type", ["team.update", "team.counter"])
@pytest.mark.parametrize("joins", [True, False], ids=["added", "removed"])
def test_a_group_push_follows_the_membership_committed_with_it(
    ws_server, event_type, joins
):
    """A push to a group in the transaction that adds (removes) a member reaches
    (doesn't reach) that member's page, durable or live-only."""
    groups = [make_group() for _ in range(ROUNDS)]
    alice = make_user(groups=() if joins else tuple(groups))
    with subscriber(ws_server, alice) as ws:

        def round_(number: int) -> str | None:
            with transaction.atomic():
                if joins:
                    alice.groups.add(groups[number])
                else:
                    alice.groups.remove(groups[number])
                live.push(event_type, {"round": number}, to=live.groups(groups[number]))
            got = [
                frame["data"]
                for frame in received_before_marker(ws, alice)
                if frame["type"] == "push"
            ]
            wanted = [{"round": number}] if joins else []
            return None if got == wanted else f"wanted {wanted}, got {got}"

        run_rounds(round_)


@TRANSACTIONS
def test_a_demoted_staff_member_does_not_receive_staff_notifications(
    ws_server, one_transaction
):
    """is_staff=False saved, then a notification to staff (in the same
    transaction or the next): the demoted user's page never shows it."""

    def round_(number: int) -> str | None:
        bob = make_user(staff=True)
        with subscriber(ws_server, bob) as ws:
            with transaction.atomic() if one_transaction else nullcontext():
                bob.is_staff = False
                bob.save()
                services.send_event(title=f"round {number}", audience=Audience.STAFF)
            got = [frame.get("id") for frame in received_before_marker(ws, bob)]
        return f"received {got}" if got else None

    run_rounds(round_)
