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


def run_admin_action(admin, action: str, event: Event) -> None:
    """Run an action of the event list on ``event`` as ``admin`` does, over HTTP."""
    browser = Client()
    browser.force_login(admin)
    response = browser.post(
        "/admin/live_notifications/event/",
        {"action": action, "_selected_action": [event.pk]},
    )
    assert response.status_code == 302


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
    run_admin_action(admin, "retract", event)
    event.refresh_from_db()
    assert event.retracted_by == admin
    entry = LogEntry.objects.get(object_id=str(event.pk))
    assert (entry.user, entry.get_change_message()) == (admin, "Retracted.")


def test_send_again_copies_the_event_to_its_audience_as_it_is_now():
    """The admin's 'send again' sends a new event with the same content and
    audience, to the group's members as they are now, and logs it."""
    admin = make_user(staff=True, is_superuser=True)
    team = make_group()
    make_user(groups=(team,))
    event = services.send_event(
        title="Standup", body="10:00", audience=Audience.GROUPS, groups=[team]
    )
    newcomer = make_user(groups=(team,))
    run_admin_action(admin, "send_again", event)
    copy = Event.objects.exclude(pk=event.pk).get(push_type="")
    assert (copy.title, copy.body, copy.created_by) == ("Standup", "10:00", admin)
    assert list(copy.groups.all()) == [team]
    assert newcomer.pk in set(
        selectors.audience_users(event=copy).values_list("pk", flat=True)
    )
    entry = LogEntry.objects.get(object_id=str(copy.pk))
    assert entry.get_change_message() == f"Sent again from event {event.pk}."
