"""
The admin's live activity stream: every action the admin records in its
``LogEntry`` log becomes an ``activity`` push to the staff who may view, in
the admin, the object it touched. Off unless ``NOTIFICATIONS_ACTIVITY`` is
set.

"May view" is what the admin itself checks, in two ways:

* A model whose registered ``ModelAdmin`` keeps Django's own
  ``get_queryset()`` and view and change permission checks: the staff who
  hold the model's view or change permission (directly or through a group)
  and the staff superusers. The push names that audience, and the
  ws_server matches it against each connection's rights as they are when
  it relays, so a granted or revoked permission applies at once.
* A model whose ``ModelAdmin`` overrides any of them (a multi-tenant admin
  restricting its queryset, an object-level view permission): the stream
  has no viewer's request when it publishes, so it builds one for each
  candidate (the staff holding the permission, the most recently logged in
  first, at most ``NOTIFICATIONS_ACTIVITY_MAX_VIEWERS``) and asks the
  ``ModelAdmin`` whether that request may view the object: one query per
  candidate however many objects an action touched. The push goes to the
  users it said yes to, staff only.

The push is durable and published after the admin's transaction commits, so
the reconciliation that covers notifications covers activity too, and a
reconnecting page is replayed what it missed. Streaming never fails the
admin's action: whatever goes wrong (a payload over the size limit, a
database error) is logged, in a savepoint that leaves the action's own
transaction as it was, and the action goes on.

Single entries arrive by ``post_save``. Since Django 5.1 the entries of a
multi-object action ("delete selected") are bulk-created, which sends no
signal: ``stream_bulk_created_entries()``, run at start-up, wraps the
manager's ``log_actions()`` to stream those, all in one insert and one
publish. Every admin action goes through ``LogEntry.objects.log_actions()``
(and logs before it deletes), so no entry is missed either way.

One frame goes to every viewer, whatever their language, so its change
message is in the site's ``LANGUAGE_CODE``, beside the structured form the
admin stored (``change_message_data``); the activity page renders its
history in the reader's language.
"""

import functools
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings as django_settings
from django.contrib import admin
from django.contrib.admin.models import (
    ADDITION,
    CHANGE,
    DELETION,
    LogEntry,
    LogEntryManager,
)
from django.contrib.admin.sites import all_sites
from django.contrib.auth import get_permission_codename
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.db.models import F, Q, prefetch_related_objects
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import translation

from . import live, selectors, wire
from .conf import settings
from .models import Audience
from .registry import ACTIVITY
from .usermodel import has_field, key_of

__all__ = [
    "activity_payload",
    "change_message_data",
    "recent_activity",
    "stream_admin_action",
    "stream_bulk_created_entries",
    "stream_entries",
]

logger = logging.getLogger(__name__)

#: The admin's action flags, as the activity stream names them.
ACTIONS = {ADDITION: "add", CHANGE: "change", DELETION: "delete"}
#: Change messages longer than this are cut, to keep the push within the
#: payload limit whatever the admin wrote.
MAX_CHANGE_MESSAGE = 1_000
#: The ModelAdmin methods that decide what a user may view; overriding any
#: of them makes the stream ask the ModelAdmin viewer by viewer.
VIEW_RULES = (
    "get_queryset",
    "has_view_permission",
    "has_change_permission",
    "has_view_or_change_permission",
)


@receiver(post_save, sender=LogEntry, dispatch_uid="notifications.activity")
def stream_admin_action(sender, instance: LogEntry, created: bool, **kwargs) -> None:
    if created:
        stream_entries([instance])


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
            stream_entries(entries)
        return entries

    log_actions.streams_bulk_entries = True  # type: ignore[attr-defined]
    LogEntryManager.log_actions = log_actions


def stream_entries(entries: Sequence[LogEntry]) -> None:
    """
    Push ``entries`` to their viewers once the admin's transaction commits,
    if ``NOTIFICATIONS_ACTIVITY`` is on; log, never raise, what fails.
    """
    if not settings.ACTIVITY:
        return
    try:
        # A savepoint: a failed insert leaves the admin's transaction usable.
        with transaction.atomic():
            pushes = _pushes(entries)
            if pushes:
                live.push_many(ACTIVITY, pushes)
    except Exception:
        logger.exception(
            "admin activity not streamed (%d log entries from %s)",
            len(entries),
            entries[0].object_repr if entries else "",
        )


