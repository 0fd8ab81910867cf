"""
Retracting or deleting a sent event: it leaves inboxes, counts and resume,
and a durable ``retracted`` push tells open pages, after commit.
"""

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from notifications import selectors, services, wire
from notifications.models import Audience, Event
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def retractions(messages: list[wire.RedisMessage]) -> list[wire.EventMessage]:
    return [
        m
        for m in messages
        if isinstance(m, wire.EventMessage) and m.event.get("name") == "retracted"
    ]


def test_a_retracted_event_leaves_inbox_counts_and_resume(published):
    """After retraction the event is in no inbox, no unread count and no replay,
    and one durable retracted push goes to the event's audience."""
    team = make_group()
    alice = make_user(groups=(team,))
    seen = services.send_event(title="seen").pk
    event = services.send_event(title="oops", audience=Audience.GROUPS, groups=[team])
    with published() as messages:
        assert services.retract_event(event=event, by=alice)
    assert [n.event_id for n in selectors.inbox(user_id=alice.pk)] == [seen]
    assert selectors.unread_count(user_id=alice.pk) == 1
    assert selectors.missed_event_ids(after={alice.pk: seen}, limit=10) == {
        alice.pk: []
    }
    [push] = retractions(messages)
    assert push.event_id is not None, "durable: resume carries it"
    assert push.event["data"] == {"ids": [event.pk]}
    assert push.audience == wire.AudienceSpec(groups=frozenset({team.pk}))
    event.refresh_from_db()
    assert (event.retracted_by, event.retracted_at is not None) == (alice, True)


def test_retracting_twice_announces_once(published):
    """A second retraction changes nothing and publishes nothing."""
    event = services.send_event(title="oops")
    services.retract_event(event=event, by=None)
    with published() as messages:
        assert not services.retract_event(event=event, by=None)
    assert retractions(messages) == []


def test_deleting_an_event_announces_it_with_its_audience(published):
    """A deleted event's retraction names the audience its rows had."""
    bob = make_user()
    event = services.send_event(title="gone", audience=Audience.USERS, users=[bob])
    with published() as messages:
        Event.objects.filter(pk=event.pk).delete()
    [push] = retractions(messages)
    assert push.event["data"] == {"ids": [event.pk]}
    assert push.audience == wire.AudienceSpec(users=frozenset({bob.pk}))


def test_deleting_a_retracted_event_or_a_push_announces_nothing(published):
    """Nothing new to tell: a retracted event was announced; a push row was
    never on a page."""
    event = services.send_event(title="oops")
    services.retract_event(event=event, by=None)
    with published() as messages:
        Event.objects.all().delete()
    assert retractions(messages) == []


def test_the_admin_retract_action_is_audited():
    """The admin action retracts the selected events and logs who did it."""
    admin = make_user(staff=True, is_superuser=True)
    event = services.send_event(title="oops")
    browser = Client()
    browser.force_login(admin)
    response = browser.post(
        "/admin/notifications/event/",
        {"action": "retract", "_selected_action": [event.pk]},
    )
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.retracted_by == admin
    entry = LogEntry.objects.get(object_id=str(event.pk))
    assert (entry.user, entry.get_change_message()) == (admin, "Retracted.")
