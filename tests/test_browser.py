"""
The browser client in real headless Chromium, against a live Django server and
a real runwsserver: log in through Django's login form, watch notifications
arrive, mark them read.
"""

import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import override_settings

from notifications import live, selectors, services
from notifications.models import Notification
from tests.browser import (
    PASSWORD,
    base_url,
    both_credentials,
    browser,
    browser_ws_server,
    expect,
    killable_ws_server,
    log_in,
    open_bell,
)
from tests.factories import make_group, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@both_credentials
def test_notification_arrives_live_and_is_marked_read(
    browser, live_server, browser_ws_server, hostname
):
    """A sent event appears in the open page, as text, and "Mark read" clears the badge."""
    alice = make_user(username="alice")
    page = browser.new_page()
    since = len(browser_ws_server.lines)
    log_in(page, base_url(live_server, hostname), "alice")

    # The inbox handles no push types: a push leaves the list as it is.
    with override_settings(NOTIFICATIONS_EVENT_TYPES={"demo.order": {}}):
        live.push("demo.order", {"order": 1}, to=live.users(alice))
    event = services.send_event(
        title="<img src=x onerror=alert(1)>Deploy done", body="v2"
    )
    item = page.locator(f"li.notification[data-id='{event.pk}']")
    item.wait_for(timeout=2_000)
    assert page.locator("li.notification").count() == 1
    assert item.locator("h2").inner_text() == "<img src=x onerror=alert(1)>Deploy done"
    assert item.locator("img").count() == 0, "event data was rendered as HTML"
    assert page.inner_text("#unread-count") == "1"
    # The page acknowledges what it received: the admin's delivery count.
    deadline = time.monotonic() + 3
    while selectors.delivery_stats(event_id=event.pk).delivered != 1:
        assert time.monotonic() < deadline, "the page never acknowledged the event"
        time.sleep(0.1)

    item.locator("button.mark-read").click()
    page.wait_for_function(
        "document.querySelector('#unread-count').textContent === '0'"
    )
    assert not services.mark_read(user_id=alice.pk, event_id=event.pk), "already read"
    # Same host: the page relies on the cookie; another host: on a ticket.
    credential = "session cookie" if hostname == "127.0.0.1" else "ticket"
    browser_ws_server.wait_for_log(
        f"opened .*: user {alice.pk} by {credential}", since=since
    )
    page.close()


def test_admin_sends_from_the_admin_and_user_sees_it(
    browser, live_server, browser_ws_server
):
    """The demo flow: an admin sends from the Django admin; a user's page shows
    it, with a toast and the badge."""
    make_user(username="alice")
    make_user(username="admin", staff=True, is_superuser=True)
    url = base_url(live_server, "127.0.0.1")
    user_context, admin_context = browser.new_context(), browser.new_context()
    user_page, admin_page = user_context.new_page(), admin_context.new_page()
    log_in(user_page, url, "alice")

    admin_page.goto(f"{url}/admin/login/?next=/admin/live_notifications/event/add/")
    admin_page.fill("input[name=username]", "admin")
    admin_page.fill("input[name=password]", PASSWORD)
    admin_page.click("input[type=submit]")
    admin_page.fill("input[name=title]", "Coffee in the kitchen")
    admin_page.select_option("select[name=audience]", "everyone")
    admin_page.click("input[name=_save]")
    admin_page.wait_for_url("**/admin/live_notifications/event/")

    user_page.locator("li.notification h2", has_text="Coffee in the kitchen").wait_for(
        timeout=2_000
    )
    assert user_page.inner_text("#unread-count") == "1"
    toast = user_page.locator(".toast", has_text="Coffee in the kitchen")
    toast.wait_for(timeout=2_000)
    user_context.close()
    admin_context.close()


@both_credentials
def test_a_page_subscribed_to_push_types_receives_their_payloads(
    browser, live_server, browser_ws_server, hostname
):
    """The demo's live-events page shows a durable push it asked for and a
    live-only push to its group, as text, and ignores a type it doesn't handle."""
    team = make_group("Engineering")
    make_user(username="alice", groups=(team,))
    page = browser.new_page()
    url = base_url(live_server, hostname)
    log_in(page, url, "alice")
    page.goto(f"{url}/demo/live/")
    page.wait_for_selector("[data-role=demo-state][data-state=live]", timeout=10_000)

    page.click("[data-action=ship]")
    orders = page.locator("[data-role=orders] li")
    orders.first.wait_for(timeout=2_000)
    assert re.fullmatch(r"Order \d+: shipped", orders.first.inner_text())

    with override_settings(
        NOTIFICATIONS_EVENT_TYPES={
            "demo.counter": {"delivery": "live"},
            "demo.other": {"delivery": "live"},
        }
    ):
        live.push("demo.other", {"value": 99}, to=live.groups(team))
        live.push("demo.counter", {"value": "<b>57</b>"}, to=live.groups(team))
    page.wait_for_function(
        "document.querySelector('[data-role=counter]').textContent === '<b>57</b>'",
        timeout=2_000,
    )
    assert page.locator("[data-role=counter] b").count() == 0, "rendered as HTML"
    assert orders.count() == 1
    page.close()


