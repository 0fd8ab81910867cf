"""
Live events in an htmx site, in real headless Chromium with real htmx (from
the npm registry, never committed): every push and notification is a DOM
event on document.body, once per page however many tabs share the socket,
so a partial refreshes on a push with no JavaScript of the page's; and
hx-boost page swaps keep one bell on one socket.
"""

import pytest

from notifications import live, services
from tests.browser import (
    HTMX,
    base_url,
    browser,
    browser_ws_server,
    count_sockets,
    log_in,
    npm_file,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: What the demo's htmx pages load; the tests answer it from the npm cache.
HTMX_URL = f"https://unpkg.com/{HTMX}/dist/htmx.min.js"

#: Records the page's live DOM events as the page's document sees them.
RECORD_EVENTS = """
window.__live = [];
for (const name of ["live:demo.order", "live:notification"]) {
  document.addEventListener(name, (event) => window.__live.push({
    name,
    detail: event.detail,
    fromBody: event.target === document.body && event.bubbles,
  }));
}
"""


def htmx_context(browser):
    """A browser context whose pages get htmx from the npm cache."""
    script = npm_file(HTMX, "dist/htmx.min.js")
    context = browser.new_context()
    context.route(
        HTMX_URL,
        lambda route: route.fulfill(
            path=str(script),
            content_type="text/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    return context


def open_htmx_page(page, url: str, path: str = "/demo/htmx/"):
    """An htmx page of the demo, once its bell is live; returns the bell."""
    page.goto(f"{url}{path}")
    bell = page.locator("[data-notifications=bell]")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=10_000
    )
    assert page.evaluate("typeof htmx") == "object", "htmx did not load"
    return bell


def test_a_push_refreshes_an_htmx_partial(browser, live_server, browser_ws_server):
    """ "Ship an order" posts with htmx (hx-swap="none"); the demo.order push
    that follows is a live:demo.order event on the body, and the partial
    with hx-trigger="live:demo.order from:body" shows the new count."""
    make_user(username="alice")
    context = htmx_context(browser)
    context.add_init_script(RECORD_EVENTS)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    open_htmx_page(page, url)
    shipped = int(page.inner_text("#orders output"))
    page.click("text=Ship an order")
    page.wait_for_function(
        f"document.querySelector('#orders output')?.textContent === '{shipped + 1}'",
        timeout=3_000,
    )
    [event] = page.evaluate("window.__live")
    assert event == {
        "name": "live:demo.order",
        "detail": {"order": shipped + 1, "status": "shipped"},
        "fromBody": True,
    }
    context.close()


def test_each_tab_dispatches_every_push_and_notification_once(
    browser, live_server, browser_ws_server
):
    """Two tabs sharing one socket: each tab's document hears a push and a
    notification exactly once, with the payload as the event's detail."""
    alice = make_user(username="alice")
    context = htmx_context(browser)
    context.add_init_script(RECORD_EVENTS)
    url = base_url(live_server, "127.0.0.1")
    pages = [context.new_page(), context.new_page()]
    log_in(pages[0], url, "alice")
    for page in pages:
        open_htmx_page(page, url)
        page.evaluate("window.__live.length = 0")

    live.push("demo.order", {"order": 42, "status": "packed"}, to=live.users(alice))
    event = services.send_event(title="Both tabs")
    for page in pages:
        page.wait_for_function("window.__live.length >= 2", timeout=3_000)
    pages[0].wait_for_timeout(500)  # a second copy would have come by now
    for page in pages:
        events = page.evaluate("window.__live")
        assert [e["name"] for e in events] == ["live:demo.order", "live:notification"]
        assert events[0]["detail"] == {"order": 42, "status": "packed"}
        assert events[1]["detail"]["id"] == event.pk
        assert events[1]["detail"]["title"] == "Both tabs"
        assert all(e["fromBody"] for e in events)
    context.close()


def test_hx_boost_navigations_keep_one_socket_and_one_working_bell(
    browser, live_server, browser_ws_server
):
    """Three hx-boost navigations from a page with nothing live but the bell
    swap the body and its bell: the page keeps one bell and the one socket
    it opened, and a notification sent after them shows in the bell, with a
    toast."""
    make_user(username="alice")
    context = htmx_context(browser)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    sockets = count_sockets(page)
    open_htmx_page(page, url, "/demo/htmx/about/")
    page.evaluate("window.__notReloaded = true")
    for heading in ["Orders", "About", "Orders"]:
        page.click(f"nav >> text={heading}")
        page.locator("h1", has_text=heading).wait_for(timeout=5_000)
    assert page.evaluate("window.__notReloaded"), "a link loaded a whole page"

    bell = page.locator("[data-notifications=bell]")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=5_000
    )
    assert page.evaluate("document.querySelectorAll('notifications-bell').length") == 1
    event = services.send_event(title="After three swaps")
    bell.locator(f"li[data-id='{event.pk}']").wait_for(state="attached", timeout=3_000)
    bell.locator(".toast", has_text="After three swaps").wait_for(timeout=2_000)
    assert len(sockets) == 1, "a navigation opened another socket"
    assert not sockets[0].is_closed()
    context.close()
