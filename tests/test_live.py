"""
``notifications.live.push``: declared types only, JSON payloads within the
size limit, audiences of every kind, one message after commit, a row only
for durable types.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from notifications import live, services, wire
from notifications.checks import check_event_types
from notifications.models import Event, Notification
from notifications.registry import UndeclaredEventType, declared_event_types
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def refuse_negative(data):
    if data.get("value", 0) < 0:
        raise ValidationError("value must not be negative")


EVENT_TYPES = {
    "order.status": {"delivery": "durable"},
    "dashboard.counter": {"delivery": "live", "check": refuse_negative},
    "plain": {},
}


@pytest.fixture(autouse=True)
def event_types():
    with override_settings(NOTIFICATIONS_EVENT_TYPES=EVENT_TYPES):
        yield


def pushes(messages: list[wire.RedisMessage]) -> list[wire.EventMessage]:
    return [m for m in messages if isinstance(m, wire.EventMessage)]


def test_undeclared_type_raises_at_the_call_site(published):
    """A typo in the type name raises UndeclaredEventType and publishes nothing."""
    with (
        published() as messages,
        pytest.raises(UndeclaredEventType, match=r"'order\.stauts' is not declared"),
    ):
        live.push("order.stauts", {}, to=live.everyone())
    assert messages == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"tags": {"a", "b"}}, "holds a set, which is not JSON data"),
        ({"value": float("nan")}, "which JSON can't carry"),
        ({1: "one"}, "key 1 is not a string"),
        ({"when": object()}, "holds a object"),
        (
            {"x": "é" * 4_097},
            "8202 bytes encoded; NOTIFICATIONS_PUSH_MAX_BYTES is 8192",
        ),
    ],
    ids=["set", "nan", "int-key", "object", "oversize"],
)
def test_payload_that_is_not_small_json_raises(published, data, error):
    """Non-JSON and oversize payloads raise InvalidPayload naming the problem."""
    with published() as messages, pytest.raises(live.InvalidPayload, match=error):
        live.push("order.status", data, to=live.everyone())
    assert messages == []
    assert not Event.objects.exists()


def test_deeply_nested_payload_raises():
    """Nesting past MAX_DEPTH is refused before any encoder recurses on it."""
    data: list = []
    for _ in range(live.MAX_DEPTH + 1):
        data = [data]
    with pytest.raises(live.InvalidPayload, match="nested deeper"):
        live.push("plain", data, to=live.everyone())


def test_type_check_refuses_a_payload():
    """The declared check's ValidationError becomes InvalidPayload at the call."""
    with pytest.raises(live.InvalidPayload, match="must not be negative"):
        live.push("dashboard.counter", {"value": -1}, to=live.everyone())


def test_durable_push_is_one_row_and_one_message_after_commit(published):
    """A durable push writes one event row (no inbox rows) and publishes its id."""
    user = make_user()
    with published() as messages:
        event_id = live.push(
            "order.status", {"order": 1234, "status": "shipped"}, to=live.users(user)
        )
    event = Event.objects.get()
    assert event_id == event.pk
    assert (event.push_type, event.push_data) == (
        "order.status",
        {"order": 1234, "status": "shipped"},
    )
    assert not Notification.objects.exists()
    [message] = pushes(messages)
    assert message.kind == wire.PUSH
    assert message.event_id == event.pk
    assert message.audience == wire.AudienceSpec(users=frozenset({user.pk}))
    assert message.event["data"] == {"order": 1234, "status": "shipped"}


def test_live_push_has_no_row_and_no_id(published):
    """A live-only push publishes a message without an id and writes nothing."""
    with published() as messages:
        assert live.push("dashboard.counter", {"value": 57}, to=live.staff()) is None
    assert not Event.objects.exists()
    [message] = pushes(messages)
    assert message.event_id is None
    assert message.event["name"] == "dashboard.counter"


def test_delivery_defaults_to_durable():
    """A type declared without a delivery class is durable."""
    assert declared_event_types()["plain"].durable


def test_rolled_back_push_publishes_nothing(published):
    """Neither a durable nor a live push survives its transaction's rollback."""

    def push_both_then_fail() -> None:
        with transaction.atomic():
            live.push("order.status", {}, to=live.everyone())
            live.push("dashboard.counter", {"value": 1}, to=live.everyone())
            raise RuntimeError("roll back")

    with published() as messages, pytest.raises(RuntimeError):
        push_both_then_fail()
    assert messages == []
    assert not Event.objects.exists()


def test_payload_is_sent_as_it_was_when_pushed(published):
    """Changing the data after push() (before commit) doesn't change what is sent."""
    data = {"value": 1}
    with published() as messages, transaction.atomic():
        live.push("dashboard.counter", data, to=live.everyone())
        data["value"] = 2
    assert pushes(messages)[0].event["data"] == {"value": 1}


def test_audiences_combine():
    """Every audience builder sets its part; ``|`` is the union."""
    user, group = make_user(), make_group()
    audience = (
        live.users(user, 99)
        | live.groups(group)
        | live.staff()
        | live.superusers()
        | live.permission("auth.view_user")
    ).audience
    assert audience == wire.AudienceSpec(
        staff=True,
        superusers=True,
        users=frozenset({user.pk, 99}),
        groups=frozenset({group.pk}),
        permissions=frozenset({"auth.view_user"}),
    )
    assert live.everyone().audience.everyone


