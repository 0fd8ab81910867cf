"""
End to end: who is online, across ws_server processes, from Redis; a killed
process stops counting within three presence intervals.
"""

import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack

import pytest
from django.test import Client, override_settings

from notifications import presence
from tests.clients import subscriber
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: The presence interval these servers run with, and the bound it gives a
#: killed process (three intervals, plus a second of slack here).
INTERVAL = 0.5
GHOST_BOUND = 3 * INTERVAL + 1


@pytest.fixture
def own_prefix():
    """A Redis prefix of this test's own, so only its servers count."""
    prefix = f"test-presence-{uuid.uuid4().hex[:8]}"
    with override_settings(NOTIFICATIONS_REDIS_PREFIX=prefix):
        yield prefix


def server(prefix: str) -> WebSocketServerProcess:
    return WebSocketServerProcess(
        redis_prefix=prefix, env={"NOTIFICATIONS_PRESENCE_INTERVAL": str(INTERVAL)}
    )


def eventually(condition: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``condition()`` holds; fail past ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not within the bound"
        time.sleep(0.05)
    return time.monotonic() - started


def test_presence_counts_users_and_connections_across_processes(own_prefix):
    """Two processes, alice on both and bob on one: the counts add up, go down
    as connections close, and is_online follows."""
    alice, bob = make_user(), make_user()
    with server(own_prefix) as first, server(own_prefix) as second:
        with ExitStack() as stack:
            stack.enter_context(subscriber(first, alice))
            stack.enter_context(subscriber(second, alice))
            stack.enter_context(subscriber(second, bob))
            eventually(
                lambda: presence.online().connections == {alice.pk: 2, bob.pk: 1},
                timeout=2 * INTERVAL + 1,
            )
            online = presence.online()
            assert (online.users, online.total_connections, online.processes) == (
                2,
                3,
                2,
            )
            assert presence.is_online(alice)
            assert presence.is_online(bob.pk)
        eventually(lambda: not presence.is_online(alice), timeout=2 * INTERVAL + 1)
        assert presence.online().processes == 2


def test_a_killed_process_leaves_no_ghosts_past_the_bound(own_prefix):
    """SIGKILL a ws_server: its users stop counting within three intervals; a
    stopped one removes itself at once."""
    alice, bob = make_user(), make_user()
    doomed, stopped, survivor = (
        server(own_prefix),
        server(own_prefix),
        server(own_prefix),
    )
    for process in (doomed, stopped, survivor):
        process.start()
    try:
        with subscriber(doomed, alice), subscriber(survivor, bob):
            eventually(lambda: presence.is_online(alice), timeout=2 * INTERVAL + 1)
            doomed.kill()
            took = eventually(lambda: not presence.is_online(alice), GHOST_BOUND)
            assert took <= GHOST_BOUND
            assert presence.is_online(bob)
            stopped.stop()
            assert presence.online().processes == 1
    finally:
        for process in (doomed, stopped, survivor):
            process.kill()


def test_the_event_list_in_the_admin_shows_who_is_online(own_prefix):
    """The admin's event list says how many users and connections are online."""
    admin, alice = make_user(staff=True, is_superuser=True), make_user()
    browser = Client()
    browser.force_login(admin)
    with server(own_prefix) as process, subscriber(process, alice):
        eventually(lambda: presence.is_online(alice), timeout=2 * INTERVAL + 1)
        page = browser.get("/admin/live_notifications/event/").content.decode()
    assert "Online now: 1 user, 1 connection on 1 WebSocket server." in page
