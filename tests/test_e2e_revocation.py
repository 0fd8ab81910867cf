"""
Revocation: logout, session deletion or expiry, password change, deactivation
and deletion close the affected sockets within a second on every ws_server
process (4003, which the client doesn't blindly reconnect on); group changes
take effect without reconnecting.
"""

import time

import pytest
from django.contrib.sessions.models import Session

from notifications import services
from notifications.models import Audience
from tests.clients import close_of, logged_in_client, receive, subscriber
from tests.factories import make_group, make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REVOKED = (4003, "session revoked")
ENDED = (4003, "session ended")


def wait_for_recheck(server: WebSocketServerProcess, user, since: int) -> None:
    """The change travels through Redis; wait until the server applied it."""
    server.wait_for_log(
        f"re-checked <Client user={user.pk} .*still authorized", since=since
    )


@pytest.fixture
def second_server(redis_prefix):
    with WebSocketServerProcess(redis_prefix=redis_prefix) as server:
        yield server


def test_logout_closes_that_sessions_sockets_on_every_process(ws_server, second_server):
    """Logging out closes the session's sockets on both processes within 1 s; another session stays."""
    alice = make_user()
    browser, other_browser = logged_in_client(alice), logged_in_client(alice)
    with (
        subscriber(ws_server, alice, client=browser) as here,
        subscriber(second_server, alice, client=browser) as there,
        subscriber(ws_server, alice, client=other_browser) as elsewhere,
    ):
        browser.post("/accounts/logout/")
        started = time.monotonic()
        assert close_of(here, timeout=1) == ENDED
        assert close_of(there, timeout=1) == ENDED
        assert time.monotonic() - started < 1
        event = services.send_event(title="still live")
        assert receive(elsewhere)["id"] == event.pk


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda user: (user.set_password("a new password"), user.save()),
            id="password",
        ),
        pytest.param(
            lambda user: (setattr(user, "is_active", False), user.save()),
            id="deactivation",
        ),
        pytest.param(lambda user: user.delete(), id="deletion"),
    ],
)
def test_account_changes_close_every_socket_of_the_user(
    ws_server, second_server, change
):
    """A password change, deactivation or deletion closes the user's sockets everywhere."""
    alice, bob = make_user(), make_user()
    with (
        subscriber(ws_server, alice) as first,
        subscriber(second_server, alice) as second,
        subscriber(ws_server, bob) as bystander,
    ):
        change(alice)
        assert close_of(first, timeout=1) == REVOKED
        assert close_of(second, timeout=1) == REVOKED
        event = services.send_event(title="bob is unaffected")
        assert receive(bystander)["id"] == event.pk


def test_deleted_session_closes_its_sockets(ws_server):
    """Deleting the session row (flush, admin, clearsessions) closes its sockets."""
    alice = make_user()
    browser = logged_in_client(alice)
    with subscriber(ws_server, alice, client=browser) as ws:
        Session.objects.filter(pk=browser.session.session_key).delete()
        assert close_of(ws, timeout=1) == ENDED


def test_expired_session_closes_its_sockets(ws_server):
    """A socket whose session expires is closed within about a second of the expiry."""
    alice = make_user()
    browser = logged_in_client(alice)
    session = browser.session
    session.set_expiry(2)
    session.save()
    with subscriber(ws_server, alice, client=browser) as ws:
        assert close_of(ws, timeout=4) == REVOKED


def test_group_changes_apply_without_reconnecting(ws_server):
    """Joining a group starts its events on an open socket; leaving stops them."""
    team = make_group()
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        since = len(ws_server.lines)
        alice.groups.add(team)
        wait_for_recheck(ws_server, alice, since)
        joined = services.send_event(
            title="team", audience=Audience.GROUPS, groups=[team]
        )
        assert receive(ws)["id"] == joined.pk
        since = len(ws_server.lines)
        alice.groups.remove(team)
        wait_for_recheck(ws_server, alice, since)
        services.send_event(title="team again", audience=Audience.GROUPS, groups=[team])
        everyone = services.send_event(title="everyone")
        assert receive(ws)["id"] == everyone.pk


def test_staff_flag_change_applies_without_reconnecting(ws_server):
    """Becoming staff starts staff events on an open socket."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        since = len(ws_server.lines)
        alice.is_staff = True
        alice.save()
        wait_for_recheck(ws_server, alice, since)
        event = services.send_event(title="staff", audience=Audience.STAFF)
        assert receive(ws)["id"] == event.pk
