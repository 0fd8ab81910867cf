"""
Auth changes become control messages on the stream, after commit; changes no
socket cares about, and bulk session deletes, publish nothing.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import wire
from notifications.publishing import session_digest
from tests.factories import make_group, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_redis")]

SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cache": "django.contrib.sessions.backends.cache",
}


def changed_users(messages: list[wire.RedisMessage]) -> list[int]:
    return [m.user_id for m in messages if isinstance(m, wire.UserChanged)]


def test_group_clear_announces_every_former_member(published):
    """Clearing a group's members publishes one user_changed per former member."""
    group = make_group()
    alice, bob = make_user(groups=(group,)), make_user(groups=(group,))
    make_user()  # not a member
    with published() as messages:
        group.user_set.clear()
    assert sorted(changed_users(messages)) == sorted([alice.pk, bob.pk])


def test_user_groups_clear_announces_the_user(published):
    """Clearing a user's groups publishes one user_changed for that user."""
    alice = make_user(groups=(make_group(), make_group()))
    with published() as messages:
        alice.groups.clear()
    assert changed_users(messages) == [alice.pk]


def test_group_add_and_remove_announce_the_users(published):
    """Adding users to a group and removing them announce each of them."""
    group = make_group()
    alice, bob = make_user(), make_user()
    with published() as messages:
        group.user_set.add(alice, bob)
        group.user_set.remove(bob)
    assert sorted(changed_users(messages)) == sorted([alice.pk, bob.pk, bob.pk])


def changed_groups(messages: list[wire.RedisMessage]) -> list[int]:
    return [m.group_id for m in messages if isinstance(m, wire.GroupChanged)]


def auth_permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="auth", codename=codename)


def test_user_permission_changes_announce_the_user(published):
    """user.user_permissions.add/remove/clear each publish user_changed."""
    alice = make_user()
    view = auth_permission("view_user")
    with published() as messages:
        alice.user_permissions.add(view)
        alice.user_permissions.remove(view)
        alice.user_permissions.add(view)
        alice.user_permissions.clear()
    assert changed_users(messages) == [alice.pk] * 4


def test_permission_given_to_users_from_its_side_announces_them(published):
    """permission.user_set.add() and .clear() announce the users concerned."""
    alice, bob = make_user(), make_user()
    view = auth_permission("view_user")
    with published() as messages:
        view.user_set.add(alice, bob)
    with published() as cleared:
        view.user_set.clear()
    assert sorted(changed_users(messages)) == sorted([alice.pk, bob.pk])
    assert sorted(changed_users(cleared)) == sorted([alice.pk, bob.pk] * 2)


def test_group_permission_changes_announce_the_group(published):
    """group.permissions.add/remove/clear publish one group_changed each, not
    one message per member."""
    group = make_group()
    make_user(groups=(group,)), make_user(groups=(group,))
    view = auth_permission("view_user")
    with published() as messages:
        group.permissions.add(view)
        group.permissions.remove(view)
        group.permissions.add(view)
        group.permissions.clear()
    assert changed_groups(messages) == [group.pk] * 4
    assert changed_users(messages) == []


def test_permission_cleared_from_its_groups_announces_them(published):
    """permission.group_set.clear() announces every group that held it."""
    first, second = make_group(), make_group()
    view = auth_permission("view_user")
    view.group_set.add(first, second)
    with published() as messages:
        view.group_set.clear()
    assert sorted(changed_groups(messages)) == sorted([first.pk, second.pk])


@pytest.mark.parametrize("fields", [["last_login"], ["first_name"]])
def test_saving_fields_no_socket_uses_publishes_nothing(published, fields):
    """A save limited to fields no socket depends on publishes nothing."""
    alice = make_user()
    with published() as messages:
        alice.save(update_fields=fields)
    assert messages == []


@pytest.mark.parametrize(
    "fields", [None, ["password"], ["is_active"], ["first_name", "is_staff"]]
)
def test_saving_fields_sockets_use_announces_the_user(published, fields):
    """A full save, or one that touches a field sockets depend on, publishes one user_changed."""
    alice = make_user()
    with published() as messages:
        alice.save(update_fields=fields)
    assert changed_users(messages) == [alice.pk]


def test_deleting_session_rows_publishes_nothing(published):
    """Deleting session rows in bulk publishes nothing (the ws_server's re-check covers it)."""
    browser = Client()
    browser.force_login(make_user())
    with published() as messages:
        Session.objects.filter(pk=browser.session.session_key).delete()
    assert messages == []
    assert not Session.objects.exists()


def test_clearsessions_deletes_expired_sessions_in_bulk(published):
    """``clearsessions`` deletes 200 expired sessions in a handful of queries and publishes nothing."""
    expired = timezone.now() - timedelta(days=1)
    Session.objects.bulk_create(
        Session(session_key=f"expired{i:033d}", session_data="", expire_date=expired)
        for i in range(200)
    )
    with published() as messages, CaptureQueriesContext(connection) as queries:
        call_command("clearsessions")
    assert not Session.objects.exists()
    assert len(queries) <= 5, [q["sql"] for q in queries]
    assert messages == []


@pytest.mark.parametrize("engine", SESSION_ENGINES)
def test_logout_announces_the_session_end_once(published, engine):
    """Logging out publishes exactly one session_ended for that session, whatever the engine."""
    with override_settings(SESSION_ENGINE=SESSION_ENGINES[engine]):
        browser = Client()
        browser.force_login(make_user())
        session_key = browser.session.session_key
        with published() as messages:
            response = browser.post("/accounts/logout/")
    assert response.status_code == 302
    assert messages == [wire.SessionEnded(session=session_digest(session_key))]
