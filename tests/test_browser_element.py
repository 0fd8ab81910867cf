"""
The bell as a custom element in real headless Chromium: its styles kept to
itself on host pages styled with Bootstrap 5.3 and Tailwind (real CSS from
the npm registry, never committed), so the widget's toast shows and the
host's own ``.badge`` and ``.toast`` look the same with and without the
widget; themed by the ``--notifications-*`` custom properties; and set up
on insertion, torn down on removal.
"""

import pytest

from notifications import services
from tests.browser import (
    BOOTSTRAP,
    TAILWIND,
    base_url,
    browser,
    browser_ws_server,
    count_sockets,
    log_in,
    npm_file,
    open_bell,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Each framework's stylesheet and the host's own badge and toast in it.
HOSTS = {
    "bootstrap": (
        (BOOTSTRAP, "dist/css/bootstrap.min.css"),
        '<span id="host-badge" class="badge text-bg-primary">3</span>'
        '<div id="host-toast" class="toast show" role="status">'
        '<div class="toast-body">The host\'s toast</div></div>'
        '<div id="host-hidden-toast" class="toast">Shown on demand</div>',
    ),
    "tailwind": (
        (TAILWIND, "dist/tailwind.min.css"),
        '<span id="host-badge" class="badge bg-blue-500 text-white rounded px-2">3'
        '</span><div id="host-toast" class="toast bg-gray-800 text-white p-4">'
        "The host's toast</div>",
    ),
}

#: Every computed property of the host's own badge and toasts.
HOST_STYLES = """() => Object.fromEntries(
  [...document.querySelectorAll("[id^=host-]")].map((element) => {
    const style = getComputedStyle(element);
    return [element.id, Object.fromEntries([...style].map((p) => [p, style.getPropertyValue(p)]))];
  })
)"""


def open_bell_page(page, url: str):
    """The demo's page with nothing but the bell, once the bell is live."""
    return open_bell(page, f"{url}/demo/bell/")


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_the_widget_and_a_css_framework_leave_each_other_alone(
    browser, live_server, browser_ws_server, host
):
    """On a Bootstrap or Tailwind page the widget's toast is visible (not
    hidden by Bootstrap's .toast:not(.show)), and the host's own .badge and
    .toast have the same computed styles with the widget and without it."""
    make_user(username="alice")
    (package, stylesheet), host_elements = HOSTS[host]
    css = npm_file(package, stylesheet)
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_bell_page(page, url)
    page.add_style_tag(path=str(css))
    page.locator("main").evaluate(
        "(main, html) => main.insertAdjacentHTML('beforeend', html)", host_elements
    )

    services.send_event(title="Styled apart")
    toast = bell.locator(".toast", has_text="Styled apart")
    toast.wait_for(state="visible", timeout=3_000)
    box = toast.bounding_box()
    assert box is not None
    assert box["width"] > 50
    assert box["height"] > 10
    with_widget = page.evaluate(HOST_STYLES)

    bell.evaluate("bell => bell.remove()")
    without_widget = page.evaluate(HOST_STYLES)
    assert with_widget.keys() == without_widget.keys()
    for element, styles in with_widget.items():
        changed = {
            name: (value, without_widget[element][name])
            for name, value in styles.items()
            if without_widget[element][name] != value
        }
        assert changed == {}, f"the widget restyled the host's #{element}"
    page.close()


def test_custom_properties_theme_the_widget(browser, live_server, browser_ws_server):
    """--notifications-accent and --notifications-radius set on the page
    change the badge's colour and the panel's corners."""
    make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_bell_page(page, url)
    badge = bell.locator("[data-role=unread-count]")
    panel = bell.locator("[data-role=panel]")
    background = "element => getComputedStyle(element).backgroundColor"
    radius = "element => getComputedStyle(element).borderTopLeftRadius"
    assert badge.evaluate(background) == "rgb(207, 34, 46)"
    assert panel.evaluate(radius) == "12px"

    page.add_style_tag(
        content="header { --notifications-accent: rgb(1, 2, 3);"
        " --notifications-radius: 7px; }"
    )
    assert badge.evaluate(background) == "rgb(1, 2, 3)"
    assert panel.evaluate(radius) == "7px"
    page.close()


def test_removing_the_bell_lets_its_socket_go_and_putting_it_back_works(
    browser, live_server, browser_ws_server
):
    """Taken out of the page, the bell lets its client go: the socket closes
    after the grace period (5 s). Put back, it connects again and shows the
    next notification."""
    make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    sockets = count_sockets(page)
    bell = open_bell_page(page, url)
    page.evaluate("window.__bell = document.querySelector('notifications-bell')")
    page.evaluate("__bell.remove()")
    page.wait_for_timeout(6_000)
    assert len(sockets) == 1
    assert sockets[0].is_closed(), "the removed bell kept its socket open"

    page.evaluate("document.querySelector('header').append(__bell)")
    bell.locator("[data-role=state][data-state=live]").wait_for(
        state="attached", timeout=10_000
    )
    event = services.send_event(title="Back in place")
    bell.locator(f"li[data-id='{event.pk}']").wait_for(state="attached", timeout=3_000)
    assert bell.locator("li.notification").count() == 1, "an item shown twice"
    assert len([s for s in sockets if not s.is_closed()]) == 1
    page.close()
