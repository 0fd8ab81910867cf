"""
Live, authenticated notifications for Django. The public API::

    import notifications

    notifications.notify("Your export is ready", url="/exports/42/",
                         to=notifications.users(request.user))
    notifications.push("order.status", {"order": 1234}, to=notifications.staff())
    notifications.retract(event_id)

Everything a project calls is a name of this package (``__all__``, documented
in docs/install.md). The modules behind it (services, selectors, publishing,
wire, ...) are the app's and the ws_server's internals.

This package is what ``INSTALLED_APPS`` names: Django imports it before the
app registry is ready, when importing the models raises
``AppRegistryNotReady``. So nothing is imported here; each name is loaded
from the module that defines it on first use.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .live import (
        InvalidPayload,
        Recipients,
        UndeclaredEventType,
        everyone,
        groups,
        notify,
        permission,
        push,
        push_many,
        retract,
        staff,
        superusers,
        users,
        viewers_of,
    )
    from .selectors import inbox, unread_count
    from .services import InboxChange, dismiss, mark_all_read, mark_read

__all__ = [
    "InboxChange",
    "InvalidPayload",
    "Recipients",
    "UndeclaredEventType",
    "dismiss",
    "everyone",
    "groups",
    "inbox",
    "mark_all_read",
    "mark_read",
    "notify",
    "permission",
    "push",
    "push_many",
    "retract",
    "staff",
    "superusers",
    "unread_count",
    "users",
    "viewers_of",
]

#: The internal module each public name is defined in.
_HOMES = {
    "inbox": "selectors",
    "unread_count": "selectors",
    "InboxChange": "services",
    "dismiss": "services",
    "mark_all_read": "services",
    "mark_read": "services",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{_HOMES.get(name, 'live')}", __name__), name)
    globals()[name] = value  # loaded once: later lookups don't come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
