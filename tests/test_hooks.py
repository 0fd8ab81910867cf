"""The signals other apps hook: sent, delivered, read, dismissed."""

import logging

import pytest
from django.utils import timezone

from notifications import hooks, live, services
from notifications.models import Event
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    """What each signal's receiver was called with, in order."""
    calls: list[tuple[str, dict]] = []

    def recorder(name):
        def receiver(sender, signal, **kwargs):
            calls.append((name, kwargs))

        return receiver

    receivers = {name: recorder(name) for name in hooks.__all__}
    for name, receiver in receivers.items():
        getattr(hooks, name).connect(receiver)
    yield calls
    for name, receiver in receivers.items():
        getattr(hooks, name).disconnect(receiver)


def test_sent_after_commit_only(heard, django_capture_on_commit_callbacks):
    alice = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        event_id = live.notify("Hi", to=live.users(alice))
        assert heard == [], "sent before the commit"
    [(name, arguments)] = heard
    assert name == "notification_sent"
    assert arguments["event"] == Event.objects.get(pk=event_id)


def test_read_and_dismissed_say_what_changed(heard, django_capture_on_commit_callbacks):
    alice = make_user()
    first = services.send_event(title="one", audience="users", users=[alice]).pk
    second = services.send_event(title="two", audience="users", users=[alice]).pk
    with django_capture_on_commit_callbacks(execute=True):
        services.mark_read(user_id=alice.pk, event_id=first)
        services.mark_read(user_id=alice.pk, event_id=first)  # no change: silent
        services.mark_all_read(user_id=alice.pk, up_to=second)
        services.dismiss(user_id=alice.pk, event_id=second)
    said = [(name, args) for name, args in heard if name != "notification_sent"]
    assert said == [
        ("notification_read", {"user_id": alice.pk, "unread": 1, "ids": [first]}),
        ("notification_read", {"user_id": alice.pk, "unread": 0, "up_to": second}),
        ("notification_dismissed", {"user_id": alice.pk, "unread": 0, "ids": [second]}),
    ]


def test_receivers_get_the_same_user_id_whoever_made_the_change(
    heard, django_capture_on_commit_callbacks
):
    """The HTTP views pass request.user.pk, the socket a key it parsed from
    a message: a receiver used to get a UUID from one and a string from the
    other. It gets the user key (int for an integer primary key, str
    otherwise) either way."""
    alice = make_user()
    event = services.send_event(title="one", audience="users", users=[alice]).pk
    with django_capture_on_commit_callbacks(execute=True):
        services.mark_read(user_id=str(alice.pk), event_id=event)
    [arguments] = [args for name, args in heard if name == "notification_read"]
    assert arguments["user_id"] == alice.pk
    assert type(arguments["user_id"]) is int


def test_delivered_names_the_acknowledged_events_and_users(heard):
    alice, bob = make_user(), make_user()
    event = services.send_event(title="one")
    services.record_deliveries(
        acknowledged={event.pk: {bob.pk, alice.pk}}, at=timezone.now()
    )
    assert heard[-1] == (
        "notification_delivered",
        {"acknowledged": {event.pk: sorted([alice.pk, bob.pk])}},
    )


def test_a_failing_receiver_is_logged_not_raised(caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    hooks.notification_delivered.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="notifications.hooks"):
            services.record_deliveries(acknowledged={}, at=timezone.now())
    finally:
        hooks.notification_delivered.disconnect(broken)
    assert "notification_delivered receiver" in caplog.text
    assert "receiver bug" in caplog.text
