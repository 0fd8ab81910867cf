"""
Several tabs of one browser in real headless Chromium: they share one
WebSocket (Web Locks leader, BroadcastChannel), hand it over when the leader
tab closes, alert the person in one tab only, and agree on read state and on
signing out.
"""

import time
from dataclasses import dataclass, field

import pytest

from notifications import services
from tests.browser import (
    base_url,
    browser,
    browser_ws_server,
    log_in,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Leader election and handover are the browser's; connecting is ours.
HANDOVER_BOUND = 1.0


@dataclass
class Sockets:
    """The WebSockets a set of pages opened, as Playwright reports them."""

    opened: list = field(default_factory=list)  # (page, socket)
    welcomed_at: dict = field(default_factory=dict)  # socket -> monotonic time

    def watch(self, page) -> None:
        def opened(socket) -> None:
            self.opened.append((page, socket))
            socket.on("framereceived", lambda payload: self._received(socket, payload))

        page.on("websocket", opened)

    def _received(self, socket, payload) -> None:
        if '"type": "welcome"' in str(payload) or '"type":"welcome"' in str(payload):
            self.welcomed_at.setdefault(socket, time.monotonic())

    def open(self) -> list:
        return [
            (page, socket)
            for page, socket in self.opened
            if not (page.is_closed() or socket.is_closed())
        ]


def open_tabs(browser, live_server, count: int):
    """Log in in the first tab and open the inbox in the others."""
    context = browser.new_context()
    sockets = Sockets()
    pages = []
    url = base_url(live_server, "127.0.0.1")
    for n in range(count):
        page = context.new_page()
        sockets.watch(page)
        if n == 0:
            log_in(page, url, "alice")
        else:
            page.goto(f"{url}/")
            page.wait_for_selector("#connection-state[data-state=live]", timeout=5_000)
        pages.append(page)
    return context, pages, sockets


def settle(page, seconds: float = 0.3) -> None:
    """Let Playwright's events (sockets, frames) reach Python."""
    page.wait_for_timeout(seconds * 1000)


def test_three_tabs_share_one_socket_and_the_leader_hands_over_within_a_second(
    browser, live_server, browser_ws_server
):
    """Three tabs, one WebSocket; a notification shows in all three with one
    toast; closing the leader tab gives the socket to another within 1 s,
    and what is sent next still reaches both."""
    alice = make_user(username="alice")
    since = len(browser_ws_server.lines)
    context, pages, sockets = open_tabs(browser, live_server, 3)
    settle(pages[0])
    [(leader, _socket)] = sockets.open()
    assert len(sockets.opened) == 1, "a follower tab opened a socket of its own"
    authenticated = [
        line
        for line in browser_ws_server.lines[since:]
        if f"authenticated user {alice.pk}" in line
    ]
    assert len(authenticated) == 1, authenticated

    first = services.send_event(title="For every tab")
    for page in pages:
        page.locator(f"li[data-id='{first.pk}']").wait_for(timeout=2_000)
    settle(pages[0], 0.2)
    toasts = [page.locator(".toast").count() for page in pages]
    assert sum(toasts) == 1, f"toasts per tab: {toasts}"

    closed_at = time.monotonic()
    leader.close()
    followers = [page for page in pages if page is not leader]
    deadline = closed_at + 5
    while not [s for page, s in sockets.open() if page in followers]:
        assert time.monotonic() < deadline, "no tab took the socket over"
        settle(followers[0], 0.05)
    [(new_leader, socket)] = sockets.open()
    while socket not in sockets.welcomed_at:
        assert time.monotonic() < deadline, "the new leader was never welcomed"
        settle(new_leader, 0.05)
    assert sockets.welcomed_at[socket] - closed_at < HANDOVER_BOUND

    second = services.send_event(title="After the handover")
    for page in followers:
        page.locator(f"li[data-id='{second.pk}']").wait_for(timeout=2_000)
    assert len(sockets.open()) == 1
    context.close()


def test_mark_read_in_one_tab_updates_the_others(
    browser, live_server, browser_ws_server
):
    """A follower's Mark read travels through the leader's socket; every tab
    shows it read and the same count."""
    make_user(username="alice")
    context, pages, sockets = open_tabs(browser, live_server, 2)
    settle(pages[0])
    [(leader, _socket)] = sockets.open()
    follower = next(page for page in pages if page is not leader)
    event = services.send_event(title="Read me")
    for page in pages:
        page.locator(f"li[data-id='{event.pk}'].unread").wait_for(timeout=2_000)

    follower.locator(f"li[data-id='{event.pk}'] button.mark-read").click()
    for page in pages:
        page.wait_for_function(
            "document.querySelector('#unread-count').textContent === '0'",
            timeout=2_000,
        )
        assert page.locator(f"li[data-id='{event.pk}'].unread").count() == 0
    assert len(sockets.opened) == 1, "the follower fell back to a socket of its own"
    context.close()


def test_logging_out_in_one_tab_signs_out_the_others(
    browser, live_server, browser_ws_server
):
    """The server closes the shared socket (4003) when the session ends; the
    leader finds Django answering 401 and every tab says "signed out"."""
    make_user(username="alice")
    context, pages, _sockets = open_tabs(browser, live_server, 2)
    other, signing_out = pages
    signing_out.click("header form button[type=submit]")  # Log out
    other.wait_for_selector("#connection-state[data-state=closed]", timeout=5_000)
    assert other.inner_text("#connection-state") == "signed out: log in again"
    context.close()
