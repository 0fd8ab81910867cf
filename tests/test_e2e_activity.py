"""
End to end: an admin acts in the Django admin over HTTP; the users who may
view the model receive an ``activity`` push live, and nobody else does.
"""

import io
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.test import Client, override_settings

from tests.clients import subscriber
from tests.factories import make_group, make_user
from tests.pushes import SENTINEL, next_push, reached_by, seconds_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: How long a permission change may take to reach open connections.
REFRESH_BOUND = 1.5


@pytest.fixture(autouse=True)
def event_types():
    with override_settings(NOTIFICATIONS_EVENT_TYPES={SENTINEL: {"delivery": "live"}}):
        yield


@pytest.fixture
def admin_browser() -> Client:
    admin = make_user(username="the-admin", staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    return browser


def auth_permission(codename: str) -> Permission:
    return Permission.objects.get(content_type__app_label="auth", codename=codename)


def adds_a_group(browser: Client) -> Callable[[], None]:
    """An admin action over HTTP: the add form of auth.Group, saved."""

    def act() -> None:
        name = f"made-{time.monotonic_ns()}"
        response = browser.post("/admin/auth/group/add/", {"name": name})
        assert response.status_code == 302, response.content[:500]

    return act


def test_admin_action_reaches_the_viewers_of_its_model_within_a_second(
    ws_server, admin_browser
):
    """Holders of the view permission (directly), of the change permission
    (through a group), and superusers get the activity frame within 1 s;
    a user without either gets nothing."""
    editors = make_group()
    editors.permissions.add(auth_permission("change_group"))
    viewer, editor = make_user(), make_user(groups=(editors,))
    viewer.user_permissions.add(auth_permission("view_group"))
    root, outsider = make_user(is_superuser=True), make_user()
    with (
        subscriber(ws_server, viewer) as viewer_ws,
        subscriber(ws_server, editor) as editor_ws,
        subscriber(ws_server, root) as root_ws,
        subscriber(ws_server, outsider) as outsider_ws,
    ):
        clients = {
            "viewer": viewer_ws,
            "editor": editor_ws,
            "root": root_ws,
            "outsider": outsider_ws,
        }
        started = time.monotonic()
        reached = reached_by(clients, adds_a_group(admin_browser), "activity")
        elapsed = time.monotonic() - started
    assert set(reached) == {"viewer", "editor", "root"}
    assert elapsed < 1.0
    group = Group.objects.latest("pk")
    frame = reached["viewer"]
    assert isinstance(frame["id"], int), "activity is durable"
    assert frame["data"] | {"time": None} == {
        "content_type": "auth.group",
        "object_id": str(group.pk),
        "object_repr": group.name,
        "action": "add",
        "change_message": "Added.",
        "time": None,
        "user": {"id": frame["data"]["user"]["id"], "username": "the-admin"},
        "admin_url": f"/admin/auth/group/{group.pk}/change/",
    }


def test_granting_and_revoking_the_permission_changes_the_stream_live(
    ws_server, admin_browser
):
    """Granting the view permission (directly, then through a group) makes the
    next admin action arrive without reconnecting; revoking it stops them."""
    alice = make_user()
    view = auth_permission("view_group")
    readers = make_group()
    act = adds_a_group(admin_browser)
    with subscriber(ws_server, alice) as ws:
        assert not reached_by({"alice": ws}, act, "activity")
        steps = [
            (lambda: alice.user_permissions.add(view), True),
            (lambda: alice.user_permissions.remove(view), False),
            (lambda: readers.permissions.add(view), None),
            (lambda: alice.groups.add(readers), True),
            (lambda: readers.permissions.remove(view), False),
        ]
        for change, reached in steps:
            change()
            if reached is not None:
                took = seconds_until(
                    ws, act, "activity", reached=reached, bound=REFRESH_BOUND
                )
                assert took < REFRESH_BOUND


def test_a_multi_object_delete_streams_every_entry(ws_server, admin_browser):
    """The admin's "delete selected" on three groups (Django bulk-creates its
    three log entries, with no post_save): a viewer gets three delete frames,
    an outsider none."""
    groups = [make_group() for _ in range(3)]
    viewer, outsider = make_user(), make_user()
    viewer.user_permissions.add(auth_permission("view_group"))
    with (
        subscriber(ws_server, viewer) as viewer_ws,
        subscriber(ws_server, outsider) as outsider_ws,
    ):
        response = admin_browser.post(
            "/admin/auth/group/",
            {
                "action": "delete_selected",
                "_selected_action": [group.pk for group in groups],
                "post": "yes",
            },
        )
        assert response.status_code == 302, response.content[:500]
        frames = [next_push(viewer_ws) for _ in groups]
        assert not reached_by({"outsider": outsider_ws}, lambda: None, "activity")
    assert not Group.objects.filter(pk__in=[group.pk for group in groups]).exists()
    assert sorted(
        (frame["name"], frame["data"]["action"], frame["data"]["object_id"])
        for frame in frames
    ) == sorted(("activity", "delete", str(group.pk)) for group in groups)


def test_resume_replays_the_activity_missed(ws_server, admin_browser):
    """Activity is durable: a viewer reconnecting from its cursor is replayed
    the admin actions it missed."""
    viewer = make_user()
    viewer.user_permissions.add(auth_permission("view_group"))
    with subscriber(ws_server, viewer) as ws:
        cursor = ws.welcome["cursor"]
    adds_a_group(admin_browser)()
    with subscriber(ws_server, viewer, last_id=cursor) as ws:
        replayed = [frame["data"]["action"] for frame in ws.replayed]
    assert replayed == ["add"]


def test_activity_page_lists_only_what_the_user_may_view(admin_browser):
    """The activity page's history shows the actions on models the user may
    view, and not the others."""
    adds_a_group(admin_browser)()
    admin_browser.post(
        "/admin/notifications/event/add/",
        {"title": "kept from viewers", "level": "info", "audience": "everyone"},
    )
    viewer = make_user()
    viewer.user_permissions.add(auth_permission("view_group"))
    browser = Client()
    browser.force_login(viewer)
    page = browser.get("/activity/").content.decode()
    assert "the-admin add auth.group" in page
    assert "kept from viewers" not in page


def test_streaming_bulk_entries_leaves_the_admin_migrations_alone():
    """Wrapping LogEntryManager.log_actions (not swapping the manager) keeps
    makemigrations from seeing a changed manager in Django's own admin app."""
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
