"""
The event admin in real headless Chromium: an admin picks recipients in
the add form's user picker, as a person would, and sends.
"""

import pytest
from django.contrib.auth import get_user_model

from notifications.models import Event, Notification
from tests.admins import NameOnlyUserAdmin, registered_admin
from tests.browser import PASSWORD, base_url, browser
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_picks_a_user_by_username_whatever_the_user_admin_searches(
    browser, live_server
):
    """With a user admin that searches first names only, typing part of a
    username in the event form's user picker offers that user; picked and
    sent, the event reaches them alone."""
    grace = make_user(username="grace.hopper")
    make_user(username="someone-else")
    make_user(username="admin", staff=True, is_superuser=True)
    opts = Event._meta
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    with registered_admin(get_user_model(), NameOnlyUserAdmin):
        page.goto(f"{url}/admin/login/?next=/admin/{opts.app_label}/event/add/")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.fill("input[name=title]", "Picked by username")
        page.select_option("select[name=audience]", "users")
        page.click("select[name=users] + .select2")
        page.keyboard.type("hopper")
        option = page.locator(".select2-results__option", has_text="grace.hopper")
        option.wait_for(timeout=5_000)
        option.click()
        page.click("input[name=_save]")
        page.wait_for_url(f"**/admin/{opts.app_label}/event/")
    event = Event.objects.get(title="Picked by username")
    assert list(event.users.all()) == [grace]
    assert list(Notification.objects.values_list("user", flat=True)) == [grace.pk]
    page.close()
