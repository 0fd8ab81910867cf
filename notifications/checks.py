"""System checks: configuration mistakes reported at start-up, not at first use."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from .registry import declared_event_types

__all__ = ["check_event_types"]


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
