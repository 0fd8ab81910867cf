"""
The admin's "before sending" views: the audience's size and the
notification as a recipient sees it, and a test sent to the admin alone.
"""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from notifications.models import Event, Notification
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/live_notifications/event/preview/"
SEND_TEST = "/admin/live_notifications/event/send-test/"


@pytest.fixture
def admin_browser() -> tuple[Client, object]:
    admin = make_user(staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    return browser, admin


def form(**fields: object) -> dict[str, object]:
    return {"title": "Coffee", "body": "In the kitchen", "level": "info", **fields}


def test_preview_counts_the_active_users_the_audience_resolves_to(admin_browser):
    """The preview says how many active users the form's audience reaches and
    shows the notification's fields, without sending anything."""
    browser, _admin = admin_browser
    team = make_group()
    make_user(groups=(team,)), make_user(groups=(team,))
    make_user(groups=(team,), is_active=False)
    response = browser.post(PREVIEW, form(audience="groups", groups=[team.pk]))
    assert response.status_code == 200
    assert response.json() == {
        "recipients": 2,
        "notification": {
            "title": "Coffee",
            "body": "In the kitchen",
            "level": "info",
            "url": "",
        },
    }
    assert not Event.objects.exists()


def test_preview_of_a_permission_audience(admin_browser):
    """Holders through a group and superusers (the admin) count."""
    browser, _admin = admin_browser
    view = Permission.objects.get(codename="view_group")
    readers = make_group()
    readers.permissions.add(view)
    make_user(groups=(readers,))
    response = browser.post(
        PREVIEW, form(audience="permissions", permissions=[view.pk])
    )
    assert response.json()["recipients"] == 2


def test_an_invalid_form_is_refused_with_its_errors(admin_browser):
    """An audience naming nobody gets 400 and the form's message."""
    browser, _admin = admin_browser
    response = browser.post(PREVIEW, form(audience="groups"))
    assert response.status_code == 400
    [error] = response.json()["errors"]["groups"]
    assert error["message"] == "Choose at least one group for this audience."


def test_send_test_reaches_the_admin_alone(admin_browser, published):
    """'Send a test to myself' sends the same notification to the admin only."""
    browser, admin = admin_browser
    make_user()
    with published():
        response = browser.post(SEND_TEST, form(audience="everyone"))
    event = Event.objects.get(pk=response.json()["sent"])
    assert event.title == "Coffee"
    assert list(Notification.objects.values_list("user_id", flat=True)) == [admin.pk]


def test_the_views_need_the_add_permission():
    """Staff without the add permission get 403; anonymous users the login page."""
    staff = make_user(staff=True)
    browser = Client()
    assert browser.post(PREVIEW, form()).status_code == 302
    browser.force_login(staff)
    assert browser.post(PREVIEW, form()).status_code == 403
    assert browser.post(SEND_TEST, form()).status_code == 403
