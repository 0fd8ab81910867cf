"""load_catchups: what a batch of resuming connections missed, and their counts."""

import pytest

from notifications import services
from tests.factories import make_user
from ws_server.handler import load_catchups

pytestmark = pytest.mark.django_db


def replayed(catchup) -> list[int]:
    return [event_id for event_id, _frame in catchup.frames]


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
    assert catchup.frames == []


def test_a_batch_costs_three_queries(django_assert_num_queries):
    """Unread counts, what was missed, the events: three queries for ten users."""
    users = [make_user() for _ in range(10)]
    first = services.send_event(title="seen").pk
    services.send_event(title="missed")
    with django_assert_num_queries(3):
        catchups = load_catchups([(user.pk, first) for user in users], limit=10)
    assert all(len(catchup.frames) == 1 for catchup in catchups.values())
