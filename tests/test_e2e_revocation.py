"""
Revocation: logout, session expiry, password change, deactivation and
deletion close the affected sockets within a second on every ws_server
process (4003, which the client doesn't blindly reconnect on); group and
staff changes take effect without reconnecting; changes no signal announces
(a bulk delete of session rows, QuerySet.update) within the periodic
re-check. Faults and handshake races: tests/test_e2e_fault_suite.py.
"""

import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session

from notifications import services
from notifications.models import Audience
from tests.clients import close_of, logged_in_client, receive, subscriber
from tests.factories import make_group, make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REVOKED = (4003, "session revoked")
#: The periodic re-check interval of the servers that test it, seconds.
RECHECK = 2.0
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


@pytest.fixture
def quick_recheck_server(redis_prefix):
    """A server that re-checks every connection every RECHECK seconds."""
    env = {"NOTIFICATIONS_RECHECK_INTERVAL": str(RECHECK)}
    with WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server:
        yield server


def test_deleted_session_row_closes_its_sockets_within_the_recheck(
    quick_recheck_server,
):
    """A session row deleted in bulk (no signal, as clearsessions does) closes its sockets at the next re-check."""
    alice = make_user()
    browser = logged_in_client(alice)
    with subscriber(quick_recheck_server, alice, client=browser) as ws:
        Session.objects.filter(pk=browser.session.session_key).delete()
        assert close_of(ws, timeout=RECHECK + 1) == REVOKED


def test_silent_staff_demotion_stops_staff_events_within_the_recheck(
    quick_recheck_server,
):
    """QuerySet.update(is_staff=False) fires no signal; the re-check stops staff events within RECHECK s."""
    alice = make_user(staff=True)
    with subscriber(quick_recheck_server, alice) as ws:
        get_user_model().objects.filter(pk=alice.pk).update(is_staff=False)
        time.sleep(RECHECK + 0.5)
        services.send_event(title="staff only", audience=Audience.STAFF)
        everyone = services.send_event(title="everyone")
        assert receive(ws, timeout=2)["id"] == everyone.pk


def test_group_cleared_from_its_side_stops_its_events(ws_server):
    """group.user_set.clear() re-checks every former member: group events stop within a second."""
    team = make_group()
    alice, bob = make_user(groups=(team,)), make_user(groups=(team,))
    with subscriber(ws_server, alice) as alice_ws, subscriber(ws_server, bob) as bob_ws:
        since = len(ws_server.lines)
        team.user_set.clear()
        wait_for_recheck(ws_server, alice, since)
        wait_for_recheck(ws_server, bob, since)
        services.send_event(title="team", audience=Audience.GROUPS, groups=[team])
        everyone = services.send_event(title="everyone")
        assert receive(alice_ws)["id"] == everyone.pk
        assert receive(bob_ws)["id"] == everyone.pk


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
