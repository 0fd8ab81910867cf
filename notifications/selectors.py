"""
Reads: who an event is for, a user's inbox, unread counts, what a client missed
(notifications and durable pushes).

All functions take keyword-only arguments and never write. ``__all__`` is
what the ``notifications`` package exports (import it from there); the rest
serves the app's own views and admin and the ws_server, and may change.
"""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Count, F, Min, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from .models import Audience, Event, Notification
from .usermodel import AUDIENCE_FIELDS, has_field
from .wire import UserKey, user_key

#: Primary keys: a list, or a ``values("pk")`` queryset (kept a subquery).
Ids = Collection[int] | QuerySet

__all__ = ["inbox", "unread_count"]


def audience_users(*, event: Event) -> QuerySet:
    """Return the active users ``event`` is for, as a queryset of users."""
    return resolve_audience(
        audience=event.audience,
        groups=event.groups.values("pk"),
        users=event.users.values("pk"),
        permissions=event.permissions.values("pk"),
    )


def resolve_audience(
    *, audience: str, groups: Ids, users: Ids, permissions: Ids
) -> QuerySet:
    """
    The active users an audience covers, before any event exists (the
    admin's preview counts them). ``groups``, ``users`` and ``permissions``
    are primary keys, as a list or a ``values("pk")`` queryset.
    """
    user_model = get_user_model()
    active = user_model._default_manager.all()
    if has_field("is_active"):
        active = active.filter(is_active=True)
    if audience == Audience.EVERYONE:
        return active
    if audience in AUDIENCE_FIELDS and not has_field(AUDIENCE_FIELDS[audience]):
        # A user model without the field (notifications.W001): nobody.
        return active.none()
    if audience == Audience.STAFF:
        return active.filter(is_staff=True)
    if audience == Audience.SUPERUSERS:
        return active.filter(is_superuser=True)
    if audience == Audience.GROUPS:
        members = user_model.groups.through.objects.filter(group__in=groups)
        return active.filter(pk__in=members.values("user"))
    if audience == Audience.PERMISSIONS:
        return active.filter(_holds_any(permissions))
    return active.filter(pk__in=users)


def _holds_any(permissions: Ids) -> Q:
    """
    Users holding any of ``permissions`` as ``ModelBackend`` grants them:
    superusers, direct holders, members of a holding group. Subqueries, so
    the recipients still resolve in the one ``INSERT ... SELECT``.
    """
    user_model = get_user_model()
    direct = user_model.user_permissions.through.objects.filter(
        permission__in=permissions
    ).values("user")
    holders = Q(pk__in=direct)
    if has_field("is_superuser"):
        holders |= Q(is_superuser=True)
    if has_field("groups"):
        groups = Group.permissions.through.objects.filter(
            permission__in=permissions
        ).values("group")
        members = user_model.groups.through.objects.filter(group__in=groups)
        holders |= Q(pk__in=members.values("user"))
    return holders


@dataclass(frozen=True, slots=True)
class DeliveryStats:
    """What became of one event's inbox rows."""

    recipients: int
    delivered: int
    read: int
    first_read_at: datetime | None
    dismissed: int


def delivery_stats(*, event_id: int) -> DeliveryStats:
    """Count an event's recipients, live deliveries, reads and dismissals: one query."""
    counts = Notification.objects.filter(event_id=event_id).aggregate(
        recipients=Count("pk"),
        delivered=Count("pk", filter=Q(delivered_at__isnull=False)),
        read=Count("pk", filter=Q(read_at__isnull=False)),
        first_read_at=Min("read_at"),
        dismissed=Count("pk", filter=Q(dismissed_at__isnull=False)),
    )
    return DeliveryStats(**counts)


def _visible(**filters: object) -> QuerySet:
    """Notifications (matching ``filters``) not dismissed, retracted or expired."""
    return Notification.objects.filter(
        dismissed_at__isnull=True, event__retracted_at__isnull=True, **filters
    ).filter(
        Q(event__expires_at__isnull=True) | Q(event__expires_at__gt=timezone.now())
    )


def inbox(
    *, user_id: object, before: int | None = None, limit: int = 20
) -> list[Notification]:
    """Return one page of the inbox, newest first, older than event ``before``."""
    notifications = _visible(user_id=user_id).select_related("event")
    if before is not None:
        notifications = notifications.filter(event_id__lt=before)
    return list(notifications.order_by("-event_id")[:limit])


def unread_count(*, user_id: object) -> int:
    """Count unread notifications (served by the partial ``live_notifications_unread`` index)."""
    return _visible(user_id=user_id).filter(read_at__isnull=True).count()