def test_a_staff_only_audience_combines_only_with_another():
    """Two staff-only audiences unite staff-only; a staff-only one and a
    plain one are refused rather than widened to non-staff."""
    staff_only = live.Recipients(
        wire.AudienceSpec(users=frozenset({1}), staff_only=True)
    )
    other = live.Recipients(wire.AudienceSpec(users=frozenset({2}), staff_only=True))
    assert (staff_only | other).audience == wire.AudienceSpec(
        users=frozenset({1, 2}), staff_only=True
    )
    with pytest.raises(ValueError, match="staff-only"):
        staff_only | live.everyone()


def test_viewers_of_a_model_or_object_are_its_view_and_change_holders():
    """viewers_of(Group) and viewers_of(a group) name the view and change permissions."""
    expected = frozenset({"auth.view_group", "auth.change_group"})
    assert live.viewers_of(make_group()).audience.permissions == expected
    assert live.viewers_of(Permission).audience.permissions == frozenset(
        {"auth.view_permission", "auth.change_permission"}
    )


@pytest.mark.parametrize("name", ["auth.view_usr", "view_user", "nope.view_user"])
def test_unknown_permission_raises(name):
    """A permission audience must name a permission that exists."""
    with pytest.raises(ValueError, match="unknown permission"):
        live.permission(name)


def test_a_user_named_by_a_string_key_is_the_same_user():
    """A key read from a URL or a form is a string: live.users("5") used to
    become the key "5", which never matches user 5 (the hub and the inbox
    key an integer primary key by the number). It is converted the way the
    user model's primary key converts it; a key that can't be one raises."""
    user = make_user()
    assert live.users(str(user.pk)).audience == live.users(user).audience
    assert live.users(str(user.pk)).audience.users == frozenset({user.pk})
    with pytest.raises(ValueError, match="not a user id"):
        live.users("alice")


def test_empty_user_and_group_audiences_raise():
    """users() and groups() with nobody in them is a mistake, not an empty push."""
    with pytest.raises(ValueError, match="at least one user"):
        live.users()
    with pytest.raises(ValueError, match="at least one group"):
        live.groups()


@pytest.mark.parametrize(
    ("types", "error"),
    [
        ([], "must be a dict"),
        ({"bad name": {}}, "a type name is a letter"),
        ({"a": "live"}, "must be a dict of options"),
        ({"a": {"delivery": "sometimes"}}, "'delivery' must be one of"),
        ({"a": {"check": "no.such.module"}}, "cannot import 'check'"),
        ({"a": {"retries": 3}}, "unknown option"),
        ({"activity": {}}, "are built in"),
    ],
)
def test_malformed_declarations_are_improperly_configured(types, error):
    """A bad NOTIFICATIONS_EVENT_TYPES says what is wrong with which entry."""
    with (
        override_settings(NOTIFICATIONS_EVENT_TYPES=types),
        pytest.raises(ImproperlyConfigured, match=error),
    ):
        declared_event_types()


def test_purgepushes_deletes_only_durable_pushes_past_their_retention():
    """The command deletes pushes older than the retention; recent pushes and
    every notification stay."""
    old = live.push("order.status", {}, to=live.everyone())
    recent = live.push("order.status", {}, to=live.everyone())
    notice = services.send_event(title="stays")
    two_days_ago = timezone.now() - timedelta(days=2)
    Event.objects.filter(pk__in=[old, notice.pk]).update(created_at=two_days_ago)
    out = StringIO()
    call_command("purgepushes", stdout=out)
    assert set(Event.objects.values_list("pk", flat=True)) == {recent, notice.pk}
    assert out.getvalue().startswith("Deleted 1 durable push(es)")


def test_system_check_reports_a_malformed_declaration():
    """manage.py check names the bad entry as notifications.E001."""
    with override_settings(NOTIFICATIONS_EVENT_TYPES={"a": {"delivery": "maybe"}}):
        [error] = check_event_types()
    assert error.id == "notifications.E001"
    assert "NOTIFICATIONS_EVENT_TYPES['a']" in error.msg
    assert check_event_types() == []


def recipients_of(event_id: int) -> set[int]:
    return set(
        Notification.objects.filter(event_id=event_id).values_list("user_id", flat=True)
    )


def test_notify_sends_to_each_kind_of_audience():
    """notify() is send_event for application code: users, groups,
    permission holders, staff, superusers, everyone; inactive users never."""
    team = make_group("Team")
    member, other, admin = make_user(groups=(team,)), make_user(), make_user(staff=True)
    make_user(is_active=False, groups=(team,))
    holder = make_user()
    holder.user_permissions.add(Permission.objects.get(codename="view_event"))
    root = make_user(is_superuser=True)
    everybody = {member.pk, other.pk, admin.pk, holder.pk, root.pk}
    cases = [
        (live.users(member, other), {member.pk, other.pk}),
        (live.groups(team), {member.pk}),
        (live.permission("live_notifications.view_event"), {holder.pk, root.pk}),
        (live.staff(), {admin.pk}),
        (live.superusers(), {root.pk}),
        (live.everyone(), everybody),
    ]
    for to, expected in cases:
        event_id = live.notify("Hello", body="there", to=to, sender=admin)
        assert recipients_of(event_id) == expected, to
    event = Event.objects.get(pk=event_id)
    assert (event.title, event.body, event.created_by) == ("Hello", "there", admin)


def test_notify_refuses_a_union_of_two_kinds():
    """An event has one audience: users | staff is refused, not half sent."""
    with pytest.raises(ValueError, match=r"one kind of audience, not staff \| users"):
        live.notify("Hi", to=live.users(make_user()) | live.staff())
    assert not Event.objects.exists()
