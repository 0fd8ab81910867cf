"""
The admin's live activity stream: every action the admin records in its
``LogEntry`` log becomes an ``activity`` push to the users who may view the
model it touched.

"May view" is what the admin itself checks: the model's view or change
permission, held directly or through a group, or being a superuser. The
push is durable and published after the admin's transaction commits, so
the reconciliation that covers notifications covers activity too, and a
reconnecting page is replayed what it missed.

Single entries arrive by ``post_save``. Since Django 5.1 the entries of a
multi-object action ("delete selected") are bulk-created, which sends no
signal: ``stream_bulk_created_entries()``, run at start-up, wraps the
manager's ``log_actions()`` to stream those. Every admin action goes through
``LogEntry.objects.log_actions()``, so no entry is missed either way.
"""

import functools
from typing import Any

from django.contrib.admin.models import (
    ADDITION,
    CHANGE,
    DELETION,
    LogEntry,
    LogEntryManager,
)
from django.db.models import Q
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import live, wire
from .registry import ACTIVITY

__all__ = [
    "activity_payload",
    "activity_recipients",
    "recent_activity",
    "stream_admin_action",
    "stream_bulk_created_entries",
]

#: The admin's action flags, as the activity stream names them.
ACTIONS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}
#: Change messages longer than this are cut, to keep the push within the
#: payload limit whatever the admin wrote.
MAX_CHANGE_MESSAGE = 1_000


@receiver(post_save, sender=LogEntry, dispatch_uid="notifications.activity")
def stream_admin_action(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if created:
        _stream(instance)


def _stream(entry: LogEntry) -> None:
    live.push(ACTIVITY, activity_payload(entry), to=activity_recipients(entry))


def stream_bulk_created_entries() -> None:
    """
    Make ``LogEntryManager.log_actions()`` stream the entries it bulk-creates
    (at start-up; idempotent).

    The manager is Django's and the admin's migrations record it, so it is
    neither subclassed in place (``makemigrations`` would then see a changed
    manager in Django's own app) nor replaced: its method is wrapped, once.
    A single entry is ``save()``d, and ``post_save`` streamed it already.
    """
    original = LogEntryManager.log_actions
    if getattr(original, "streams_bulk_entries", False):
        return

    @functools.wraps(original)
    def log_actions(self, *args, **kwargs):
        entries = original(self, *args, **kwargs)
        if isinstance(entries, list) and len(entries) > 1:
            for entry in entries:
                _stream(entry)
        return entries

    log_actions.streams_bulk_entries = True  # type: ignore[attr-defined]
    LogEntryManager.log_actions = log_actions


def activity_payload(entry: LogEntry) -> dict[str, Any]:
    """Return the fields of an ``activity`` push for one admin log entry."""
    content_type = entry.content_type
    return {
        "content_type": (
            f"{content_type.app_label}.{content_type.model}" if content_type else None
        ),
        # A text column, but an entry fresh from log_actions() holds the pk.
        "object_id": None if entry.object_id is None else str(entry.object_id),
        "object_repr": entry.object_repr,
        "action": ACTIONS.get(entry.action_flag, "change"),
        "change_message": entry.get_change_message()[:MAX_CHANGE_MESSAGE],
        "time": entry.action_time.isoformat(),
        "user": {
            "id": wire.user_key(entry.user_id),
            "username": entry.user.get_username(),
        },
        "admin_url": entry.get_admin_url() or "",
    }


def activity_recipients(entry: LogEntry) -> live.Recipients:
    """The viewers of the entry's model; superusers only if it names none."""
    content_type = entry.content_type
    if content_type is None:
        return live.superusers()
    app_label, model = content_type.app_label, content_type.model
    return live.Recipients(
        wire.AudienceSpec(
            superusers=True,
            permissions=frozenset(
                {f"{app_label}.view_{model}", f"{app_label}.change_{model}"}
            ),
        )
    )


def recent_activity(*, user: Any, limit: int = 50) -> list[LogEntry]:
    """
    The newest admin log entries ``user`` may view, newest first: the
    history the activity page shows before the stream goes live.
    """
    entries = LogEntry.objects.select_related("content_type", "user")
    if not user.is_superuser:
        viewable = Q(pk__in=[])
        for name in user.get_all_permissions():
            app_label, _dot, codename = name.partition(".")
            action, _underscore, model = codename.partition("_")
            if action in {"view", "change"} and model:
                viewable |= Q(
                    content_type__app_label=app_label, content_type__model=model
                )
        entries = entries.filter(viewable)
    return list(entries.order_by("-action_time", "-pk")[:limit])
