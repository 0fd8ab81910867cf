"""The signals other apps hook: sent, delivered, read, dismissed."""

import logging

import pytest
from django.utils import timezone

from notifications import hooks, live, services
from notifications.models import Event, Notification
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

    alice = make_user()
    event = services.send_event(title="one", audience="users", users=[alice]).pk
    hooks.notification_delivered.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="notifications.hooks"):
            services.record_deliveries(
                acknowledged={event: {alice.pk}}, at=timezone.now()
            )
    finally:
        hooks.notification_delivered.disconnect(broken)
    assert "notification_delivered receiver" in caplog.text
    assert "receiver bug" in caplog.text


def test_delivered_reports_only_the_senders_own_rows_once(heard):
    """An acknowledgement of another user's event, or of one delivered already,
    changes nothing and is not reported."""
    alice, bob = make_user(), make_user()
    bobs = services.send_event(title="bob's", audience="users", users=[bob]).pk
    alices = services.send_event(title="alice's", audience="users", users=[alice]).pk
    assert (
        services.record_deliveries(acknowledged={bobs: {alice.pk}}, at=timezone.now())
        == 0
    )
    assert not [name for name, _args in heard if name == "notification_delivered"]
    assert Notification.objects.get(user=bob, event_id=bobs).delivered_at is None
    changed = services.record_deliveries(
        acknowledged={bobs: {alice.pk, bob.pk}, alices: {alice.pk}}, at=timezone.now()
    )
    assert changed == 2
    assert heard[-1] == (
        "notification_delivered",
        {"acknowledged": {bobs: [bob.pk], alices: [alice.pk]}},
    )
    heard.clear()
    services.record_deliveries(acknowledged={alices: {alice.pk}}, at=timezone.now())
    assert heard == []


def test_acknowledgements_cost_one_write_whatever_ids_they_name(
    django_assert_max_num_queries,
):
    """Two hundred made-up ids from each of two users: one UPDATE, nothing to report."""
    alice, bob = make_user(), make_user()
    services.send_event(title="one")
    made_up = {event_id: {alice.pk, bob.pk} for event_id in range(10**6, 10**6 + 200)}
    with django_assert_max_num_queries(1):
        assert services.record_deliveries(acknowledged=made_up, at=timezone.now()) == 0
