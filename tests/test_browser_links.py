"""
A notification's link in real headless Chromium: the client applies the rule
notifications/links.py applies on the server, to the same cases, and renders
a link only where the rule allows one.
"""

import pytest

from notifications import services
from notifications.models import Event
from tests.browser import base_url, browser, browser_ws_server, log_in
from tests.factories import make_user
from tests.test_links import LINK_CASES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHECK_CASES = """(cases) => Object.fromEntries(
  cases.map((url) => [url, LiveNotifications.isAllowedLink(url)])
)"""


def test_the_client_allows_the_links_the_server_allows(browser, live_server):
    """links.js answers every case of tests/link_cases.json as links.py does."""
    page = browser.new_page()
    page.goto(f"{base_url(live_server, '127.0.0.1')}/accounts/login/")
    page.add_script_tag(url="/static/notifications/links.js")
    cases = [*LINK_CASES["allowed"], *LINK_CASES["refused"]]
    answers = page.evaluate(CHECK_CASES, cases)
    wrong = {
        url: answer
        for url, answer in answers.items()
        if answer != (url in LINK_CASES["allowed"])
    }
    assert wrong == {}, "links.js disagrees with links.py"
    page.close()


def test_the_feed_links_a_site_path_and_never_a_script(
    browser, live_server, browser_ws_server
):
    """A site-relative link becomes the title's link; a javascript: URL that
    got into the database behind the validator's back is shown as plain text."""
    make_user(username="alice")
    site_path = services.send_event(title="Export ready", url="/exports/42/")
    script = services.send_event(title="Click me")
    Event.objects.filter(pk=script.pk).update(url="javascript:alert(1)")
    page = browser.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    linked = page.locator(f"li.notification[data-id='{site_path.pk}'] h2 a")
    linked.wait_for(timeout=2_000)
    assert linked.get_attribute("href") == "/exports/42/"
    plain = page.locator(f"li.notification[data-id='{script.pk}'] h2")
    assert plain.inner_text() == "Click me"
    assert plain.locator("a").count() == 0, "a javascript: URL became a link"
    page.close()
