"""
Auth changes become control messages on the stream, after commit; changes no
socket cares about, and bulk session deletes, publish nothing.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import wire
from notifications.broker import get_redis, stream_key
from notifications.publishing import session_digest
from scripts.redis_server import RedisServer
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db

SESSION_ENGINES = {
    "db": "django.contrib.sessions.backends.db",
    "cache": "django.contrib.sessions.backends.cache",
}


@pytest.fixture(autouse=True)
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own: its stream holds only this test's messages."""
    with RedisServer() as server, override_settings(REDIS_URL=server.url):
        get_redis.cache_clear()
        yield server
    get_redis.cache_clear()


@pytest.fixture
def published(django_capture_on_commit_callbacks):
    """Run the block's on_commit callbacks; then list what reached the stream."""

    @contextmanager
    def capture() -> Iterator[list[wire.RedisMessage]]:
        messages: list[wire.RedisMessage] = []
        with django_capture_on_commit_callbacks(execute=True):
            yield messages
        raw = get_redis().xrange(stream_key())
        messages.extend(wire.decode_redis(fields["m"]) for _id, fields in raw)

    return capture


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
