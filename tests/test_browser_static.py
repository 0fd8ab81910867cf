"""
The widget's static files the way production serves them, in real headless
Chromium: from another origin that sends no CORS headers, and hashed by
Django's ManifestStaticFilesStorage after a real ``collectstatic``. Either
way the bell works with one client and one socket per page, and scripts
that never load say so in the bell instead of "connecting…" for ever.
"""

import re
from contextlib import contextmanager

import pytest
from django.test import override_settings

from notifications import services
from tests.browser import (
    base_url,
    browser,
    browser_ws_server,
    collect_static,
    count_sockets,
    log_in,
    open_bell,
    static_origin,
)
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MANIFEST = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
    },
}
#: A hashed name, as ManifestStaticFilesStorage writes it: live.0123abcd4567.js
HASHED_SCRIPT = re.compile(r"/notifications/[a-z_]+\.[0-9a-f]{12}\.js$")


def open_live_page(page, url: str):
    """The demo's live page: the bell, {% live_config %} and a script of the
    page's own, all on one client. Returns the bell once it is live."""
    bell = open_bell(page, f"{url}/demo/live/")
    page.locator("[data-role=demo-state][data-state=live]").wait_for(timeout=5_000)
    return bell


@contextmanager
def live_page_on_a_static_host(browser, live_server, tmp_path, **storages):
    """Alice's demo live page, with collectstatic's output (STORAGES as
    given) served from another origin that sends no CORS headers. Yields the
    page, its bell once live, its sockets, and the static host's URL."""
    make_user(username="alice")
    with override_settings(STATIC_ROOT=str(tmp_path), **storages):
        root = collect_static()
        with (
            static_origin(root) as static_url,
            override_settings(STATIC_URL=static_url),
        ):
            page = browser.new_page()
            url = base_url(live_server, "127.0.0.1")
            log_in(page, url, "alice")
            sockets = count_sockets(page)
            bell = open_live_page(page, url)
            yield page, bell, sockets, static_url
            page.close()


def assert_one_client_rings(page, bell, sockets: list) -> None:
    """A notification reaches the bell, and the page holds one socket."""
    event = services.send_event(title="From the static host")
    bell.locator(f"li[data-id='{event.pk}']").wait_for(state="attached", timeout=3_000)
    page.wait_for_timeout(300)  # a second client would have connected by now
    assert len([s for s in sockets if not s.is_closed()]) == 1


@pytest.mark.parametrize("storage", ["plain", "manifest"])
def test_the_bell_loads_from_another_origin_without_cors(
    browser, live_server, browser_ws_server, tmp_path, storage
):
    """STATIC_URL on another origin that sends no CORS headers, with the
    default storage or ManifestStaticFilesStorage after collectstatic: the
    bell goes live, every script URL is the storage's, a notification
    arrives, and the page has one socket."""
    storages = {"STORAGES": MANIFEST} if storage == "manifest" else {}
    with live_page_on_a_static_host(browser, live_server, tmp_path, **storages) as (
        page,
        bell,
        sockets,
        static_url,
    ):
        scripts = page.evaluate("[...document.scripts].map((s) => s.src)")
        ours = [src for src in scripts if "/notifications/" in src]
        assert len(ours) == 5, ours  # links, live, feed, bell; live_config's
        assert all(src.startswith(static_url) for src in ours), ours
        if storage == "manifest":
            assert all(HASHED_SCRIPT.search(src) for src in ours), ours
        assert_one_client_rings(page, bell, sockets)


def test_a_second_copy_of_live_js_keeps_one_client(
    browser, live_server, browser_ws_server, tmp_path
):
    """With hashed static files, a page that also loads live.js by its
    unhashed name (a hand-written script tag) still has one client: the
    second copy does nothing, and a notification arrives on one socket."""
    with live_page_on_a_static_host(
        browser, live_server, tmp_path, STORAGES=MANIFEST
    ) as (page, bell, sockets, static_url):
        connect = page.evaluate_handle("() => LiveNotifications.connect")
        page.add_script_tag(url=f"{static_url}notifications/live.js")
        assert page.evaluate(
            "connect => connect === LiveNotifications.connect", connect
        )
        page.evaluate(
            "LiveNotifications.connect("
            "JSON.parse(document.getElementById('live-config').textContent))"
        )
        assert_one_client_rings(page, bell, sockets)


def test_scripts_that_never_load_are_reported_in_the_bell(
    browser, live_server, browser_ws_server, tmp_path
):
    """STATIC_URL on a host that answers 404 for every script: the bell
    says its notifications didn't load, instead of "connecting…" for ever."""
    make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    with (
        static_origin(tmp_path) as empty_host,
        override_settings(STATIC_URL=empty_host),
    ):
        page.goto(f"{url}/demo/bell/")
    problem = page.locator("[data-notifications=bell] [data-role=load-problem]")
    problem.wait_for(state="visible", timeout=10_000)
    assert problem.inner_text() == "Notifications didn't load: reload the page."
    page.close()


def test_the_load_problem_stays_hidden_when_the_bell_starts(
    browser, live_server, browser_ws_server
):
    """Served as usual, the bell starts and its load problem never shows."""
    make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_bell(page, f"{url}/demo/bell/")
    page.wait_for_timeout(7_000)  # past the delay the problem shows after
    assert bell.locator("[data-role=load-problem]").count() == 0
    page.close()
