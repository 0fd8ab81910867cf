"""
The declared event types that application code may push.

Types are declared in the ``NOTIFICATIONS_EVENT_TYPES`` setting, so every
process (web workers, management commands, background jobs) knows the same
ones without importing anything first::

    NOTIFICATIONS_EVENT_TYPES = {
        "order.status": {"delivery": "durable", "check": "shop.events.check"},
        "dashboard.counter": {"delivery": "live"},
    }

A push of a type not declared there raises at the call site, rather than
leaving a browser to wait for an event whose name has a typo. The app's own
types (``activity``, the admin's live activity stream) are built in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import settings

__all__ = [
    "ACTIVITY",
    "BUILTIN_EVENT_TYPES",
    "DELIVERY_CLASSES",
    "DURABLE",
    "LIVE",
    "RETRACTED",
    "EventType",
    "UndeclaredEventType",
    "declared_event_types",
    "get_event_type",
]

#: Kept in the database for ``NOTIFICATIONS_PUSH_RETENTION`` seconds:
#: reconciliation and resume deliver it as they deliver notifications.
DURABLE = "durable"
#: Sent to the recipients connected when it is relayed, and never again.
LIVE = "live"
DELIVERY_CLASSES = (DURABLE, LIVE)

#: What a type name may look like: it is stored in a 100-character column.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,99}")


class UndeclaredEventType(LookupError):
    """A push named a type that ``NOTIFICATIONS_EVENT_TYPES`` doesn't declare."""


@dataclass(frozen=True, slots=True)
class EventType:
    """
    A declared type: its name, its delivery class, and an optional check,
    a callable that raises ``ValueError`` or ``ValidationError`` for a
    payload it refuses.
    """

    name: str
    delivery: str = DURABLE
    check: Callable[[Any], object] | None = None

    @property
    def durable(self) -> bool:
        return self.delivery == DURABLE


def get_event_type(name: str) -> EventType:
    """Return the declared type ``name``, or raise :exc:`UndeclaredEventType`."""
    try:
        return declared_event_types()[name]
    except (KeyError, TypeError):
        raise UndeclaredEventType(
            f"event type {name!r} is not declared in NOTIFICATIONS_EVENT_TYPES"
        ) from None


#: Every admin action, to the users who may view its model
#: (``notifications.activity``); durable, so resume replays it.
ACTIVITY = "activity"
#: Notifications retracted or deleted: open pages remove them. Durable, so a
#: page that missed it while offline is told when it resumes.
RETRACTED = "retracted"
BUILTIN_EVENT_TYPES = {
    ACTIVITY: EventType(ACTIVITY, DURABLE),
    RETRACTED: EventType(RETRACTED, DURABLE),
}

_cache: tuple[object, dict[str, EventType]] | None = None


def declared_event_types() -> dict[str, EventType]:
    """
    Every declared type by name, read from the setting once per value of it
    (``override_settings`` gives a new value).

    Raise ``ImproperlyConfigured`` for a malformed declaration; the system
    check ``notifications.E001`` reports the same at start-up.
    """
    global _cache
    source = settings.EVENT_TYPES
    if _cache is None or _cache[0] is not source:
        _cache = (source, _parse(source))
    return _cache[1]


def _parse(source: object) -> dict[str, EventType]:
    if not isinstance(source, dict):
        raise ImproperlyConfigured("NOTIFICATIONS_EVENT_TYPES must be a dict")
    reserved = sorted(set(source) & set(BUILTIN_EVENT_TYPES))
    if reserved:
        raise ImproperlyConfigured(
            f"NOTIFICATIONS_EVENT_TYPES: {reserved} are built in; choose another name"
        )
    declared = {name: _parse_one(name, options) for name, options in source.items()}
    return {**BUILTIN_EVENT_TYPES, **declared}


def _parse_one(name: object, options: object) -> EventType:
    where = f"NOTIFICATIONS_EVENT_TYPES[{name!r}]"
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ImproperlyConfigured(
            f"{where}: a type name is a letter, then up to 99 letters, digits "
            "or any of '_.:-'"
        )
    if not isinstance(options, dict):
        raise ImproperlyConfigured(f"{where} must be a dict of options")
    unknown = set(options) - {"delivery", "check"}
    if unknown:
        raise ImproperlyConfigured(f"{where}: unknown option(s) {sorted(unknown)}")
    delivery = options.get("delivery", DURABLE)
    if delivery not in DELIVERY_CLASSES:
        raise ImproperlyConfigured(
            f"{where}: 'delivery' must be one of {DELIVERY_CLASSES}, not {delivery!r}"
        )
    check = options.get("check")
    if isinstance(check, str):
        try:
            check = import_string(check)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{where}: cannot import 'check': {exc}"
            ) from exc
    if check is not None and not callable(check):
        raise ImproperlyConfigured(f"{where}: 'check' must be callable")
    return EventType(name=name, delivery=delivery, check=check)