def test_a_retracted_event_leaves_the_open_inbox(
    browser, live_server, browser_ws_server
):
    """Retracting an event removes it from an open inbox and its unread count."""
    make_user(username="alice")
    page = browser.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    event = services.send_event(title="Sent by mistake")
    item = page.locator(f"li.notification[data-id='{event.pk}']")
    item.wait_for(timeout=2_000)
    assert page.inner_text("#unread-count") == "1"
    services.retract_event(event=event, by=None)
    item.wait_for(state="detached", timeout=2_000)
    assert page.inner_text("#unread-count") == "0"
    page.close()


def test_admin_previews_the_audience_before_sending(
    browser, live_server, browser_ws_server
):
    """On the add form, Preview shows how many users the audience reaches and
    the notification as text; "Send a test to myself" sends it to the admin."""
    make_user(username="admin", staff=True, is_superuser=True)
    make_user(username="alice")
    url = base_url(live_server, "127.0.0.1")
    page = browser.new_page()
    page.goto(f"{url}/admin/login/?next=/admin/live_notifications/event/add/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.fill("input[name=title]", "<b>Coffee</b> in the kitchen")
    page.select_option("select[name=audience]", "everyone")
    page.click("[data-action=preview]")
    output = page.locator("[data-role=preview-output]")
    output.locator(".recipients").wait_for(timeout=2_000)
    assert output.locator(".recipients").inner_text() == "Reaches 2 users now."
    assert output.locator("strong").inner_text() == "<b>Coffee</b> in the kitchen"
    page.click("[data-action=send-test]")
    page.wait_for_function(
        "document.querySelector('[data-role=preview-output]').textContent"
        ".includes('Sent to you only')",
        timeout=2_000,
    )
    admin = get_user_model().objects.get(username="admin")
    [notification] = Notification.objects.all()
    assert notification.user == admin
    page.close()


def test_the_page_reconnects_within_seconds_of_the_server_coming_back(
    browser, live_server, killable_ws_server
):
    """Kill the WebSocket server, keep it down 8 s (the backoff grows), start it
    again on the same port: a visible page is live again within the 4 s cap,
    and shows what was sent meanwhile within 5 s of the restart, with the read
    state it got meanwhile and without a toast (it is a replay)."""
    server = killable_ws_server
    alice = make_user(username="alice")
    page = browser.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    ws_port = server.port
    server.kill()
    page.wait_for_selector("#connection-state[data-state=offline]", timeout=2_000)
    assert page.inner_text("#connection-state") == "reconnecting…"
    read_meanwhile = services.send_event(title="Read on another device")
    missed = services.send_event(title="Sent while you were away")
    services.mark_read(user_id=alice.pk, event_id=read_meanwhile.pk)
    time.sleep(8)
    server.start(port=ws_port)
    started = time.monotonic()
    page.wait_for_selector("#connection-state[data-state=live]", timeout=6_000)
    assert time.monotonic() - started < 4.5
    page.locator(f"li[data-id='{missed.pk}'].unread").wait_for(
        timeout=max(0.1, 5 - (time.monotonic() - started)) * 1000
    )
    read_item = page.locator(f"li[data-id='{read_meanwhile.pk}']")
    assert read_item.count() == 1
    assert "unread" not in read_item.get_attribute("class")
    assert page.inner_text("#unread-count") == "1"
    assert page.locator(".toast").count() == 0, "a replay raised a toast"
    page.close()


def test_a_burst_and_long_words_fit_a_phone_screen(
    browser, live_server, browser_ws_server
):
    """At 390 px, a 170-character unbroken path wraps instead of widening the
    page, and 25 events at once show three toasts and "and 22 more"."""
    make_user(username="alice")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    services.send_event(title="Path", body="/" + "a" * 170)
    for n in range(24):
        services.send_event(title=f"Burst {n}")
    page.locator("li.notification").nth(24).wait_for(timeout=3_000)
    page.wait_for_function(
        "document.querySelector('.toast.more')?.textContent === 'and 22 more'",
        timeout=2_000,
    )
    assert page.locator(".toast:not(.more)").count() == 3
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_the_inbox_is_usable_with_a_keyboard_and_a_screen_reader(
    browser, live_server, browser_ws_server
):
    """Buttons come after the text they act on and name it; the count and the
    connection state are announced; focus stays in place after Mark read and
    moves to the next notification after Dismiss; the tab title has the count."""
    make_user(username="alice")
    page = browser.new_page()
    log_in(page, base_url(live_server, "127.0.0.1"), "alice")
    older = services.send_event(title="Older")
    newer = services.send_event(title="Newer")
    first = page.locator(f"li.notification[data-id='{newer.pk}']")
    second = page.locator(f"li.notification[data-id='{older.pk}']")
    second.wait_for(timeout=2_000)
    order = first.evaluate("li => [...li.children].map(child => child.tagName)")
    # The level's icon (and its words) first, the actions after the text.
    assert order == ["SPAN", "H2", "P", "TIME", "DIV"], "actions come after the text"
    read_button = first.locator("button.mark-read")
    assert read_button.get_attribute("aria-label") == "Mark read “Newer”"
    assert page.get_attribute("#connection-state", "role") == "status"
    assert page.inner_text("#unread-label") == "2 unread notifications"
    assert page.title().startswith("(2) ")

    read_button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("document.title.startsWith('(1) ')", timeout=2_000)
    assert first.locator("button.dismiss").evaluate(
        "b => b === b.getRootNode().activeElement"
    )

    page.keyboard.press("Enter")  # the focused Dismiss
    first.wait_for(state="detached", timeout=2_000)
    assert second.locator("button.mark-read").evaluate(
        "b => b === b.getRootNode().activeElement"
    ), "focus moved to the next notification"
    page.close()


def test_tabs_agree_after_an_outage_and_failures_are_shown(
    browser, live_server, killable_ws_server
):
    """With the WebSocket server down, a dismissal in one tab goes over HTTP;
    the other tab, which missed its frame, drops the item once it reconnects.
    Signed out, a Dismiss says so instead of failing silently."""
    server = killable_ws_server
    make_user(username="alice")
    context = browser.new_context()
    first, second = context.new_page(), context.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(first, url, "alice")
    second.goto(f"{url}/")
    second.wait_for_selector("#connection-state[data-state=live]")
    kept, gone = (
        services.send_event(title="Kept"),
        services.send_event(title="Gone"),
    )
    for page in (first, second):
        page.locator(f"li.notification[data-id='{gone.pk}']").wait_for()
    ws_port = server.port
    server.kill()
    second.wait_for_selector("#connection-state[data-state=offline]")
    first.locator(f"li[data-id='{gone.pk}'] button.dismiss").click()
    first.locator(f"li[data-id='{gone.pk}']").wait_for(state="detached")
    server.start(port=ws_port)
    second.locator(f"li[data-id='{gone.pk}']").wait_for(state="detached", timeout=8_000)
    assert second.locator(f"li[data-id='{kept.pk}']").count() == 1

    server.kill()
    first.wait_for_selector("#connection-state[data-state=offline]")
    Session.objects.all().delete()  # signed out behind the page's back
    first.locator(f"li[data-id='{kept.pk}'] button.dismiss").click()
    alert = first.locator("#inbox-problem")
    alert.wait_for(state="visible", timeout=2_000)
    assert alert.inner_text().startswith("You are signed out")
    context.close()


def test_the_bell_drops_into_a_page_with_one_tag(
    browser, live_server, browser_ws_server
):
    """A page with nothing but {% notifications_bell %} (the demo's
    /demo/bell/, no base template): the badge counts live notifications
    ("99+" past 99), the dropdown lists them styled, Mark read there clears
    one, and Escape closes it, focus back on the bell."""
    make_user(username="alice")
    page = browser.new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    bell = open_bell(page, f"{url}/demo/bell/")
    event = services.send_event(title="Ring")
    expect(bell.locator("[data-role=unread-count]")).to_have_text("1", timeout=2_000)
    bell.locator("[data-role=toggle]").click()
    assert bell.locator("[data-role=toggle]").get_attribute("aria-expanded") == "true"
    item = bell.locator(f"li.notification[data-id='{event.pk}']")
    assert item.locator("h2").inner_text() == "Ring"
    # The tag brought its stylesheet: the panel floats over the page.
    assert (
        bell.locator("[data-role=panel]").evaluate(
            "panel => getComputedStyle(panel).position"
        )
        == "absolute"
    )
    item.locator("button.mark-read").click()
    expect(bell.locator("[data-role=unread-count]")).to_have_text("0", timeout=2_000)
    page.keyboard.press("Escape")
    assert bell.locator("[data-role=panel]").is_hidden()
    assert bell.locator("[data-role=toggle]").evaluate(
        "b => b === b.getRootNode().activeElement"
    )
    for n in range(100):
        services.send_event(title=f"Flood {n}")
    expect(bell.locator("[data-role=unread-count]")).to_have_text("99+", timeout=5_000)
    assert bell.locator("[data-role=unread-label]").inner_text() == (
        "100 unread notifications"
    )
    page.close()
