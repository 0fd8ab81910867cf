"""
The public API: one import, ``notifications``, that names everything a
project calls and that Django can import before its apps are loaded.
"""

import os
import subprocess
import sys

import pytest

import notifications
from notifications import live, selectors, services
from notifications.models import Event
from tests.factories import make_user
from tests.servers import BASE_DIR


@pytest.mark.once
def test_the_package_imports_before_django_is_set_up():
    """INSTALLED_APPS names the package, and Django imports it before the app
    registry is ready: importing it loads no model, so a project's settings
    (or a script before django.setup()) can import it."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, notifications; "
            "print('models loaded:', 'notifications.models' in sys.modules)",
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "models loaded: False"


@pytest.mark.once
def test_every_public_name_is_importable_from_the_package():
    """`from notifications import notify, push, retract, users, ...` works for
    each name the docs promise, and is the one object of its module: there is
    one way to send, whatever a project imports."""
    for name in notifications.__all__:
        assert getattr(notifications, name) is not None, name
    assert notifications.notify is live.notify
    assert notifications.retract is live.retract
    assert notifications.unread_count is selectors.unread_count
    assert set(notifications.__all__) <= set(dir(notifications))
    with pytest.raises(AttributeError, match="no attribute 'send_event'"):
        notifications.send_event  # noqa: B018


@pytest.mark.once
def test_internal_modules_export_only_what_the_package_does():
    """services and selectors name in __all__ only the functions the package
    re-exports: the ws_server's and the admin's helpers (send_event,
    record_deliveries, missed_event_ids, ...) are not an API."""
    public = set(notifications.__all__)
    for module in (live, services, selectors):
        assert set(module.__all__) <= public, module.__name__


@pytest.mark.django_db
def test_retract_takes_a_notification_back(published):
    """A notification sent with notify() and taken back with retract() leaves
    its recipient's inbox, and its open pages are told once it commits."""
    alice = make_user()
    event_id = notifications.notify("oops", to=notifications.users(alice))
    with published() as messages:
        assert notifications.retract(event_id, by=alice)
    assert selectors.inbox(user_id=alice.pk) == []
    assert [m.event["data"] for m in messages] == [{"ids": [event_id]}]
    assert Event.objects.get(pk=event_id).retracted_by == alice
    assert not notifications.retract(event_id), "already retracted"


@pytest.mark.django_db
def test_retract_refuses_an_id_that_is_no_notification():
    """A push's id, or no event's, raises ValueError naming it rather than
    telling every page to remove something."""
    push_id = notifications.push("demo.order", {}, to=notifications.everyone())
    for event_id in (push_id, 10**9):
        with pytest.raises(ValueError, match=f"no notification has the id {event_id}"):
            notifications.retract(event_id)
