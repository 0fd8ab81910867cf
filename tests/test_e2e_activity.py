"""
End to end: an admin acts in the Django admin over HTTP; the users who may
view the model receive an ``activity`` push live, and nobody else does.
"""

import io
import logging
import time
from collections.abc import Callable

import pytest
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db.models import Q
from django.test import Client, override_settings
from django.urls import reverse

from notifications.broker import get_redis
from notifications.models import Event
from tests.admins import deletes_selected, registered_admin
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


def adds_a_group(browser: Client, prefix: str = "made") -> Callable[[], None]:
    """An admin action over HTTP: the add form of auth.Group, saved."""

    def act() -> None:
        name = f"{prefix}-{time.monotonic_ns()}"
        response = browser.post("/admin/auth/group/add/", {"name": name})
        assert response.status_code == 302, response.content[:500]

    return act


def activity_page_of(user) -> str:
    """The /activity/ page as ``user`` gets it (its history)."""
    browser = Client()
    browser.force_login(user)
    response = browser.get("/activity/")
    assert response.status_code == 200
    return response.content.decode()


def test_admin_action_reaches_the_viewers_of_its_model_within_a_second(
    ws_server, admin_browser
):
    """Staff holding the view permission (directly), the change permission
    (through a group), and staff superusers get the activity frame within
    1 s; staff without either get nothing."""
    editors = make_group()
    editors.permissions.add(auth_permission("change_group"))
    viewer, editor = make_user(staff=True), make_user(staff=True, groups=(editors,))
    viewer.user_permissions.add(auth_permission("view_group"))
    root = make_user(staff=True, is_superuser=True)
    outsider = make_user(staff=True)
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
        "change_message_data": [{"added": {}}],
        "time": None,
        "user": {"id": frame["data"]["user"]["id"], "username": "the-admin"},
        "admin_url": f"/admin/auth/group/{group.pk}/change/",
    }


def test_granting_and_revoking_the_permission_changes_the_stream_live(
    ws_server, admin_browser
):
    """Granting the view permission (directly, then through a group) makes the
    next admin action arrive without reconnecting; revoking it stops them."""
    alice = make_user(staff=True)
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
    viewer, outsider = make_user(staff=True), make_user(staff=True)
    viewer.user_permissions.add(auth_permission("view_group"))
    with (
        subscriber(ws_server, viewer) as viewer_ws,
        subscriber(ws_server, outsider) as outsider_ws,
    ):
        deletes_selected(admin_browser, groups)
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
    viewer = make_user(staff=True)
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
        reverse(f"admin:{Event._meta.app_label}_event_add"),
        {"title": "kept from viewers", "level": "info", "audience": "everyone"},
    )
    viewer = make_user(staff=True)
    viewer.user_permissions.add(auth_permission("view_group"))
    page = activity_page_of(viewer)
    assert "the-admin added group “made-" in page
    assert "kept from viewers" not in page


def test_streaming_bulk_entries_leaves_the_admin_migrations_alone():
    """Wrapping LogEntryManager.log_actions (not swapping the manager) keeps
    makemigrations from seeing a changed manager in Django's own admin app."""
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_the_stream_is_off_unless_the_setting_turns_it_on(ws_server, admin_browser):
    """Without NOTIFICATIONS_ACTIVITY a staff superuser's page gets no
    activity frame for an admin action, and /activity/ is not found."""
    root = make_user(staff=True, is_superuser=True)
    with (
        override_settings(NOTIFICATIONS_ACTIVITY=False),
        subscriber(ws_server, root) as ws,
    ):
        assert not reached_by({"root": ws}, adds_a_group(admin_browser), "activity")
        browser = Client()
        browser.force_login(root)
        assert browser.get("/activity/").status_code == 404


