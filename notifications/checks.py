"""System checks: configuration mistakes reported at start-up, not at first use."""

import importlib.util
from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .registry import declared_event_types
from .usermodel import AUDIENCE_FIELDS, has_field

__all__ = ["check_event_types", "check_package_conflict", "check_user_model"]


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


@register()
def check_user_model(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Warning]:
    """``notifications.W001``: an audience the user model can't have members of."""
    return [
        Warning(
            f"The user model has no {field!r} field: the {audience!r} audience "
            "reaches nobody.",
            hint="Send to users or everyone instead, or add the field "
            "(PermissionsMixin gives is_superuser, groups and user_permissions).",
            id="notifications.W001",
        )
        for audience, field in AUDIENCE_FIELDS.items()
        if not has_field(field)
    ]
