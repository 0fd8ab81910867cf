"""
Signing out in real headless Chromium when Django redirects the anonymous to
its login page (LoginRequiredMiddleware, a single sign-on proxy): the client
takes a redirect for "signed out" and stops, instead of following it to the
login page's 200 and reconnecting for ever (issue 21).
"""

import time

import pytest
from django.conf import settings
from django.test import override_settings
from pytest_django.live_server_helper import LiveServer

from tests.browser import (
    base_url,
    both_credentials,
    browser,
    browser_ws_server,
    count_sockets,
)
from tests.factories import make_user
from tests.servers import WebSocketServerProcess

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"
#: The issue: after logout the page reconnected every few seconds, for ever.
STOPS_WITHIN = 10.0

# The client's own check, on a page of its own: "/" (the inbox page) sends
# the anonymous to the login page, so it stands for any URL that redirects.
CONNECT_SIGNED_OUT = """({ wsUrl }) => {
  const csrfToken = document.cookie.match(/csrftoken=([^;]+)/)?.[1];
  window.states = [];
  const live = LiveNotifications.connect({ wsUrl, sessionCheckUrl: "/", ticketUrl: "/", csrfToken, share: false });
  live.onState((state, text) => window.states.push([state, text]));
}"""


@both_credentials
def test_a_redirect_from_django_means_signed_out(
    browser, live_server, browser_ws_server, hostname
):
    """Refused at the handshake (same host) the client asks Django, which
    redirects: signed out. Across hosts the ticket request is redirected:
    signed out before any socket. Either way it stops, and says so."""
    page = browser.new_page()
    sockets = count_sockets(page)
    page.goto(f"{base_url(live_server, hostname)}/accounts/login/")
    page.add_script_tag(url="/static/notifications/live.js")
    page.evaluate(CONNECT_SIGNED_OUT, {"wsUrl": browser_ws_server.url})
    page.wait_for_function(
        "window.states.at(-1)?.[0] === 'closed'", timeout=STOPS_WITHIN * 1000
    )
    assert page.evaluate("window.states.at(-1)") == [
        "closed",
        "signed out: log in again",
    ]
    page.wait_for_timeout(2_000)  # longer than the first backoffs
    assert len(sockets) == (1 if hostname == "127.0.0.1" else 0)
    page.close()


@pytest.fixture
def login_required_site(redis_prefix):
    """A live server whose project has LoginRequiredMiddleware (the session's
    live server built its middleware before any override), and a runwsserver
    for its pages. Yields the site's base URL."""
    with override_settings(MIDDLEWARE=[*settings.MIDDLEWARE, LOGIN_REQUIRED]):
        server = LiveServer("127.0.0.1:0")
    try:
        with (
            WebSocketServerProcess(
                redis_prefix=redis_prefix, origins=[server.url]
            ) as ws_server,
            override_settings(NOTIFICATIONS_WS_URL=ws_server.url),
        ):
            yield server.url
    finally:
        server.stop()


def test_after_logout_the_page_stops_reconnecting(browser, login_required_site):
    """With LoginRequiredMiddleware, logging out closes the page's socket and
    the page says "signed out" within 10 s, then opens no other socket."""
    make_user(username="alice")
    page = browser.new_page()
    sockets = count_sockets(page)
    page.goto(f"{login_required_site}/")  # the middleware sends it to log in
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", "correct horse battery staple")
    page.click("button[type=submit]")
    page.wait_for_selector("#connection-state[data-state=live]", timeout=10_000)
    opened = len(sockets)

    # Log out from the page's own script, so the page stays to be watched.
    page.evaluate(
        """async () => {
          const config = JSON.parse(document.getElementById("notifications-config").textContent);
          await fetch("/accounts/logout/", {
            method: "POST", headers: { "X-CSRFToken": config.csrfToken },
          });
        }"""
    )
    started = time.monotonic()
    page.wait_for_selector(
        "#connection-state[data-state=closed]", timeout=STOPS_WITHIN * 1000
    )
    assert time.monotonic() - started < STOPS_WITHIN
    assert page.inner_text("#connection-state") == "signed out: log in again"
    page.wait_for_timeout(3_000)
    assert len(sockets) == opened, "the page reconnected after signing out"
    page.close()