def test_a_permission_holder_who_is_not_staff_sees_no_activity(
    ws_server, admin_browser
):
    """A non-staff holder of auth.view_user, whom the admin turns away, gets
    no frame for an admin's edit of a user and a 403 at /activity/; a staff
    holder gets the frame and the history."""
    view_user = auth_permission("view_user")
    holder, staff_holder = make_user(), make_user(staff=True)
    for user in (holder, staff_holder):
        user.user_permissions.add(view_user)
    edited = make_user(username="edited-user")

    def edits_a_user() -> None:
        response = admin_browser.post(
            f"/admin/auth/user/{edited.pk}/change/",
            {
                "username": edited.username,
                "first_name": f"Renamed {time.monotonic_ns()}",
                "date_joined_0": "2026-01-01",
                "date_joined_1": "00:00:00",
                "is_active": "on",
            },
        )
        assert response.status_code == 302, response.content[:500]

    with (
        subscriber(ws_server, holder) as holder_ws,
        subscriber(ws_server, staff_holder) as staff_ws,
    ):
        reached = reached_by(
            {"holder": holder_ws, "staff": staff_ws}, edits_a_user, "activity"
        )
    assert set(reached) == {"staff"}
    assert reached["staff"]["data"]["object_repr"] == "edited-user"
    browser = Client()
    browser.force_login(holder)
    assert browser.get("/activity/").status_code == 403
    assert "edited-user" in activity_page_of(staff_holder)


class OwnGroupsAdmin(GroupAdmin):
    """A multi-tenant admin: staff see the groups named after them."""

    def get_queryset(self, request):
        groups = super().get_queryset(request)
        if request.user.is_superuser:
            return groups
        return groups.filter(name__startswith=f"{request.user.get_username()}-")


def test_a_restricting_model_admin_hides_the_rows_a_viewer_cannot_see(
    ws_server, admin_browser
):
    """With a ModelAdmin whose get_queryset shows staff only their own
    groups, each staff viewer gets the activity of their groups only (adds,
    then a "delete selected" of both), a staff superuser everyone's, and
    /activity/ lists the same."""
    view_group = auth_permission("view_group")
    alice = make_user(username="alice", staff=True)
    bob = make_user(username="bob", staff=True)
    for user in (alice, bob):
        user.user_permissions.add(view_group)
    root = make_user(staff=True, is_superuser=True)
    with (
        registered_admin(Group, OwnGroupsAdmin),
        subscriber(ws_server, alice) as alice_ws,
        subscriber(ws_server, bob) as bob_ws,
        subscriber(ws_server, root) as root_ws,
    ):
        clients = {"alice": alice_ws, "bob": bob_ws, "root": root_ws}
        for owner in ("alice", "bob"):
            reached = reached_by(
                clients, adds_a_group(admin_browser, owner), "activity"
            )
            assert set(reached) == {owner, "root"}
        assert "alice-" in activity_page_of(alice)
        assert "bob-" not in activity_page_of(alice)
        groups = list(
            Group.objects.filter(
                Q(name__startswith="alice-") | Q(name__startswith="bob-")
            )
        )
        deletes_selected(admin_browser, groups)
        alice_saw, bob_saw = (
            next_push(ws)["data"]["object_repr"] for ws in (alice_ws, bob_ws)
        )
        root_saw = sorted(next_push(root_ws)["data"]["object_repr"] for _ in groups)
        assert not reached_by(
            {"alice": alice_ws, "bob": bob_ws}, lambda: None, "activity"
        )
    assert alice_saw.startswith("alice-")
    assert bob_saw.startswith("bob-")
    assert root_saw == sorted(group.name for group in groups)


def test_a_payload_over_the_limit_never_fails_the_admins_save(admin_browser, caplog):
    """With NOTIFICATIONS_PUSH_MAX_BYTES too small for any activity, the
    admin's add still redirects and the group is saved; the log says the
    activity was not streamed."""
    with (
        override_settings(NOTIFICATIONS_PUSH_MAX_BYTES=50),
        caplog.at_level(logging.ERROR, logger="notifications.activity"),
    ):
        adds_a_group(admin_browser, "kept")()
    assert Group.objects.filter(name__startswith="kept-").exists()
    assert not Event.objects.filter(push_type="activity").exists()
    assert "admin activity not streamed" in caplog.text


def test_redis_down_never_fails_the_admins_save(admin_browser, caplog):
    """With nothing listening at the Redis URL, the admin's add still
    redirects, the group and its activity row are saved (the ws_server
    reconciles it), and the log says the publish failed."""
    get_redis.cache_clear()
    try:
        with (
            override_settings(NOTIFICATIONS_REDIS_URL="redis://127.0.0.1:9/0"),
            caplog.at_level(logging.WARNING, logger="notifications.publishing"),
        ):
            adds_a_group(admin_browser, "offline")()
    finally:
        get_redis.cache_clear()
    assert Group.objects.filter(name__startswith="offline-").exists()
    assert Event.objects.filter(push_type="activity").exists()
    assert "not published" in caplog.text
