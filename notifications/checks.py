"""System checks: configuration mistakes reported at start-up, not at first use."""

import importlib.util
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from .registry import declared_event_types

__all__ = ["check_event_types", "check_package_conflict"]


@register()
def check_event_types(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Error]:
    """``notifications.E001``: NOTIFICATIONS_EVENT_TYPES must parse."""
    try:
        declared_event_types()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="See docs/live-events.md for the form of each declaration.",
                id="notifications.E001",
            )
        ]
    return []


@register()
def check_package_conflict(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Error]:
    """
    ``notifications.E002``: django-notifications-hq installed over this app.

    Both distributions install a top-level package named ``notifications``;
    installing one over the other mixes their files. Its ``notifications.base``
    package is the tell: this app has none.
    """
    if importlib.util.find_spec("notifications.base") is None:
        return []
    return [
        Error(
            "django-notifications-hq is installed in the same 'notifications' "
            "package as django-live-notifications; they cannot be installed "
            "together.",
            hint="Uninstall both, then install only one of them.",
            id="notifications.E002",
        )
    ]
