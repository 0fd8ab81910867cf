"""
A notification's link: an http(s) URL or a path on the site, nothing else,
whichever way the event is sent (notify(), send_event(), the admin).
"""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from notifications import live, services
from notifications.links import validate_link
from notifications.models import Event
from tests.factories import make_user

#: The cases the browser client is tested with too (tests/test_browser_links.py).
LINK_CASES = json.loads(
    (Path(__file__).with_name("link_cases.json")).read_text(encoding="utf-8")
)


@pytest.mark.parametrize("url", LINK_CASES["allowed"])
def test_allowed_links_pass(url):
    """Absolute http(s) URLs and site paths are links."""
    validate_link(url)


@pytest.mark.parametrize("url", LINK_CASES["refused"])
def test_other_links_are_refused(url):
    """Other schemes, protocol-relative URLs and anything with whitespace aren't."""
    with pytest.raises(ValidationError) as caught:
        validate_link(url)
    assert caught.value.code == "invalid_link"


@pytest.mark.django_db
def test_notify_takes_a_site_relative_link():
    """notify(url="/exports/42/") sends the event with that link (issue 21)."""
    alice = make_user()
    event_id = live.notify(
        "Your export is ready", url="/exports/42/", to=live.users(alice)
    )
    assert Event.objects.get(pk=event_id).url == "/exports/42/"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "//evil.example/", "data:text/html,x"]
)
def test_send_event_refuses_a_link_that_is_not_one(url):
    """The service refuses a dangerous link before anything is written."""
    with pytest.raises(ValidationError) as caught:
        services.send_event(title="Click me", url=url)
    assert "url" in caught.value.message_dict
    assert not Event.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("/exports/42/", "/exports/42/"),
        ("example.com/exports/", "https://example.com/exports/"),
    ],
)
def test_the_admin_form_takes_site_paths_and_bare_host_names(typed, saved):
    """The admin's link field keeps a site path as it is and still reads a
    bare host name as https."""
    browser = Client()
    browser.force_login(make_user(staff=True, is_superuser=True))
    form = {"title": "Coffee", "level": "info", "audience": "everyone", "url": typed}
    response = browser.post("/admin/live_notifications/event/send-test/", form)
    assert response.status_code == 200, response.content
    assert Event.objects.get().url == saved


@pytest.mark.django_db
def test_the_admin_form_refuses_a_protocol_relative_link():
    """The admin shows the link rule as a form error."""
    browser = Client()
    browser.force_login(make_user(staff=True, is_superuser=True))
    form = {"title": "x", "level": "info", "audience": "everyone", "url": "//x.example"}
    response = browser.post("/admin/live_notifications/event/preview/", form)
    assert response.status_code == 400
    [error] = response.json()["errors"]["url"]
    assert error["code"] == "invalid_link"
