"""
The bell's looks and languages in real headless Chromium, on a host page of
the test's own (``/design/``) in the language and direction it asks for:
words from the server's catalog and Intl formats in the page's language,
mirrored right to left, read and unread apart, grouped by day, dark with
the system or the host, still without motion for those who ask, and an
axe-core audit of each look, whose screenshots are docs/screenshots/bell-*.png
(written there with SAVE_SCREENSHOTS=1).
"""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path
from django.utils import timezone, translation
from django.utils.translation import ngettext

from notifications import services
from notifications.client_strings import plural_forms
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

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.urls(__name__),
]

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"

HOST_PAGE = engines["django"].from_string(
    """{% load live_events %}<!doctype html>
<html lang="{{ lang }}" dir="{{ dir }}">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="color-scheme" content="light dark">
  <title>Your app</title>
</head>
<body style="margin: 0; font-family: system-ui, sans-serif">
  <header style="display: flex; justify-content: space-between; align-items: center; padding: 0 1rem">
    <h1>Your app</h1>
    {% notifications_bell %}
  </header>
  <main style="padding: 0 1rem"><p>A page of the host's, in its language.</p></main>
</body>
</html>"""
)


def host_page(request: HttpRequest) -> HttpResponse:
    """The bell in a page's header, the page in ``?lang=`` and ``?dir=``."""
    lang = request.GET.get("lang", "en")
    context = {"lang": lang, "dir": request.GET.get("dir", "ltr")}
    with translation.override(lang):
        return HttpResponse(HOST_PAGE.render(context, request))


urlpatterns = [path("design/", host_page), path("", include("project.urls"))]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 800, "height": 640}


def signed_in_page(browser, live_server, **context_options):
    """A page signed in as alice (who must exist), in a context of its own."""
    page = browser.new_context(**context_options).new_page()
    url = base_url(live_server, "127.0.0.1")
    log_in(page, url, "alice")
    return page, url


def send_at(ago: timedelta, **fields: object) -> Event:
    """Send an event and date it ``ago`` before now (before the page loads)."""
    event = services.send_event(**fields)
    Event.objects.filter(pk=event.pk).update(created_at=timezone.now() - ago)
    return event


def style(locator, name: str, pseudo: str | None = None) -> str:
    return locator.evaluate(
        "(element, [name, pseudo]) =>"
        " getComputedStyle(element, pseudo).getPropertyValue(name)",
        [name, pseudo],
    )


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("lang", "locale", "expected"),
    [
        pytest.param("fr", "en-US", "il y a 5 minutes", id="french-page"),
        pytest.param("de", "en-US", "vor 5 Minuten", id="german-page"),
        pytest.param("en", "fr-FR", "5 minutes ago", id="english-page-french-browser"),
    ],
)
def test_times_follow_the_language_of_the_page_not_the_browser(
    browser, live_server, browser_ws_server, lang, locale, expected
):
    """A notification from five minutes ago says "il y a 5 minutes" on a
    French page and "vor 5 Minuten" on a German one, whatever the browser's
    language, and an English page in a French browser says "5 minutes ago"."""
    make_user(username="alice")
    event = send_at(timedelta(minutes=5, seconds=5), title="Deploy")
    page, url = signed_in_page(browser, live_server, locale=locale)
    bell = open_bell(page, f"{url}/design/?lang={lang}")
    expect(bell.locator(f"li[data-id='{event.pk}'] time")).to_have_text(expected)
    page.context.close()


def test_plural_forms_follow_the_catalog_of_the_language(
    browser, live_server, browser_ws_server
):
    """With Django's own Arabic catalog (six plural forms), every count gets
    in the page the form ngettext gives it on the server, past 200 too."""
    make_user(username="alice")

    def minutes(count: int) -> str:
        return ngettext("%(num)d minute", "%(num)d minutes", count)

    counts = [0, 1, 2, 3, 10, 11, 99, 100, 101, 102, 103, 111, 1002, 1099]
    with translation.override("ar"):
        catalog = {"plural": {"minutes": plural_forms(minutes)}}
        expected = [minutes(count) % {"num": count} for count in counts]
    assert len(set(catalog["plural"]["minutes"]["forms"])) > 2
    page, url = signed_in_page(browser, live_server)
    open_bell(page, f"{url}/design/?lang=ar&dir=rtl")
    shown = page.evaluate(
        "([catalog, counts]) => { const words = LiveNotifications.localize(catalog);"
        " return counts.map((n) => words.plural('minutes', n, { num: String(n) })); }",
        [catalog, counts],
    )
    assert shown == expected
    page.context.close()


