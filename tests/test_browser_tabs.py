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
from notifications.models import Audience, Notification
from tests.browser import (
    PASSWORD,
    base_url,
    browser,
    browser_ws_server,
    killable_ws_server,
    log_in,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

#: Leader election and handover are the browser's; connecting is ours.
HANDOVER_BOUND = 1.0
#: A frozen leader is noticed after LEADER_SILENT_MS (3 s) of unanswered
#: heartbeats (one a second); then the follower connects.
TAKEOVER_BOUND = 5.0
#: How long a follower's command waits for a silent leader (SEND_TIMEOUT_MS)
#: before it goes over HTTP, and that request.
SEND_FALLBACK_BOUND = 3.0


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


def leader_and_followers(sockets: Sockets, pages: list) -> tuple:
    [(leader, _socket)] = sockets.open()
    return leader, [page for page in pages if page is not leader]


def wait_for_socket_of(sockets: Sockets, pages: list, deadline: float):
    """The socket one of ``pages`` opened and was welcomed on, by ``deadline``."""
    while True:
        ours = [s for page, s in sockets.open() if page in pages]
        if ours and ours[0] in sockets.welcomed_at:
            return ours[0]
        assert time.monotonic() < deadline, "no tab took the socket over"
        settle(pages[0], 0.05)


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
        if f": user {alice.pk} by" in line and "opened" in line
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


def test_a_hung_leader_loses_the_socket_to_a_follower(
    browser, live_server, browser_ws_server
):
    """The leader's page hangs (a busy script: the same as a tab the browser
    froze without notice, which keeps its lock). The follower's Mark read,
    unanswered, goes over HTTP within SEND_FALLBACK_BOUND instead of being
    lost; within TAKEOVER_BOUND the follower steals the lock and connects;
    what is sent then reaches it; once the hung page wakes it finds its lock
    gone and closes its socket, so one socket is left."""
    alice = make_user(username="alice")
    context, pages, sockets = open_tabs(browser, live_server, 2)
    settle(pages[0])
    leader, [follower] = leader_and_followers(sockets, pages)
    before = services.send_event(title="Read me while the leader hangs")
    follower.locator(f"li[data-id='{before.pk}'].unread").wait_for(timeout=2_000)

    hang_seconds = 7
    leader.evaluate(
        f"setTimeout(() => {{ const end = Date.now() + {hang_seconds * 1000};"
        " while (Date.now() < end); }, 0)"
    )
    hung_at = time.monotonic()
    settle(follower, 0.2)
    follower.locator(f"li[data-id='{before.pk}'] button.mark-read").click()
    follower.wait_for_selector(
        f"li[data-id='{before.pk}']:not(.unread)",
        timeout=SEND_FALLBACK_BOUND * 1000,
    )
    assert Notification.objects.get(user=alice, event=before).read_at is not None

    socket = wait_for_socket_of(sockets, [follower], hung_at + TAKEOVER_BOUND)
    assert sockets.welcomed_at[socket] - hung_at < TAKEOVER_BOUND
    during = services.send_event(title="While the old leader hangs")
    follower.locator(f"li[data-id='{during.pk}']").wait_for(timeout=2_000)

    deadline = hung_at + hang_seconds + 3
    while len(sockets.open()) > 1:
        assert time.monotonic() < deadline, "the woken leader kept its socket"
        settle(follower, 0.1)
    assert [page for page, _socket in sockets.open()] == [follower]
    context.close()


def test_a_frozen_leader_steps_down_and_catches_up_when_it_resumes(
    browser, live_server, browser_ws_server
):
    """A page the browser is about to freeze (a background tab) or put in
    the back/forward cache gets `freeze` (or `pagehide` persisted) first:
    the leader gives the socket up at once and a follower leads within
    HANDOVER_BOUND. On `resume` it follows, and shows what was sent
    meanwhile. Chromium's CDP freeze leaves a visible headless page running,
    so the test sends the page the lifecycle events itself."""
    make_user(username="alice")
    context, pages, sockets = open_tabs(browser, live_server, 2)
    settle(pages[0])
    leader, [follower] = leader_and_followers(sockets, pages)

    leader.evaluate("document.dispatchEvent(new Event('freeze'))")
    frozen_at = time.monotonic()
    socket = wait_for_socket_of(sockets, [follower], frozen_at + 5)
    assert sockets.welcomed_at[socket] - frozen_at < HANDOVER_BOUND
    assert [page for page, _socket in sockets.open()] == [follower]
    missed = services.send_event(title="Sent while the tab was frozen")
    follower.locator(f"li[data-id='{missed.pk}']").wait_for(timeout=2_000)

    leader.evaluate("document.dispatchEvent(new Event('resume'))")
    leader.locator(f"li[data-id='{missed.pk}']").wait_for(timeout=3_000)
    after = services.send_event(title="Sent after it resumed")
    for page in pages:
        page.locator(f"li[data-id='{after.pk}']").wait_for(timeout=2_000)
    assert [page for page, _socket in sockets.open()] == [follower]
    context.close()


def test_a_crashed_tab_does_not_keep_the_toasts(
    browser, live_server, browser_ws_server
):
    """The tab used last crashes (no goodbye). It was the one the leader
    alerted in; once it has missed its heartbeats the leader forgets it, and
    a live tab shows the toast."""
    make_user(username="alice")
    context, pages, sockets = open_tabs(browser, live_server, 3)
    settle(pages[0])
    leader, followers = leader_and_followers(sockets, pages)
    crashing, survivor = followers
    # The person uses it last: the primary tab.
    crashing.evaluate("window.dispatchEvent(new Event('focus'))")
    settle(crashing)
    services.send_event(title="Alerted where the person looks")
    crashing.locator(".toast").wait_for(timeout=2_000)
    assert leader.locator(".toast").count() + survivor.locator(".toast").count() == 0

    # A crash, as the other tabs see it: the tab goes without a goodbye.
    # (CDP's Page.crash never answers, which hangs Playwright.)
    crashing.evaluate("BroadcastChannel.prototype.postMessage = () => {}")
    crashing.close()
    settle(leader, 5.5)  # TAB_GONE_AFTER_HEARTBEATS visible heartbeats
    second = services.send_event(title="After the crash")
    for page in (leader, survivor):
        page.locator(f"li[data-id='{second.pk}']").wait_for(timeout=2_000)
    settle(leader, 0.2)
    toasts = [
        page.locator(f".toast:has-text('{second.title}')").count()
        for page in (leader, survivor)
    ]
    assert sum(toasts) == 1, f"toasts per live tab: {toasts}"
    context.close()


def test_a_page_left_open_never_shows_the_next_user(
    browser, live_server, killable_ws_server
):
    """Alice's page is reconnecting (the server is down) while, in another
    tab, she signs out and Bob signs in. When the server is back her page's
    cookie is Bob's: the replay it is sent (Bob's notifications) is held
    until the welcome names Bob, then dropped, and the page says "signed in
    as someone else: reload the page" instead of showing Bob's inbox."""
    server = killable_ws_server
    make_user(username="alice")
    bob = make_user(username="bob")
    url = base_url(live_server, "127.0.0.1")
    context = browser.new_context()
    stale = context.new_page()
    log_in(stale, url, "alice")
    ws_port = server.port
    server.kill()
    stale.wait_for_selector("#connection-state[data-state=offline]", timeout=2_000)
    other = context.new_page()
    other.goto(f"{url}/")
    other.click("header form button[type=submit]")  # Log out
    other.goto(f"{url}/accounts/login/?next=/")
    other.fill("input[name=username]", "bob")
    other.fill("input[name=password]", PASSWORD)
    other.click("button[type=submit]")
    other.wait_for_selector("#connection-state", timeout=5_000)
    for_bob = services.send_event(
        title="For Bob only", audience=Audience.USERS, users=[bob]
    )
    server.start(port=ws_port)
    stale.wait_for_selector("#connection-state[data-state=closed]", timeout=8_000)
    assert (
        stale.inner_text("#connection-state")
        == "signed in as someone else: reload the page"
    )
    other.locator(f"li[data-id='{for_bob.pk}']").wait_for(timeout=5_000)
    assert stale.locator(f"li[data-id='{for_bob.pk}']").count() == 0
    context.close()
