"""
Writes: sending events and changing read state.

Each service runs in one transaction and publishes only after it commits.
``__all__`` is what the ``notifications`` package exports (import it from
there); the rest serves the app's own admin, ``notifications.live`` and the
ws_server, and may change: projects send with ``notifications.notify()``,
``push()`` and ``retract()``.
"""

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import hooks, publishing, selectors, wire
from .models import Audience, Event, Level, Notification
from .payloads import audience_spec
from .registry import BUILTIN_EVENT_TYPES, RETRACTED, EventType
from .usermodel import key_of

__all__ = ["InboxChange", "dismiss", "mark_all_read", "mark_read"]


def validate_audience(
    audience: str,
    *,
    groups: Sequence[Group],
    users: Sequence[AbstractBaseUser],
    permissions: Sequence[Permission] = (),
) -> None:
    """Raise ``ValidationError`` unless the audience names its recipients."""
    if audience == Audience.GROUPS and not groups:
        raise ValidationError(
            {"groups": _("Choose at least one group for this audience.")}
        )
    if audience == Audience.USERS and not users:
        raise ValidationError(
            {"users": _("Choose at least one user for this audience.")}
        )
    if audience == Audience.PERMISSIONS and not permissions:
        raise ValidationError(
            {"permissions": _("Choose at least one permission for this audience.")}
        )


