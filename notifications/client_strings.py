"""
The words the browser client shows, in the language of the request.

live.js, feed.js and activity.js write no text of their own: the template
tags send this catalog with the client's configuration (``strings`` in
``live_config``), rendered by ``json_script``, so a page needs no
JavaScript catalog view and no build step. Each string is marked here,
with ``gettext_lazy`` or ``ngettext``, so ``makemessages`` collects them
into the app's catalog with the rest.

A plural message is sent as its distinct forms and, for every count from
0 to PLURAL_TABLE - 1, which form Django's ``ngettext`` picks: the
language's own plural rule (Arabic has six forms, Polish three), applied
in JavaScript without evaluating the catalog's formula. Counts past the
table take the form of ``100 + count % 100``, which is what the plural
rules of gettext catalogs look at.
"""

from collections.abc import Callable

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

__all__ = ["client_catalog"]

PLURAL_TABLE = 200

#: Text by key; ``%(name)s`` placeholders are filled in by the client.
TEXT = {
    # The connection's state (live.js).
    "connecting": _("connecting…"),
    "live": _("live"),
    "offline": _("reconnecting…"),
    "closed": _("closed"),
    "signed-out": _("signed out: log in again"),
    "other-user": _("signed in as someone else: reload the page"),
    # A notification's actions, named after it for screen readers.
    "mark-read": _("Mark read"),
    "mark-read-label": _("Mark read “%(title)s”"),
    "dismiss": _("Dismiss"),
    "dismiss-label": _("Dismiss “%(title)s”"),
    # What a screen reader hears for the level's icon.
    "level-info": _("Information"),
    "level-success": _("Success"),
    "level-warning": _("Warning"),
    "level-error": _("Error"),
    "unread": _("Unread"),
    # The headings that group the feed by day.
    "today": _("Today"),
    "yesterday": _("Yesterday"),
    "problem-signed-out": _(
        "You are signed out: log in again to change your notifications."
    ),
    "problem-not-saved": _(
        "That couldn't be saved (the server didn't answer); try again."
    ),
    "desktop-on": _("Desktop notifications: on"),
    "desktop-off": _("Desktop notifications: off"),
    # The tab's title with the unread count before it.
    "title-unread": _("(%(count)s) %(title)s"),
    # The activity page: who did what to which object.
    "activity-add": _("%(user)s added %(type)s “%(object)s”"),
    "activity-change": _("%(user)s changed %(type)s “%(object)s”"),
    "activity-delete": _("%(user)s deleted %(type)s “%(object)s”"),
}

#: Plural messages by key, each a function of the count.
PLURALS: dict[str, Callable[[int], str]] = {
    "unread-count": lambda count: ngettext(
        "%(count)s unread notification", "%(count)s unread notifications", count
    ),
    "more-toasts": lambda count: ngettext(
        "and %(count)s more", "and %(count)s more", count
    ),
}


def plural_forms(choose: Callable[[int], str]) -> dict[str, object]:
    """The distinct forms ``choose`` gives and which one each count takes."""
    forms: list[str] = []
    index = []
    for count in range(PLURAL_TABLE):
        form = choose(count)
        if form not in forms:
            forms.append(form)
        index.append(str(forms.index(form)))
    return {"forms": forms, "index": "".join(index)}


def client_catalog() -> dict[str, object]:
    """Every string of the browser client in the active language."""
    return {
        "text": {key: str(text) for key, text in TEXT.items()},
        "plural": {key: plural_forms(choose) for key, choose in PLURALS.items()},
    }