def unread_counts(*, user_ids: Collection[UserKey]) -> dict[UserKey, int]:
    """
    ``unread_count`` for many users in one query (the ws_server batches).

    These, and the two below, answer by user key (``wire.user_key``), the
    form the ws_server asks in, whatever type the database returns.
    """
    counts = (
        _visible(user_id__in=user_ids, read_at__isnull=True)
        .order_by()
        .values("user_id")
        .annotate(unread=Count("pk"))
        .values_list("user_id", "unread")
    )
    return dict.fromkeys(user_ids, 0) | {user_key(pk): n for pk, n in counts}


def missed_event_ids(
    *, after: Mapping[UserKey, int], limit: int
) -> dict[UserKey, list[int]]:
    """
    The ids of up to ``limit`` events each user missed, oldest first, in one query.

    ``after`` maps each user id to the last event id that user has seen; the
    ws_server batches resuming connections through this. A batch of one,
    the usual case outside reconnect storms, needs no window function:
    without it Django builds the query in half the time.
    """
    missed: dict[UserKey, list[int]] = {user_id: [] for user_id in after}
    if len(after) == 1:
        [(user_id, last_id)] = after.items()
        missed[user_id] = list(
            _visible(user_id=user_id, event_id__gt=last_id)
            .order_by("event_id")
            .values_list("event_id", flat=True)[:limit]
        )
        return missed
    if not after:
        return missed
    newer = Q()
    for user_id, last_id in after.items():
        newer |= Q(user_id=user_id, event_id__gt=last_id)
    rows = (
        _visible()
        .filter(newer)
        .annotate(
            rank=Window(RowNumber(), partition_by=F("user_id"), order_by="event_id")
        )
        .filter(rank__lte=limit)
        .order_by("user_id", "event_id")
        .values_list("user_id", "event_id")
    )
    for user_id, event_id in rows:
        missed[user_key(user_id)].append(event_id)
    return missed


def read_among(
    *, missed: Mapping[UserKey, Collection[int]]
) -> set[tuple[UserKey, int]]:
    """
    The (user id, event id) pairs of ``missed`` (event ids by user) that the
    user has read: a replay carries one frame per event for everyone, and
    this says which of them each user read, in one query.
    """
    if not any(missed.values()):
        return set()  # new connections: nothing to build a query for
    pairs = Q()
    for user_id, event_ids in missed.items():
        if event_ids:
            pairs |= Q(user_id=user_id, event_id__in=event_ids)
    rows = Notification.objects.filter(pairs, read_at__isnull=False).values_list(
        "user_id", "event_id"
    )
    return {(user_key(user_id), event_id) for user_id, event_id in rows}


def events_by_id(*, ids: Collection[int]) -> dict[int, Event]:
    """Events by id, in one query."""
    return Event.objects.in_bulk(ids) if ids else {}


def events_with_audience(*, ids: Collection[int]) -> list[Event]:
    """Events by id, oldest first, with what ``audience_spec`` reads prefetched."""
    return list(
        Event.objects.filter(pk__in=ids)
        .prefetch_related("groups", "users", "permissions__content_type")
        .order_by("pk")
    )


def event_ids_after(*, after: int, also: Collection[int] = (), limit: int) -> list[int]:
    """
    Up to ``limit`` committed event ids above ``after`` or among ``also``,
    lowest first: what a relay that has seen everything up to ``after``
    except ``also`` has yet to see.

    Two primary-key lookups rather than one ``OR``, which SQLite answers
    with a scan of the whole table; the second only when ``also`` isn't empty.
    """
    events = Event.objects.order_by("pk").values_list("pk", flat=True)
    ids = list(events.filter(pk__gt=after)[:limit])
    if also:
        ids = sorted({*ids, *events.filter(pk__in=also)})[:limit]
    return ids


def latest_pushes_after(*, after: int, sent_since: datetime, limit: int) -> list[Event]:
    """
    The newest ``limit`` durable pushes above id ``after`` sent at
    ``sent_since`` or later, newest first (a backward range scan of the
    ``live_notifications_event_push`` index).
    """
    return list(
        Event.objects.exclude(push_type="")
        .filter(pk__gt=after, created_at__gte=sent_since)
        .only("pk", "push_type", "push_data", "push_audience", "created_at")
        .order_by("-pk")[:limit]
    )


def latest_event_id() -> int:
    """Return the highest event id, or 0 when there is none."""
    return Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
