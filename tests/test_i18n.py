"""
Languages: the app's pages, admin, validation errors and system checks in
the reader's language, from the catalogs in notifications/locale/, which
are complete and compiled.
"""

import gettext
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import translation

from notifications import activity, services
from notifications.checks import check_settings
from notifications.deploy_checks import check_origins
from notifications.links import validate_link
from notifications.models import Audience, Event
from tests.debian import install_packages
from tests.factories import make_user
from tests.servers import BASE_DIR

APP_DIR = BASE_DIR / "notifications"
LANGUAGES = ["fr", "de", "ar"]
#: GNU gettext: makemessages runs xgettext and msgmerge, compilemessages msgfmt.
GETTEXT = {"gettext": "/usr/bin/msgfmt"}

#: English the app's pages and admin show: none may remain in another
#: language. (Words spelled alike in French or German, "Notifications" or
#: "Info", are left out.)
ENGLISH = [
    # inbox.html
    "Inbox",
    "unread notifications",
    "connecting…",
    "Mark all read",
    "Desktop notifications",
    "No notifications yet.",
    "Older notifications",
    # activity.html
    "No activity you may see yet.",
    " added group ",
    # the event admin's add form, its list and its read-only page
    "Online now",
    "Before sending",
    "Preview",
    "Title",
    "Send a test to myself",
    "Everyone",
    "Staff only",
    "Members of groups",
    "Expires at",
    "Created by",
    "Retracted by",
    "Delivery",
    "recipients",
    "delivered live",
    "Retract selected events",
    "Send selected events again",
]


@pytest.fixture(autouse=True)
def _default_language_after() -> Iterator[None]:
    """LocaleMiddleware leaves a request's language active in the test's
    thread: the next test gets the default back."""
    yield
    translation.deactivate()


def msgfmt_statistics(po: Path, mo: Path) -> str:
    """Compile ``po`` into ``mo``, checking its format strings; return what
    msgfmt counts (translated, fuzzy, untranslated)."""
    result = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", str(mo), str(po)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stderr.strip()


def catalog(mo: Path) -> dict:
    """
    The messages of a compiled catalog as Python's gettext reads them, and
    its plural rule; not the rest of its header, which makemessages dates.
    """
    with mo.open("rb") as file:
        messages = dict(gettext.GNUTranslations(file)._catalog)
    header = messages.pop("")
    messages[""] = re.findall(r"^Plural-Forms: .*$", header, re.MULTILINE)
    return messages


@pytest.fixture(scope="module")
def remade_catalogs(tmp_path_factory) -> Path:
    """The app copied, and its catalogs remade from its sources by
    makemessages (as docs/install.md says): the copy's locale folder."""
    install_packages(GETTEXT, needed_by="the catalog test needs GNU gettext")
    copy = tmp_path_factory.mktemp("i18n") / "notifications"
    shutil.copytree(APP_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    languages = [arg for language in LANGUAGES for arg in ("-l", language)]
    # Without the project's settings, as a maintainer runs it; -P: the app's
    # selectors.py must not shadow the standard library's from the cwd.
    environment = dict(os.environ)
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    subprocess.run(
        [sys.executable, "-P", "-m", "django", "makemessages", *languages],
        cwd=copy,
        env=environment,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return copy / "locale"


@pytest.mark.once
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_catalogs_are_complete_and_their_compiled_form_is_committed(
    remade_catalogs, tmp_path, language
):
    """Every string of the app's Python code and templates is translated
    (none untranslated or fuzzy) in the committed .po, and the committed .mo
    holds exactly what compiling it gives: a user never sees English where a
    translation was written but not compiled."""
    remade = remade_catalogs / language / "LC_MESSAGES" / "django.po"
    compiled = tmp_path / "django.mo"
    statistics = msgfmt_statistics(remade, compiled)
    assert re.fullmatch(r"\d+ translated messages?\.", statistics), statistics
    committed = APP_DIR / "locale" / language / "LC_MESSAGES" / "django.mo"
    assert catalog(committed) == catalog(compiled)


@pytest.fixture
def admin_browser() -> Client:
    browser = Client()
    browser.force_login(make_user(username="the-admin", staff=True, is_superuser=True))
    return browser


def event_admin_url(view: str, *args: object) -> str:
    opts = Event._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def pages_in(browser: Client, language: str) -> dict[str, str]:
    """The inbox, the activity page (one entry in its history) and the event
    admin's list, add form and read-only page, as a browser asking for
    ``language`` gets them."""
    browser.post("/admin/auth/group/add/", {"name": "editors"})
    event = services.send_event(title="Hello", audience=Audience.EVERYONE)
    urls = {
        "inbox": reverse("notifications:inbox"),
        "activity": reverse("notifications:activity"),
        "list": event_admin_url("changelist"),
        "add": event_admin_url("add"),
        "view": event_admin_url("change", event.pk),
    }
    pages = {}
    for name, url in urls.items():
        response = browser.get(url, headers={"accept-language": language})
        assert response.status_code == 200, (name, response.status_code)
        assert response["Content-Language"] == language
        pages[name] = response.content.decode()
    return pages


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "translated"),
    [
        ("fr", ["Boîte de réception", "Avant l’envoi", "the-admin a ajouté"]),
        ("de", ["Posteingang", "Vor dem Senden", "the-admin hat"]),
    ],
)
def test_the_pages_and_the_admin_speak_the_readers_language(
    admin_browser, language, translated
):
    """A browser asking for French or German gets the inbox, the activity
    page and the event admin in that language, with none of the English
    left."""
    pages = pages_in(admin_browser, language)
    text = "\n".join(pages.values())
    for phrase in translated:
        assert phrase in text, phrase
    for phrase in ENGLISH:
        assert phrase not in text, phrase