@pytest.mark.parametrize(
    "viewport",
    [pytest.param(DESKTOP, id="desktop"), pytest.param(PHONE, id="phone")],
)
def test_right_to_left_mirrors_the_panel_and_the_toasts(
    browser, live_server, browser_ws_server, viewport
):
    """Under <html lang="ar" dir="rtl"> the panel hangs from the bell's left
    edge (on a desktop), toasts sit at the bottom left, each level icon is
    right of its title, and nothing scrolls sideways at 390 px."""
    make_user(username="alice")
    send_at(timedelta(hours=1), title="Build log", body="/" + "x" * 170)
    page, url = signed_in_page(browser, live_server, viewport=viewport)
    bell = open_bell(page, f"{url}/design/?lang=ar&dir=rtl")
    bell.locator("[data-role=toggle]").click()
    services.send_event(title="Deploy finished", level="success")
    toast = bell.locator(".toast").first
    toast.wait_for(timeout=3_000)
    item = bell.locator("li.notification").first
    item.wait_for()

    panel = box(bell.locator("[data-role=panel]"))
    if viewport is DESKTOP:
        assert abs(panel["x"] - box(bell.locator("[data-role=toggle]"))["x"]) <= 1
    assert panel["x"] >= 0
    assert panel["x"] + panel["width"] <= viewport["width"]
    assert abs(box(toast)["x"] - 16) <= 1, "the toast is not at the left"
    level, title = box(item.locator(".level")), box(item.locator("h2"))
    assert level["x"] > title["x"] + title["width"] - 1, "the icon is not at the right"
    assert style(item, "text-align") == "start"
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    page.context.close()


def test_unread_and_read_differ_and_days_are_grouped(
    browser, live_server, browser_ws_server
):
    """Unread rows are bolder, tinted and dotted, read ones plain; the first
    row of each day is headed "Today", "Yesterday" or the date; each level
    has its own icon and words for screen readers; a row's actions show on
    hover and on keyboard focus."""
    alice = make_user(username="alice")
    old = send_at(timedelta(days=10), title="Quarterly report", level="info")
    yesterday = send_at(timedelta(days=1), title="Backup done", level="success")
    read = send_at(timedelta(minutes=30), title="Read one", level="info")
    unread = send_at(timedelta(minutes=1), title="Disk almost full", level="warning")
    services.mark_read(user_id=alice.pk, event_id=read.pk)
    page, url = signed_in_page(browser, live_server, viewport=DESKTOP)
    bell = open_bell(page, f"{url}/design/")
    bell.locator("[data-role=toggle]").click()
    row = {
        event: bell.locator(f"li[data-id='{event.pk}']")
        for event in (old, yesterday, read, unread)
    }
    row[old].wait_for()

    assert int(style(row[unread].locator("h2"), "font-weight")) >= 600
    assert int(style(row[read].locator("h2"), "font-weight")) == 400
    assert style(row[unread], "background-color") != style(
        row[read], "background-color"
    )
    assert style(row[unread], "content", "::after") == '""', "no unread dot"
    assert style(row[read], "content", "::after") == "none"

    assert row[unread].get_attribute("data-day") == "Today"
    assert style(row[unread], "content", "::before") == '"Today"'
    assert row[read].get_attribute("data-day") is None, "a second Today heading"
    assert row[yesterday].get_attribute("data-day") == "Yesterday"
    weekday, day = page.evaluate(
        "ts => [new Date(ts).toLocaleDateString('en', { weekday: 'long' }),"
        " String(new Date(ts).getDate())]",
        (timezone.now() - timedelta(days=10)).isoformat(),
    )
    heading = row[old].get_attribute("data-day")
    assert weekday in heading, heading
    assert day in heading, heading

    level = row[unread].locator(".level")
    assert level.locator("svg").get_attribute("aria-hidden") == "true"
    assert "Warning" in level.text_content()
    assert style(level, "color") != style(row[read].locator(".level"), "color")

    actions = row[read].locator(".actions")
    page.mouse.move(0, 0)
    expect(actions).to_have_css("opacity", "0")
    row[read].hover()
    expect(actions).to_have_css("opacity", "1")
    page.mouse.move(0, 0)
    expect(actions).to_have_css("opacity", "0")
    row[read].locator("button.dismiss").focus()
    expect(actions).to_have_css("opacity", "1")
    page.context.close()


