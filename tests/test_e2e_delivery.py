"""End to end: Django publishes, a real runwsserver relays, real clients receive."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client

from notifications import selectors, services
from notifications.models import Audience, Event
from tests.clients import logged_in_client, receive, subscriber
from tests.factories import make_group, make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_event_reaches_recipient_within_one_second(ws_server):
    """An event sent through the service arrives over the socket within 1 s."""
    alice = make_user()
    with subscriber(ws_server, alice) as ws:
        event = services.send_event(
            title="Deploy finished", body="All green", level="success"
        )
        frame = receive(ws, timeout=1)
    # Where to resume: this event, or lower while an older id may still commit.
    assert frame.pop("cursor") <= event.pk
    assert frame == {
        "type": "notification",
        "id": event.pk,
        "title": "Deploy finished",
        "body": "All green",
        "level": "success",
        "url": "",
        "created_at": event.created_at.isoformat(),
        "expires_at": None,
    }


def test_every_tab_of_a_user_receives_the_event(ws_server):
    """A user with two open tabs gets the event in both."""
    alice = make_user()
    with subscriber(ws_server, alice) as tab1, subscriber(ws_server, alice) as tab2:
        event = services.send_event(
            title="Hello", audience=Audience.USERS, users=[alice]
        )
        assert receive(tab1)["id"] == event.pk
        assert receive(tab2)["id"] == event.pk


@pytest.mark.parametrize(
    "audience", ["users", "groups", "staff", "superusers", "permissions"]
)
def test_only_the_audience_receives_the_event(ws_server, audience):
    """A user outside the audience receives nothing; the next frame they get is a later event."""
    team = make_group()
    view_group = Permission.objects.get(codename="view_group")
    insider = make_user(staff=True, groups=(team,), is_superuser=True)
    outsider = make_user()
    with (
        subscriber(ws_server, insider) as inside,
        subscriber(ws_server, outsider) as outside,
    ):
        targeted = services.send_event(
            title="Targeted",
            audience=audience,
            groups=[team],
            users=[insider],
            permissions=[view_group],
        )
        everyone = services.send_event(title="For everyone")
        assert receive(inside)["id"] == targeted.pk
        assert receive(inside)["id"] == everyone.pk
        # Frames arrive in order, so had the targeted one leaked it would be first.
        assert receive(outside)["id"] == everyone.pk


def test_admin_sends_an_event_through_the_add_form(ws_server):
    """An admin posts the admin form (with CSRF); the recipient's browser gets it."""
    admin = make_user(staff=True, is_superuser=True)
    alice = make_user()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin)
    page = browser.get("/admin/live_notifications/event/add/")
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    with subscriber(ws_server, alice) as ws:
        response = browser.post(
            "/admin/live_notifications/event/add/",
            {
                "csrfmiddlewaretoken": token,
                "title": "Maintenance tonight",
                "body": "From 22:00 UTC",
                "level": "warning",
                "url": "",
                "audience": "users",
                "users": [alice.pk],
                "expires_at_0": "",
                "expires_at_1": "",
            },
        )
        assert response.status_code == 302, response.text
        frame = receive(ws, timeout=1)
    event = Event.objects.get(push_type="")  # not the activity push
    assert (frame["id"], frame["title"], frame["level"]) == (
        event.pk,
        "Maintenance tonight",
        "warning",
    )
    assert event.created_by == admin


def test_inbox_page_shows_the_client(ws_server):
    """The inbox page is served to logged-in users with the client's config."""
    response = logged_in_client(make_user()).get("/")
    assert response.status_code == 200
    assert 'id="notifications-config"' in response.text
    assert "notifications/inbox.js" in response.text


@pytest.fixture(scope="module")
def deflate_server(django_db_setup, django_db_blocker, redis_prefix):
    """A runwsserver that accepts permessage-deflate, as browsers offer it."""
    env = {"NOTIFICATIONS_WS_COMPRESSION": "true"}
    with WebSocketServerProcess(redis_prefix=redis_prefix, env=env) as server:
        yield server


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_a_burst_of_mixed_audiences_arrives_whole_and_in_order(
    ws_server, deflate_server, compression
):
    """
    Forty events committed at once reach the relay in one read and go out in
    runs: each user gets exactly the events meant for them, in order, whether
    the frames are shared bytes or compressed per connection.
    """
    server = deflate_server if compression else ws_server
    team = make_group()
    admin = make_user(staff=True)
    member = make_user(groups=(team,))
    bystander = make_user()
    audiences = [
        {},
        {"audience": Audience.STAFF},
        {"audience": Audience.GROUPS, "groups": [team]},
        {"audience": Audience.USERS, "users": [bystander]},
    ]
    expected: dict[int, list[int]] = {admin.pk: [], member.pk: [], bystander.pk: []}
    with (
        subscriber(server, admin, compression=compression) as admin_ws,
        subscriber(server, member, compression=compression) as member_ws,
        subscriber(server, bystander, compression=compression) as bystander_ws,
    ):
        assert bool(admin_ws.protocol.extensions) == bool(compression)
        with transaction.atomic():
            for n in range(40):
                kwargs = audiences[n % 7 % 4]
                event = services.send_event(title=f"burst {n}", **kwargs)
                for user in (admin, member, bystander):
                    if selectors.audience_users(event=event).filter(pk=user.pk):
                        expected[user.pk].append(event.pk)
        for user, ws in (
            (admin, admin_ws),
            (member, member_ws),
            (bystander, bystander_ws),
        ):
            got = [receive(ws)["id"] for _ in expected[user.pk]]
            assert got == expected[user.pk]
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.2)  # and nothing else


def test_uvloop_by_default_and_asyncio_on_request(ws_server, redis_prefix):
    """runwsserver picks uvloop when installed; --loop asyncio serves the same."""
    assert ws_server.wait_for_log(r"listening on .* \(event loop: uvloop\)")
    alice = make_user()
    args = ("--loop", "asyncio")
    with (
        WebSocketServerProcess(redis_prefix=redis_prefix, args=args) as server,
        subscriber(server, alice) as ws,
    ):
        assert server.wait_for_log(r"listening on .* \(event loop: asyncio\)")
        event = services.send_event(title="on asyncio")
        assert receive(ws)["id"] == event.pk
