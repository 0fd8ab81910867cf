"""
The event admin's list and actions: what "send again" reports when it
can't, what the changelist costs, and how an admin picks users.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from notifications import services
from notifications.models import Audience, Event
from tests.admins import NameOnlyUserAdmin, registered_admin
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def admin_url(view: str, *args: object) -> str:
    """The URL of one of the event admin's views, whatever the app's label."""
    opts = Event._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def browser() -> Client:
    browser = Client()
    browser.force_login(make_user(staff=True, is_superuser=True))
    return browser


def test_send_again_reports_the_events_whose_recipients_were_deleted(browser):
    """'Send again' on an event whose users were all deleted, beside one that
    can be sent, sends the second and says the first was not sent, and why."""
    gone = make_user()
    lost = services.send_event(
        title="To a deleted user", audience=Audience.USERS, users=[gone]
    )
    kept = services.send_event(title="To everyone", audience=Audience.EVERYONE)
    gone.delete()
    response = browser.post(
        admin_url("changelist"),
        {"action": "send_again", "_selected_action": [lost.pk, kept.pk]},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(message) for message in response.context["messages"]]
    assert f"Event {lost.pk} “To a deleted user” was not sent again: " in shown[0]
    assert "Choose at least one user for this audience." in shown[0]
    assert "Sent 1 event again." in shown
    assert Event.objects.filter(title="To everyone").count() == 2
    assert Event.objects.filter(title="To a deleted user").count() == 1


def changelist_queries(browser: Client, count: int) -> int:
    """Queries of the event changelist once it shows ``count`` events, each
    sent to a group by a sender of its own and retracted by them."""
    for number in range(count - Event.objects.filter(push_type="").count()):
        sender = make_user(staff=True)
        event = services.send_event(
            title=f"Event {number}",
            audience=Audience.GROUPS,
            groups=[make_group()],
            created_by=sender,
        )
        services.retract_event(event=event, by=sender)
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(admin_url("changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count == count
    return len(queries)


def test_the_changelist_costs_the_same_queries_for_5_and_20_events(browser):
    """Listing 20 events, each with its sender and retractor, makes as many
    queries as listing 5."""
    assert changelist_queries(browser, 5) == changelist_queries(browser, 20)


def user_search_url(browser: Client) -> str:
    """The search URL the add form's user picker asks, as the page names it."""
    page = browser.get(admin_url("add")).content.decode()
    [select] = re.findall(r'<select[^>]*name="users"[^>]*>', page)
    [url] = re.findall(r'data-ajax--url="([^"]+)"', select)
    return url


def test_users_are_found_by_username_and_email_whatever_the_user_admin_searches(
    browser,
):
    """With a user admin that searches first names only, the event form's
    user picker still finds a user by part of the username or the email."""
    target = make_user(username="grace.hopper", email="amazing@navy.example")
    make_user(username="someone-else", email="other@example.com")
    with registered_admin(get_user_model(), NameOnlyUserAdmin):
        url = user_search_url(browser)
        params = {
            "app_label": Event._meta.app_label,
            "model_name": Event._meta.model_name,
            "field_name": "users",
        }

        def found(term: str) -> list[str]:
            response = browser.get(url, {**params, "term": term})
            assert response.status_code == 200
            return [result["id"] for result in response.json()["results"]]

        assert found("hopper") == [str(target.pk)]
        assert found("navy.example") == [str(target.pk)]


def test_the_user_search_needs_the_add_permission():
    """Staff who can't send events get 403 from the user search."""
    staff = make_user(staff=True)
    browser = Client()
    browser.force_login(staff)
    assert browser.get(admin_url("users"), {"term": "a"}).status_code == 403
