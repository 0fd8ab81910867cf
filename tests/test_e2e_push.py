"""
End to end: application code pushes typed events; a real runwsserver
resolves each audience among its connections; real clients receive them.
"""

import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.test import override_settings
from websockets.sync.client import ClientConnection

from notifications import live, services
from tests.clients import close_of, subscriber
from tests.factories import make_group, make_user
from tests.pushes import SENTINEL, next_push, reached_by, seconds_until
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

EVENT_TYPES = {
    "order.status": {"delivery": "durable"},
    "dashboard.counter": {"delivery": "live"},
    SENTINEL: {"delivery": "live"},
}
#: How long a permission change may take to reach open connections.
REFRESH_BOUND = 1.5


@pytest.fixture(autouse=True)
def event_types():
    with override_settings(NOTIFICATIONS_EVENT_TYPES=EVENT_TYPES):
        yield


def auth_permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="auth", codename=codename)


def targeted_push_reaches(
    clients: dict[str, ClientConnection], event_type: str, to: live.Recipients
) -> set[str]:
    """Push to ``to``; name the clients it reached, checking its data."""
    data = {"to": repr(to)}
    reached = reached_by(
        clients, lambda: live.push(event_type, data, to=to), event_type
    )
    assert all(frame["data"] == data for frame in reached.values())
    return set(reached)


AUDIENCES: dict[str, tuple[Callable[[dict], live.Recipients], set[str]]] = {
    "everyone": (
        lambda p: live.everyone(),
        {"staff", "member", "holder", "root", "plain"},
    ),
    "users": (lambda p: live.users(p["plain"], p["member"]), {"plain", "member"}),
    "groups": (lambda p: live.groups(p["team"]), {"member"}),
    "staff": (lambda p: live.staff(), {"staff"}),
    "superusers": (lambda p: live.superusers(), {"root"}),
    "permission": (lambda p: live.permission("auth.view_user"), {"holder", "root"}),
    "permission-through-group": (
        lambda p: live.permission("auth.change_group"),
        {"member", "root"},
    ),
    "viewers-of-a-model": (lambda p: live.viewers_of(p["team"]), {"member", "root"}),
    "combined": (lambda p: live.staff() | live.groups(p["team"]), {"staff", "member"}),
}


@pytest.mark.parametrize("event_type", ["order.status", "dashboard.counter"])
def test_a_push_reaches_exactly_its_audience(ws_server, event_type):
    """For every audience kind, durable and live: the audience receives the push
    with its data, everyone else only the next push; the inactive user's socket
    was closed (4003) and got nothing."""
    team = make_group()
    team.permissions.add(auth_permission("change_group"))
    people = {
        "staff": make_user(staff=True),
        "member": make_user(groups=(team,)),
        "holder": make_user(),
        "root": make_user(is_superuser=True),
        "plain": make_user(),
        "inactive": make_user(),
    }
    people["holder"].user_permissions.add(auth_permission("view_user"))
    with (
        subscriber(ws_server, people["staff"]) as staff,
        subscriber(ws_server, people["member"]) as member,
        subscriber(ws_server, people["holder"]) as holder,
        subscriber(ws_server, people["root"]) as root,
        subscriber(ws_server, people["plain"]) as plain,
        subscriber(ws_server, people["inactive"]) as inactive,
    ):
        people["inactive"].is_active = False
        people["inactive"].save()
        assert close_of(inactive) == (4003, "session revoked")
        clients = {
            "staff": staff,
            "member": member,
            "holder": holder,
            "root": root,
            "plain": plain,
        }
        for kind, (audience, expected) in AUDIENCES.items():
            to = audience({**people, "team": team})
            assert targeted_push_reaches(clients, event_type, to) == expected, kind