@pytest.mark.django_db
def test_an_arabic_page_reads_right_to_left(admin_browser):
    """A browser asking for Arabic gets the inbox in Arabic, marked
    lang="ar" dir="rtl" (the widget's layout follows it)."""
    page = admin_browser.get(
        reverse("notifications:inbox"), headers={"accept-language": "ar"}
    ).content.decode()
    assert '<html lang="ar" dir="rtl">' in page
    assert "صندوق الوارد" in page
    assert "Inbox" not in page


@pytest.mark.once
def test_the_apps_own_base_template_follows_the_language():
    """The app's base template (the demo overrides it) marks the page with
    the active language and its direction."""
    app_templates = [
        {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
    ]
    with override_settings(TEMPLATES=app_templates):
        for language, direction in [("ar", "rtl"), ("fr", "ltr")]:
            with translation.override(language):
                page = render_to_string("notifications/base.html")
            assert f'<html lang="{language}" dir="{direction}">' in page


@pytest.mark.django_db
def test_admin_messages_count_in_the_readers_language(admin_browser):
    """Retracting two events reports it in French, in the plural form."""
    events = [services.send_event(title=f"Event {n}") for n in range(2)]
    response = admin_browser.post(
        event_admin_url("changelist"),
        {"action": "retract", "_selected_action": [event.pk for event in events]},
        headers={"accept-language": "fr"},
        follow=True,
    )
    shown = [str(message) for message in response.context["messages"]]
    assert shown == ["2 événements retirés."]


@pytest.mark.once
def test_validation_errors_and_check_messages_are_translated():
    """Under French, a refused link, an audience without its users and a
    system check (its id unchanged) come out in French."""
    with translation.override("fr"):
        with pytest.raises(ValidationError) as link:
            validate_link("javascript:alert(1)")
        with pytest.raises(ValidationError) as audience:
            services.validate_audience(Audience.USERS, groups=[], users=[])
        # Lazy: shown in the language active where they are rendered.
        link_messages = link.value.messages
        audience_messages = audience.value.message_dict
        with override_settings(NOTIFICATIONS_NOT_A_SETTING=1):
            [unknown] = check_settings()
        with override_settings(NOTIFICATIONS_WS_ORIGINS=[]):
            [no_origins] = check_origins()
    assert link_messages == [
        "Saisissez une URL http:// ou https://, ou un chemin de ce site "
        "commençant par un seul « / »."
    ]
    assert audience_messages == {
        "users": ["Choisissez au moins un utilisateur pour ces destinataires."]
    }
    assert unknown.id == "notifications.W002"
    assert unknown.msg == (
        "NOTIFICATIONS_NOT_A_SETTING n’est pas un réglage de cette application ; "
        "il est sans effet."
    )
    assert no_origins.id == "notifications.W010"
    assert "refuse tous les navigateurs" in no_origins.msg


@pytest.mark.django_db
def test_activity_frames_speak_the_sites_language_and_carry_the_structure(
    admin_browser,
):
    """An admin working in French changes a group: the activity frame, one
    for every viewer, says it in the site's language (English here) with the
    admin's structured message beside it, and the activity page says it in
    each reader's language."""
    admin_browser.post(
        "/admin/auth/group/add/", {"name": "editors"}, headers={"accept-language": "fr"}
    )
    frame = Event.objects.get(push_type="activity").push_data
    assert (frame["change_message"], frame["change_message_data"]) == (
        "Added.",
        [{"added": {}}],
    )
    entry = LogEntry.objects.get()
    assert activity.change_message_data(entry) == [{"added": {}}]
    french = admin_browser.get(
        reverse("notifications:activity"), headers={"accept-language": "fr"}
    ).content.decode()
    assert "the-admin a ajouté « editors » (groupe)" in french
    assert "Added." not in french


@pytest.mark.django_db
def test_the_models_verbose_names_are_in_the_migrations():
    """Translatable verbose names and choices are recorded in a migration, so
    makemigrations finds nothing to add in a project using the app."""
    call_command(
        "makemigrations", "live_notifications", "--check", "--dry-run", verbosity=0
    )
