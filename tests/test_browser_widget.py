"""
The bell widget in real headless Chromium: relative times, opt-in desktop
notifications, an axe-core audit at phone and desktop widths.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import selectors, services
from notifications.models import Event
from tests.browser import (
    base_url,
    browser,
    browser_ws_server,
    expect,
    log_in,
    open_bell,
    serious_axe_violations,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Counts the desktop notifications the page creates (they are real ones:
#: the browser's own constructor runs), and lets the test say the page is
#: hidden: headless Chromium reports every page visible and focused.
DESKTOP_PROBE = """
(() => {
  const Real = window.Notification;
  window.__desktop = [];
  window.__hidden = false;
  window.Notification = class extends Real {
    constructor(title, options) {
      super(title, options);
      window.__desktop.push(title);
    }
  };
  Object.defineProperty(Document.prototype, "visibilityState", {
    get: () => (window.__hidden ? "hidden" : "visible"),
  });
})();
"""


def open_demo_bell(page, url: str):
    return open_bell(page, f"{url}/demo/live/")


def hide(page, hidden: bool) -> None:
    page.evaluate(
        "hidden => { window.__hidden = hidden;"
        " document.dispatchEvent(new Event('visibilitychange')); }",
        hidden,
    )


def test_desktop_notifications_come_only_after_opting_in(
    browser, live_server, browser_ws_server
):
    """Hidden and not opted in: a toast, no desktop notification. After
    "Desktop notifications: off" is pressed (and the browser grants it),
    a notification arriving while hidden is a desktop notification instead;
    visible, it is a toast again."""
    make_user(username="alice")
    context = browser.new_context(permissions=["notifications"])
    context.add_init_script(DESKTOP_PROBE)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_demo_bell(page, url)
    bell.locator("[data-role=toggle]").click()
    bell.locator("[data-role=settings]").click()  # the gear's menu holds it
    toggle = bell.locator("[data-role=desktop]")
    assert toggle.inner_text() == "Desktop notifications: off"
    assert toggle.get_attribute("aria-pressed") == "false"

    hide(page, True)
    before = services.send_event(title="Before opting in")
    bell.locator(f"li[data-id='{before.pk}']").wait_for(state="attached")
    assert page.evaluate("window.__desktop") == []

    hide(page, False)
    toggle.click()
    expect(toggle).to_have_attribute("aria-pressed", "true", timeout=2_000)
    assert toggle.inner_text() == "Desktop notifications: on"
    hide(page, True)
    toasts = page.locator("[data-notifications=bell] .toast").count()
    hidden_event = services.send_event(title="While you were away", body="v3")
    page.wait_for_function("window.__desktop.length === 1", timeout=2_000)
    assert page.evaluate("window.__desktop") == ["While you were away"]
    assert page.locator("[data-notifications=bell] .toast").count() == toasts
    assert bell.locator(f"li[data-id='{hidden_event.pk}']").count() == 1

    hide(page, False)
    services.send_event(title="Back at the desk")
    page.locator(
        "[data-notifications=bell] .toast", has_text="Back at the desk"
    ).wait_for(timeout=2_000)
    assert page.evaluate("window.__desktop.length") == 1
    context.close()


def test_times_are_relative_with_the_date_on_hover(
    browser, live_server, browser_ws_server
):
    make_user(username="alice")
    old = services.send_event(title="Earlier")
    Event.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    page = browser.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    new = services.send_event(title="Just now")
    fresh = page.locator(f"li[data-id='{new.pk}'] time")
    fresh.wait_for(timeout=2_000)
    assert fresh.inner_text() == "now"
    earlier = page.locator(f"li[data-id='{old.pk}'] time")
    assert earlier.inner_text() == "2 hours ago"
    assert earlier.get_attribute("title"), "the absolute time is on hover"
    page.close()


@pytest.mark.parametrize(
    "viewport",
    [
        pytest.param({"width": 1280, "height": 800}, id="desktop"),
        pytest.param({"width": 390, "height": 844}, id="mobile"),
    ],
)
def test_the_bell_passes_an_axe_audit_and_fits_the_screen(
    browser, live_server, browser_ws_server, viewport
):
    """The demo page with the bell open and a toast showing, at 1,280 and 390
    px: axe-core reports no serious or critical violation, nothing scrolls
    sideways, and the dropdown is on screen."""
    make_user(username="alice")
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    services.send_event(title="Deploy finished", body="Version 2.4 is live.")
    services.send_event(
        title="Build log",
        body="See /var/log/builds/" + "x" * 120 + " for the details of this run.",
    )
    bell = open_demo_bell(page, url)
    shown = services.send_event(
        title="Coffee in the kitchen", body="Fresh pot, second floor."
    )
    bell.locator("[data-role=toggle]").click()
    bell.locator(f"li[data-id='{shown.pk}']").wait_for(timeout=2_000)
    page.locator("[data-notifications=bell] .toast").first.wait_for(timeout=2_000)

    assert serious_axe_violations(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    panel = bell.locator("[data-role=panel]").bounding_box()
    assert panel["x"] >= 0, "the dropdown starts off the left edge"
    assert panel["x"] + panel["width"] <= viewport["width"]
    context.close()


def test_following_a_notification_link_marks_it_read(
    browser, live_server, browser_ws_server
):
    """Clicking a notification's title opens its URL and marks it read."""
    alice = make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_demo_bell(page, url)
    event = services.send_event(title="Your report", url=f"{url}/demo/live/")
    bell.locator("[data-role=toggle]").click()
    bell.locator(f"li[data-id='{event.pk}'] h2 a").click()
    page.wait_for_url("**/demo/live/")
    deadline = time.monotonic() + 3
    while selectors.unread_count(user_id=alice.pk):
        assert time.monotonic() < deadline, "following the link left it unread"
        time.sleep(0.1)
    page.close()