def test_push_frame_is_data_with_its_id_and_cursor(ws_server):
    """A durable push arrives as its name, its JSON data, its id and a cursor;
    a live-only one has neither id nor cursor."""
    alice = make_user()
    data = {"order": 1234, "status": "shipped", "html": "<b>not markup</b>"}
    with subscriber(ws_server, alice) as ws:
        event_id = live.push("order.status", data, to=live.users(alice))
        durable = next_push(ws)
        live.push("dashboard.counter", {"value": 57}, to=live.users(alice))
        passing = next_push(ws)
    assert durable.pop("cursor") <= event_id
    assert durable.pop("sent_at")
    assert durable == {
        "type": "push",
        "name": "order.status",
        "data": data,
        "id": event_id,
    }
    assert (passing["id"], passing["cursor"], passing["data"]) == (
        None,
        None,
        {"value": 57},
    )


def test_resume_replays_durable_pushes_not_live_ones(ws_server):
    """A client that reconnects from its cursor gets the durable push it missed,
    once, in id order with notifications; the live-only push is gone."""
    alice, bob = make_user(), make_user()
    with subscriber(ws_server, alice) as ws:
        cursor = ws.welcome["cursor"]
    live.push("dashboard.counter", {"value": 1}, to=live.users(alice))
    notice = services.send_event(title="while away")
    mine = live.push("order.status", {"order": 1}, to=live.users(alice))
    live.push("order.status", {"order": 2}, to=live.users(bob))
    with subscriber(ws_server, alice, last_id=cursor) as ws:
        replayed = [(frame["type"], frame["id"]) for frame in ws.replayed]
    assert replayed == [("notification", notice.pk), ("push", mine)]


def receives_within(ws: ClientConnection, to: Callable[[], live.Recipients]) -> float:
    """Seconds until a push to ``to()`` reaches ``ws``."""
    return _until(ws, to, reached=True)


def stops_within(ws: ClientConnection, to: Callable[[], live.Recipients]) -> float:
    """Seconds until a push to ``to()`` no longer reaches ``ws``."""
    return _until(ws, to, reached=False)


def _until(ws: ClientConnection, to: Callable[[], live.Recipients], *, reached: bool):
    def send() -> None:
        live.push("dashboard.counter", {}, to=to())

    return seconds_until(
        ws, send, "dashboard.counter", reached=reached, bound=REFRESH_BOUND
    )


def test_permission_changes_reach_an_open_connection(ws_server):
    """Granting and revoking a permission, directly, through a group's
    permissions and through group membership, changes what an open connection
    receives within the bound, without reconnecting."""
    alice = make_user()
    view = auth_permission("view_user")
    team = make_group()

    def holders() -> live.Recipients:
        return live.permission("auth.view_user")

    with subscriber(ws_server, alice) as ws:
        assert not targeted_push_reaches({"me": ws}, "dashboard.counter", holders())
        steps = [
            (lambda: alice.user_permissions.add(view), receives_within),
            (lambda: alice.user_permissions.remove(view), stops_within),
            (lambda: team.user_set.add(alice), None),
            (lambda: team.permissions.add(view), receives_within),
            (lambda: team.permissions.clear(), stops_within),
            (lambda: team.permissions.add(view), receives_within),
            (lambda: alice.groups.remove(team), stops_within),
        ]
        for change, wait in steps:
            change()
            if wait is not None:
                assert wait(ws, holders) < REFRESH_BOUND


def test_permission_granted_without_a_signal_arrives_with_the_periodic_recheck(
    redis_prefix,
):
    """A permission granted by raw SQL (no signal) takes effect at the next
    periodic re-check."""
    alice = make_user()
    view = auth_permission("view_user")
    through = alice.user_permissions.through
    with (
        WebSocketServerProcess(
            redis_prefix=redis_prefix, env={"NOTIFICATIONS_RECHECK_INTERVAL": "2"}
        ) as server,
        subscriber(server, alice) as ws,
    ):
        through.objects.bulk_create([through(user_id=alice.pk, permission_id=view.pk)])
        started = time.monotonic()
        while not targeted_push_reaches(
            {"me": ws}, "dashboard.counter", live.permission("auth.view_user")
        ):
            assert time.monotonic() - started < 2 + 2, "not re-checked within 2 s"
            time.sleep(0.2)
