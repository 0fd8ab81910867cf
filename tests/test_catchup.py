"""load_catchups: what a batch of resuming connections missed, and their counts."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from notifications import live, services
from notifications.models import Event
from tests.factories import make_user
from ws_server import handler
from ws_server.handler import load_catchups

pytestmark = pytest.mark.django_db


def replayed(catchup) -> list[int]:
    return [event_id for event_id, _frame in catchup.notifications]


def test_a_batch_with_two_tabs_of_one_user_at_different_positions():
    """Each request gets its own replay; the same user twice is not confused."""
    alice, bob, carol = make_user(), make_user(), make_user()
    ids = [services.send_event(title=f"e{n}").pk for n in range(5)]
    services.mark_read(user_id=alice.pk, event_id=ids[4])
    requests = [
        (alice.pk, ids[0]),
        (alice.pk, ids[3]),
        (bob.pk, None),
        (carol.pk, ids[2]),
    ]
    catchups = load_catchups(requests, limit=10)
    assert replayed(catchups[alice.pk, ids[0]]) == ids[1:]
    assert replayed(catchups[alice.pk, ids[3]]) == ids[4:]
    assert replayed(catchups[bob.pk, None]) == []
    assert replayed(catchups[carol.pk, ids[2]]) == ids[3:]
    assert catchups[alice.pk, ids[0]].unread == 4
    assert catchups[bob.pk, None].unread == 5


def test_past_the_limit_the_answer_is_resync_not_a_replay():
    alice = make_user()
    ids = [services.send_event(title=f"e{n}").pk for n in range(4)]
    [catchup] = load_catchups([(alice.pk, ids[0])], limit=2).values()
    assert catchup.overflow
    assert catchup.notifications == []


def test_a_batch_costs_five_queries(django_assert_num_queries):
    """Unread counts, what was missed, the events, which were read, the pushes:
    five queries for ten users."""
    users = [make_user() for _ in range(10)]
    first = services.send_event(title="seen").pk
    services.send_event(title="missed")
    with django_assert_num_queries(5):
        catchups = load_catchups([(user.pk, first) for user in users], limit=10)
    assert all(len(catchup.notifications) == 1 for catchup in catchups.values())


@override_settings(NOTIFICATIONS_EVENT_TYPES={"probe": {}})
def test_durable_pushes_within_retention_are_offered_to_the_batch():
    """The pushes after the batch's lowest position come once for the batch;
    one older than the retention is not replayed."""
    alice, bob = make_user(), make_user()
    first = services.send_event(title="seen").pk
    stale = live.push("probe", {"n": 0}, to=live.users(alice))
    Event.objects.filter(pk=stale).update(created_at=timezone.now() - timedelta(days=2))
    kept = [live.push("probe", {"n": n}, to=live.users(bob)) for n in (1, 2)]
    catchups = load_catchups([(alice.pk, first), (bob.pk, kept[0])], limit=10)
    offered = catchups[alice.pk, first].pushes
    assert offered is catchups[bob.pk, kept[0]].pushes
    assert [event_id for event_id, _audience, _frame in offered] == kept


@override_settings(NOTIFICATIONS_EVENT_TYPES={"probe": {}})
def test_more_pushes_than_the_scan_limit_means_resync(monkeypatch):
    """Past PUSH_SCAN_LIMIT pushes (to anyone) the resume resyncs, not replays."""
    monkeypatch.setattr(handler, "PUSH_SCAN_LIMIT", 2)
    alice = make_user()
    first = services.send_event(title="seen").pk
    for n in range(3):
        live.push("probe", {"n": n}, to=live.everyone())
    [catchup] = load_catchups([(alice.pk, first)], limit=10).values()
    assert catchup.overflow


@override_settings(NOTIFICATIONS_EVENT_TYPES={"probe": {}})
def test_one_far_behind_resumer_resyncs_alone(monkeypatch):
    """Past PUSH_SCAN_LIMIT pushes after one request's position, that request
    resyncs; one in the same batch with fewer pushes after it replays them."""
    monkeypatch.setattr(handler, "PUSH_SCAN_LIMIT", 2)
    far, near = make_user(), make_user()
    first = services.send_event(title="seen").pk
    pushes = [live.push("probe", {"n": n}, to=live.everyone()) for n in range(3)]
    catchups = load_catchups([(far.pk, first), (near.pk, pushes[0])], limit=10)
    assert catchups[far.pk, first].overflow
    recent = catchups[near.pk, pushes[0]]
    assert not recent.overflow
    offered = [event_id for event_id, _audience, _frame in recent.pushes]
    assert [event_id for event_id in offered if event_id > pushes[0]] == pushes[1:]


@pytest.mark.django_db(transaction=True)
def test_the_unread_count_and_the_replay_are_read_in_one_snapshot():
    """A notification that commits while a batch is being read is in both the
    unread count and the replay, or in neither: never replayed but missing
    from the count, which would leave the badge one low."""
    alice = make_user()
    first = services.send_event(title="seen").pk
    committed = []

    def send_from_another_connection():
        try:
            committed.append(services.send_event(title="new").pk)
        finally:
            connection.close()  # this thread's own

    def commit_after_the_count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "COUNT(" in sql.upper() and not committed:
            thread = threading.Thread(target=send_from_another_connection)
            thread.start()
            thread.join(timeout=10)
        return result

    with connection.execute_wrapper(commit_after_the_count):
        [catchup] = load_catchups([(alice.pk, first)], limit=10).values()
    assert committed, "the other connection could not commit"
    assert catchup.unread == 1 + len(catchup.notifications)