def _pushes(entries: Sequence[LogEntry]) -> list[tuple[dict, live.Recipients]]:
    """Each entry's payload and audience, the entries nobody may view left out."""
    prefetch_related_objects(list(entries), "content_type", "user")
    by_model: defaultdict[ContentType | None, list[LogEntry]] = defaultdict(list)
    for entry in entries:
        by_model[entry.content_type].append(entry)
    pushes = []
    for content_type, same_model in by_model.items():
        audiences = _audiences(content_type, same_model)
        # One frame for every viewer, so one language: the site's, not the
        # acting admin's. The structured form lets a client render its own.
        with translation.override(django_settings.LANGUAGE_CODE):
            pushes.extend(
                (activity_payload(entry), live.Recipients(audience))
                for entry, audience in zip(same_model, audiences, strict=True)
                if audience is not None
            )
    return pushes


def _audiences(
    content_type: ContentType | None, entries: list[LogEntry]
) -> list[wire.AudienceSpec | None]:
    """The audience of each entry on one model (None: nobody may view it)."""
    if content_type is None:
        return [wire.AudienceSpec(superusers=True, staff_only=True)] * len(entries)
    model = content_type.model_class()
    restricting = _restricting_admins(model)
    if model is None or not restricting:
        names = frozenset(
            f"{content_type.app_label}.{action}_{content_type.model}"
            for action in ("view", "change")
        )
        audience = wire.AudienceSpec(
            superusers=True, permissions=names, staff_only=True
        )
        return [audience] * len(entries)
    viewers = _viewers_by_object(model, restricting, entries)
    return [
        wire.AudienceSpec(
            users=frozenset(viewers[str(entry.object_id)]), staff_only=True
        )
        if viewers.get(str(entry.object_id))
        else None
        for entry in entries
    ]


def _restricting_admins(
    model: type[models.Model] | None,
) -> list[admin.ModelAdmin]:
    """The model's ModelAdmins, on every admin site, if any decides views itself."""
    model_admins = [
        site._registry[model] for site in all_sites if model in site._registry
    ]
    if any(
        getattr(type(model_admin), rule) is not getattr(admin.ModelAdmin, rule)
        for model_admin in model_admins
        for rule in VIEW_RULES
    ):
        return model_admins
    return []


def _viewers_by_object(
    model: type[models.Model],
    model_admins: list[admin.ModelAdmin],
    entries: list[LogEntry],
) -> defaultdict[str, set[wire.UserKey]]:
    """The candidate viewers each object's ModelAdmin lets view it, by object id."""
    object_ids = {str(entry.object_id) for entry in entries if entry.object_id}
    viewers: defaultdict[str, set[wire.UserKey]] = defaultdict(set)
    for user in _candidates(model):
        request = _request_of(user)
        for object_id in viewable(model_admins, request, object_ids):
            viewers[object_id].add(key_of(user))
    return viewers


def _candidates(model: type[models.Model]) -> list[Any]:
    """
    The active staff holding the model's view or change permission, or
    superusers: those the admin might let in, the most recent first, at
    most ``NOTIFICATIONS_ACTIVITY_MAX_VIEWERS`` (a warning says when more).
    """
    if not has_field("is_staff"):
        return []
    opts = model._meta
    permissions = Permission.objects.filter(
        content_type__app_label=opts.app_label,
        content_type__model=opts.model_name,
        codename__in=[get_permission_codename(a, opts) for a in ("view", "change")],
    ).values("pk")
    limit = settings.ACTIVITY_MAX_VIEWERS
    candidates = list(
        selectors.resolve_audience(
            audience=Audience.PERMISSIONS, groups=[], users=[], permissions=permissions
        )
        .filter(is_staff=True)
        .order_by(F("last_login").desc(nulls_last=True), "pk")[: limit + 1]
    )
    if len(candidates) > limit:
        logger.warning(
            "admin activity on %s streamed to the first %d of its possible "
            "viewers (NOTIFICATIONS_ACTIVITY_MAX_VIEWERS)",
            opts.label,
            limit,
        )
    return candidates[:limit]