@transaction.atomic
def send_event(
    *,
    title: str,
    body: str = "",
    level: str = Level.INFO,
    url: str = "",
    audience: str = Audience.EVERYONE,
    groups: Iterable[Group] = (),
    users: Iterable[AbstractBaseUser] = (),
    permissions: Iterable[Permission] = (),
    created_by: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> Event:
    """
    Create an event, give each recipient an inbox row, publish it on commit.

    ``groups`` is required for the "groups" audience, ``users`` for the
    "users" audience and ``permissions`` for the "permissions" audience;
    each is ignored otherwise.
    """
    groups, users, permissions = list(groups), list(users), list(permissions)
    validate_audience(audience, groups=groups, users=users, permissions=permissions)
    event = Event(
        title=title,
        body=body,
        level=level,
        url=url,
        audience=audience,
        created_by=created_by,
        expires_at=expires_at,
    )
    event.full_clean(exclude=["groups", "users", "permissions", "created_by"])
    event.save()
    if audience == Audience.GROUPS:
        event.groups.set(groups)
    if audience == Audience.USERS:
        event.users.set(users)
    if audience == Audience.PERMISSIONS:
        event.permissions.set(permissions)
    _fan_out(event)
    transaction.on_commit(partial(_announce_sent, event), robust=True)
    return event


def _announce_sent(event: Event) -> None:
    """After the commit: publish to the open pages, then tell the receivers."""
    publishing.publish_event(event)
    hooks.send(hooks.notification_sent, Event, event=event)


def send_push(
    *, event_type: EventType, data: Any, audience: wire.AudienceSpec
) -> int | None:
    """
    Send a push whose data ``notifications.live`` has validated: keep it if
    durable (one row, no inbox rows: the ws_server matches its audience
    against connections), publish it on commit. Return its id if durable.
    """
    [event_id] = send_pushes(event_type=event_type, pushes=[(data, audience)])
    return event_id


def send_pushes(
    *, event_type: EventType, pushes: Sequence[tuple[Any, wire.AudienceSpec]]
) -> list[int | None]:
    """
    Send several validated pushes of one type as ``send_push`` sends one,
    at a cost that doesn't grow with their number: one insert for the rows
    of durable ones, one publish on commit. Return their ids, in order.
    """
    if not pushes:
        return []
    if event_type.durable:
        rows = [
            Event(
                title="",
                push_type=event_type.name,
                push_data=data,
                push_audience=wire.audience_data(audience),
            )
            for data, audience in pushes
        ]
        _insert(rows)
        sent = [(row.pk, row.created_at) for row in rows]
    else:
        sent = [(None, timezone.now())] * len(pushes)
    # Encoded now: data the caller changes after this call is not what is sent.
    messages = [
        wire.encode_push(
            {
                "id": event_id,
                "name": event_type.name,
                "data": data,
                "sent_at": sent_at.isoformat(),
            },
            audience,
        )
        for (event_id, sent_at), (data, audience) in zip(sent, pushes, strict=True)
    ]
    what = f"push {sent[0][0] or event_type.name}"
    if len(messages) > 1:
        what += f" and {len(messages) - 1} more"
    transaction.on_commit(
        partial(publishing.publish_pushes, messages, what=what), robust=True
    )
    return [event_id for event_id, _sent_at in sent]


def _insert(rows: list[Event]) -> None:
    """
    Insert ``rows`` and give each its id: in one query where the database
    returns the ids of a bulk insert (PostgreSQL, SQLite 3.35+, MariaDB),
    one query a row elsewhere (MySQL).
    """
    if connection.features.can_return_rows_from_bulk_insert:
        Event.objects.bulk_create(rows)
    else:
        for row in rows:
            row.save()


@transaction.atomic
def retract_event(*, event: Event, by: AbstractBaseUser | None) -> bool:
    """
    Take a sent notification back: it leaves every inbox and resume now, and
    every open page once this commits. False if it already was retracted.
    """
    changed = Event.objects.filter(pk=event.pk, retracted_at__isnull=True).update(
        retracted_at=timezone.now(), retracted_by=by
    )
    if changed:
        announce_retraction(event)
    return bool(changed)


def announce_retraction(event: Event) -> None:
    """
    Tell the event's audience's open pages to remove it (a durable push, so
    reconciliation and resume carry it), on commit. Deleting an event calls
    this too, before its audience rows go.
    """
    send_push(
        event_type=BUILTIN_EVENT_TYPES[RETRACTED],
        data={"ids": [event.pk]},
        audience=audience_spec(event),
    )


def record_deliveries(
    *,
    acknowledged: Mapping[int, Collection[wire.UserKey]],
    at: datetime,
    chunk: int = 5_000,
) -> int:
    """
    Mark delivered the notifications clients acknowledged: ``acknowledged``
    maps event ids to user ids. First acknowledgement wins; returns how
    many rows changed, and tells ``notification_delivered`` which.

    An acknowledgement is the client's word: ids that are not the user's
    inbox rows, or were delivered already, change nothing and are not
    reported. One UPDATE per ``chunk`` acknowledgements whatever ids they
    name, so a client acknowledging ids at random costs no more than one
    acknowledging what it received.
    """
    changed = 0
    delivered: dict[int, list[wire.UserKey]] = {}
    for pairs in _chunks(acknowledged, _pairs_per_statement(chunk)):
        condition = _acknowledged_rows(pairs)
        count = Notification.objects.filter(
            condition, delivered_at__isnull=True
        ).update(delivered_at=at)
        changed += count
        if count and hooks.notification_delivered.has_listeners(Notification):
            # The rows this call just marked carry its timestamp: no
            # transaction, no lock. (Another process marking the same row
            # at the same microsecond would have it reported twice.)
            rows = Notification.objects.filter(condition, delivered_at=at)
            for event_id, user_id in rows.values_list("event_id", "user_id"):
                delivered.setdefault(event_id, []).append(user_id)
    if delivered:
        hooks.send(
            hooks.notification_delivered,
            Notification,
            acknowledged={
                event: sorted(users) for event, users in sorted(delivered.items())
            },
        )
    return changed


def _pairs_per_statement(chunk: int) -> int:
    """At most ``chunk``, and below the database's limit on query parameters."""
    limit = connection.features.max_query_params
    return chunk if limit is None else max(1, min(chunk, limit // 2 - 1))


def _chunks(
    acknowledged: Mapping[int, Collection[wire.UserKey]], size: int
) -> Iterable[dict[int, list[wire.UserKey]]]:
    """The acknowledgements, ``size`` (event, user) pairs at a time."""
    batch: dict[int, list[wire.UserKey]] = {}
    count = 0
    for event_id, user_ids in acknowledged.items():
        for user_id in user_ids:
            batch.setdefault(event_id, []).append(user_id)
            count += 1
            if count == size:
                yield batch
                batch, count = {}, 0
    if batch:
        yield batch


def _acknowledged_rows(pairs: Mapping[int, Collection[wire.UserKey]]) -> Q:
    """The inbox rows of these (event, users) pairs, as one condition."""
    condition = Q()
    for event_id, user_ids in pairs.items():
        condition |= Q(event_id=event_id, user_id__in=sorted(user_ids))
    return condition


def purge_pushes(*, sent_before: datetime) -> int:
    """
    Delete the durable pushes sent before ``sent_before``; return how many.

    Resume already ignores pushes past their retention; this only frees the
    rows. Notifications are never touched.
    """
    deleted, _by_model = (
        Event.objects.exclude(push_type="").filter(created_at__lt=sent_before).delete()
    )
    return deleted


def _fan_out(event: Event) -> None:
    """
    Insert one inbox row per recipient with a single INSERT ... SELECT.

    The recipients never travel through Python, so sending to every one of
    100,000 users costs one statement rather than 100,000 objects.
    """
    recipients = selectors.audience_users(event=event).values("pk")
    try:
        select_sql, params = recipients.query.sql_with_params()
    except EmptyResultSet:
        return  # an audience the user model can't have (notifications.W001)
    table = connection.ops.quote_name(Notification._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, event_id) "
            f"SELECT recipient.pk, %s FROM ({select_sql}) recipient "
            # In key order whatever the plan: scattered rows cost the inbox's
            # user_id indexes twice as much (bench/analysis.md, "groups").
            "ORDER BY recipient.pk",
            (event.pk, *params),
        )


@dataclass(frozen=True, slots=True)
class InboxChange:
    """
    What a read-state change did: how many notifications it ``changed``, and
    the user's ``unread`` count after it (the views return it, the open tabs
    are told it). True when something changed.
    """

    changed: int
    unread: int

    def __bool__(self) -> bool:
        return self.changed > 0


def mark_read(*, user_id: object, event_id: int) -> InboxChange:
    """Mark one notification read."""
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id=event_id, read_at__isnull=True
        ).update(read_at=timezone.now())
        return _announce(user_id, changed, hooks.notification_read, ids=[event_id])


def mark_all_read(*, user_id: object, up_to: int) -> InboxChange:
    """
    Mark read every notification up to event ``up_to``.

    The bound makes it race-safe: a notification that arrives while the user
    clicks "mark all read" has a higher id and stays unread.
    """
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id__lte=up_to, read_at__isnull=True
        ).update(read_at=timezone.now())
        return _announce(user_id, changed, hooks.notification_read, up_to=up_to)