def test_an_empty_feed_and_the_settings_menu(browser, live_server, browser_ws_server):
    """With nothing yet the panel says so; the gear opens a menu holding the
    desktop opt-in, Escape closes the menu (focus back on the gear) and then
    the panel (focus back on the bell)."""
    make_user(username="alice")
    page, url = signed_in_page(browser, live_server)
    bell = open_bell(page, f"{url}/design/")
    toggle = bell.locator("[data-role=toggle]")
    toggle.click()
    expect(bell.locator("[data-role=empty]")).to_be_visible()
    gear = bell.locator("[data-role=settings]")
    menu = bell.locator("[data-role=settings-menu]")
    assert menu.is_hidden()
    gear.click()
    expect(gear).to_have_attribute("aria-expanded", "true")
    expect(menu.locator("[data-role=desktop]")).to_have_text(
        "Desktop notifications: off"
    )
    page.keyboard.press("Escape")
    assert menu.is_hidden()
    assert gear.evaluate("b => b === b.getRootNode().activeElement")
    page.keyboard.press("Escape")
    assert bell.locator("[data-role=panel]").is_hidden()
    assert toggle.evaluate("b => b === b.getRootNode().activeElement")
    page.context.close()


def test_dark_follows_the_system_unless_the_host_says(
    browser, live_server, browser_ws_server
):
    """The panel is dark when the system is, light again with
    data-theme="light" on the bell, and dark on a light system with
    data-theme="dark"."""
    make_user(username="alice")
    page, url = signed_in_page(browser, live_server)
    bell = open_bell(page, f"{url}/design/")
    panel = bell.locator("[data-role=panel]")
    bell.locator("[data-role=toggle]").click()
    host = page.locator("notifications-bell")
    light, dark = "rgb(255, 255, 255)", "rgb(22, 27, 34)"

    page.emulate_media(color_scheme="dark")
    assert style(panel, "background-color") == dark
    host.evaluate("bell => { bell.dataset.theme = 'light'; }")
    assert style(panel, "background-color") == light
    page.emulate_media(color_scheme="light")
    host.evaluate("bell => { bell.dataset.theme = 'dark'; }")
    assert style(panel, "background-color") == dark
    page.context.close()


def test_reduced_motion_turns_the_motion_off(browser, live_server, browser_ws_server):
    """The panel slides in and rows fade their backgrounds, unless the
    system asks for reduced motion: then neither moves."""
    make_user(username="alice")
    event = services.send_event(title="Still")
    page, url = signed_in_page(browser, live_server)
    bell = open_bell(page, f"{url}/design/")
    bell.locator("[data-role=toggle]").click()
    panel = bell.locator("[data-role=panel]")
    row = bell.locator(f"li[data-id='{event.pk}']")
    row.wait_for()
    assert style(panel, "animation-name") == "notifications-panel-in"
    assert style(row, "transition-duration") != "0s"
    page.emulate_media(reduced_motion="reduce")
    assert style(panel, "animation-name") == "none"
    assert style(row, "transition-duration") == "0s"
    assert style(row.locator(".actions"), "transition-duration") == "0s"
    page.context.close()


LOOKS = {
    "light": ({"viewport": DESKTOP}, "lang=en"),
    "dark": ({"viewport": DESKTOP, "color_scheme": "dark"}, "lang=en"),
    "rtl": ({"viewport": DESKTOP}, "lang=ar&dir=rtl"),
    "phone": ({"viewport": PHONE}, "lang=en"),
}


@pytest.mark.parametrize("look", sorted(LOOKS))
def test_every_look_passes_an_axe_audit(
    browser, live_server, browser_ws_server, tmp_path, look
):
    """Light, dark, right to left and at 390 px, with the panel open, rows of
    every level over three days and a toast: axe-core finds no serious or
    critical violation and nothing scrolls sideways. The screenshot goes to
    docs/screenshots/bell-<look>.png with SAVE_SCREENSHOTS=1."""
    alice = make_user(username="alice")
    context_options, query = LOOKS[look]
    send_at(
        timedelta(days=3),
        title="Quarterly report is ready",
        body="Revenue, churn and the roadmap.",
    )
    send_at(
        timedelta(days=1, hours=2), title="Nightly backup finished", level="success"
    )
    read = send_at(
        timedelta(hours=3),
        title="Anna commented on “Pricing page”",
        body="Looks good to me, ship it.",
    )
    send_at(
        timedelta(minutes=12),
        title="Disk 91% full on db-2",
        body="Free space before 03:00.",
        level="warning",
    )
    services.mark_read(user_id=alice.pk, event_id=read.pk)
    page, url = signed_in_page(browser, live_server, **context_options)
    bell = open_bell(page, f"{url}/design/?{query}")
    bell.locator("[data-role=toggle]").click()
    services.send_event(
        title="Deploy of v2.4 failed",
        body="Step “migrate” exited with 1.",
        level="error",
    )
    bell.locator(".toast").first.wait_for(timeout=3_000)
    bell.locator("li.notification").nth(4).wait_for()
    page.mouse.move(0, 0)

    assert serious_axe_violations(page) == []
    width = context_options["viewport"]["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    folder = SCREENSHOTS if os.environ.get("SAVE_SCREENSHOTS") == "1" else tmp_path
    page.screenshot(path=str(folder / f"bell-{look}.png"))
    page.context.close()