def _request_of(user: Any) -> HttpRequest:
    """A request as ``user`` would make it: what the ModelAdmin's checks read."""
    request = HttpRequest()
    request.method = "GET"
    request.user = user
    return request


def viewable(
    model_admins: Iterable[admin.ModelAdmin],
    request: HttpRequest,
    object_ids: Iterable[str],
) -> set[str]:
    """
    The ids among ``object_ids`` whose change page some of ``model_admins``
    lets ``request`` view: in its ``get_queryset(request)`` (one query) and
    allowed by ``has_view_or_change_permission(request, obj)``.
    """
    object_ids = list(object_ids)
    allowed: set[str] = set()
    for model_admin in model_admins:
        if not object_ids or not model_admin.has_view_or_change_permission(request):
            continue
        for obj in model_admin.get_queryset(request).filter(pk__in=object_ids):
            if model_admin.has_view_or_change_permission(request, obj):
                allowed.add(str(obj.pk))
    return allowed


def activity_payload(entry: LogEntry) -> dict[str, Any]:
    """
    Return the fields of an ``activity`` push for one admin log entry, its
    change message in the active language.
    """
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
        "change_message_data": change_message_data(entry),
        "time": entry.action_time.isoformat(),
        "user": {
            "id": wire.user_key(entry.user_id),
            "username": entry.user.get_username(),
        },
        "admin_url": entry.get_admin_url() or "",
    }


def change_message_data(entry: LogEntry) -> list[Any] | None:
    """
    The entry's change message in the structured form the admin stores
    (``[{"changed": {"fields": ["Name"]}}]``, field names untranslated), for
    a client that renders it in its reader's language; None for a message
    the admin wrote as text, or one too long to carry.
    """
    message = entry.change_message
    if not message.startswith("[") or len(message) > MAX_CHANGE_MESSAGE:
        return None
    try:
        data = json.loads(message)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, list) else None


def recent_activity(*, request: HttpRequest, limit: int = 50) -> list[LogEntry]:
    """
    The newest admin log entries the request's user may view, newest first:
    the history the activity page shows before the stream goes live. The
    rule is the stream's: staff, with the model's view or change permission,
    and within what a restricting ModelAdmin shows them (so a deleted
    object of such a model, which no queryset holds any more, is not
    listed).
    """
    user = request.user
    if not (user.is_active and getattr(user, "is_staff", False)):
        return []
    entries = LogEntry.objects.select_related("content_type", "user")
    if not user.is_superuser:
        entries = entries.filter(_viewable_models(user))
    recent = list(entries.order_by("-action_time", "-pk")[:limit])
    hidden = _hidden_from(request, recent)
    return [entry for entry in recent if entry.pk not in hidden]


def _viewable_models(user: Any) -> Q:
    """The entries on models whose view or change permission ``user`` holds."""
    viewable_models = Q(pk__in=[])
    for name in user.get_all_permissions():
        app_label, _dot, codename = name.partition(".")
        action, _underscore, model = codename.partition("_")
        if action in {"view", "change"} and model:
            viewable_models |= Q(
                content_type__app_label=app_label, content_type__model=model
            )
    return viewable_models


def _hidden_from(request: HttpRequest, entries: list[LogEntry]) -> set[int]:
    """The entries a restricting ModelAdmin doesn't let ``request`` view."""
    by_model: defaultdict[type[models.Model], list[LogEntry]] = defaultdict(list)
    for entry in entries:
        model = entry.content_type.model_class() if entry.content_type else None
        if model is not None:
            by_model[model].append(entry)
    hidden = set()
    for model, same_model in by_model.items():
        model_admins = _restricting_admins(model)
        if model_admins:
            shown = viewable(
                model_admins, request, {entry.object_id for entry in same_model}
            )
            hidden.update(e.pk for e in same_model if e.object_id not in shown)
    return hidden