def dismiss(*, user_id: object, event_id: int) -> InboxChange:
    """Archive one notification out of the inbox."""
    with transaction.atomic():
        changed = Notification.objects.filter(
            user_id=user_id, event_id=event_id, dismissed_at__isnull=True
        ).update(dismissed_at=timezone.now())
        return _announce(user_id, changed, hooks.notification_dismissed, ids=[event_id])


#: Who hears of a read-state change: every tab (over Redis), and receivers.
_PUBLISHERS: dict[Signal, Callable[..., None]] = {
    hooks.notification_read: publishing.publish_read,
    hooks.notification_dismissed: publishing.publish_dismissed,
}


def _announce(
    user_id: object, changed: int, signal: Signal, **fields: object
) -> InboxChange:
    """Count what is unread now; if anything changed, say so on commit."""
    unread = selectors.unread_count(user_id=user_id)
    # The views pass request.user.pk, the socket a wire key: receivers get one.
    user_id = key_of(user_id)
    if changed:
        publish = _PUBLISHERS[signal]
        transaction.on_commit(
            partial(publish, user_id, unread=unread, **fields), robust=True
        )
        transaction.on_commit(
            partial(
                hooks.send,
                signal,
                Notification,
                user_id=user_id,
                unread=unread,
                **fields,
            ),
            robust=True,
        )
    return InboxChange(changed, unread)
