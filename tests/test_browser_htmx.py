"""
Live events in htmx and Turbo sites, in real headless Chromium with real
htmx and Turbo (from the npm registry, never committed): every push and
notification is a DOM event on document.body, once per page however many
tabs share the socket, so a partial refreshes on a push with no JavaScript
of the page's; and page swaps (hx-boost, Turbo Drive, Back) keep one bell
on one socket.
"""

import pytest

from notifications import live, services
from tests.browser import (
    HTMX,
    TURBO,
    base_url,
    browser,
    browser_ws_server,
    count_sockets,
    log_in,
    npm_file,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: What the demo's pages load from a CDN (the script, and the global it
#: defines); the tests answer it from the npm cache.
LIBRARIES = {
    "htmx": (HTMX, "dist/htmx.min.js", "htmx"),
    "turbo": (TURBO, "dist/turbo.es2017-umd.js", "Turbo"),
}


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


def library_context(browser, library: str = "htmx"):
    """A browser context whose pages get ``library`` from the npm cache."""
    spec, path, _name = LIBRARIES[library]
    script = npm_file(spec, path)
    context = browser.new_context()
    context.route(
        f"https://unpkg.com/{spec}/{path}",
        lambda route: route.fulfill(
            path=str(script),
            content_type="text/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        ),
    )
    return context


def open_demo_page(page, url: str, library: str = "htmx", about: bool = False):
    """A page of the demo's ``library`` site, once its bell is live; returns
    the bell."""
    page.goto(f"{url}/demo/{library}/{'about/' if about else ''}")
    bell = page.locator("[data-notifications=bell]")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=10_000
    )
    name = LIBRARIES[library][2]
    assert page.evaluate(f"typeof {name}") == "object", f"{name} did not load"
    return bell


def test_a_push_refreshes_an_htmx_partial(browser, live_server, browser_ws_server):
    """ "Ship an order" posts with htmx (hx-swap="none"); the demo.order push
    that follows is a live:demo.order event on the body, and the partial
    with hx-trigger="live:demo.order from:body" shows the new count."""
    make_user(username="alice")
    context = library_context(browser)
    context.add_init_script(RECORD_EVENTS)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    open_demo_page(page, url)
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
    context = library_context(browser)
    context.add_init_script(RECORD_EVENTS)
    url = base_url(live_server, "127.0.0.1")
    pages = [context.new_page(), context.new_page()]
    log_in(pages[0], url, "alice")
    for page in pages:
        open_demo_page(page, url)
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


@pytest.mark.parametrize("library", sorted(LIBRARIES))
def test_page_swaps_keep_one_socket_and_one_working_bell(
    browser, live_server, browser_ws_server, library
):
    """Three navigations that swap the body and its bell (htmx hx-boost,
    Turbo Drive), from a page with nothing live but the bell, then Back (a
    page restored from the library's history copy, which has no shadow
    root): the page keeps one bell and the one socket it opened, and a
    notification sent after each shows in the bell, with a toast."""
    make_user(username="alice")
    context = library_context(browser, library)
    page = context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    sockets = count_sockets(page)
    open_demo_page(page, url, library, about=True)
    page.evaluate("window.__notReloaded = true")
    for heading in ["Orders", "About", "Orders"]:
        page.click(f"nav >> text={heading}")
        page.locator("h1", has_text=heading).wait_for(timeout=5_000)
        wait_for_the_fresh_page(page)
    assert_one_working_bell(page, sockets, "After three swaps")
    page.go_back()
    page.locator("h1", has_text="About").wait_for(timeout=5_000)
    wait_for_the_fresh_page(page)
    assert_one_working_bell(page, sockets, "After going back")
    assert page.evaluate("window.__notReloaded"), "a link loaded a whole page"
    context.close()


def wait_for_the_fresh_page(page) -> None:
    """Turbo shows a page it visited before from its cache, then the fresh
    one: a notification sent in between shows in the list, without a toast."""
    page.wait_for_function(
        "!document.documentElement.hasAttribute('data-turbo-preview')",
        timeout=5_000,
    )


def assert_one_working_bell(page, sockets: list, title: str) -> None:
    """One live bell on the page shows a notification sent now, with a
    toast, and the page still has the one socket it opened."""
    bell = page.locator("[data-notifications=bell]")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=5_000
    )
    assert page.evaluate("document.querySelectorAll('notifications-bell').length") == 1
    event = services.send_event(title=title)
    bell.locator(f"li[data-id='{event.pk}']").wait_for(state="attached", timeout=3_000)
    bell.locator(".toast", has_text=title).wait_for(timeout=2_000)
    assert len(sockets) == 1, "a navigation opened another socket"
    assert not sockets[0].is_closed()
