"""
Sending from application code: notifications and live events, and the
audiences they go to. Import these from ``notifications`` (the public API)::

    import notifications

    notifications.push("order.status", {"order": 1234, "status": "shipped"},
                       to=notifications.users(order.customer))
    notifications.push("dashboard.counter", {"value": 57},
                       to=notifications.groups(sales))
    notifications.push("document.edited", {"id": doc.pk},
                       to=notifications.viewers_of(doc))
    event_id = notifications.notify("Your export is ready", url=export.url,
                                    to=notifications.users(request.user))
    notifications.retract(event_id)

An event type is declared in ``NOTIFICATIONS_EVENT_TYPES`` (see
``notifications.registry``) with its delivery class: durable (the default)
or live-only. The payload is JSON data, checked and size-limited here, so a
mistake raises in the code that made it. The audience is resolved by each
ws_server among the users connected to it, so a push is one message on
Redis however many users receive it; audiences combine with ``|``.

A push is published after the surrounding transaction commits, like a
notification, and not at all if it rolls back. ``docs/live-events.md``
states what each delivery class promises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth import get_permission_codename, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.core.exceptions import ValidationError
from django.db import models

from . import services, wire
from .conf import settings
from .models import Audience, Event, Level
from .registry import EventType, UndeclaredEventType, get_event_type
from .usermodel import key_of

__all__ = [
    "InvalidPayload",
    "Recipients",
    "UndeclaredEventType",
    "everyone",
    "groups",
    "notify",
    "permission",
    "push",
    "push_many",
    "retract",
    "staff",
    "superusers",
    "users",
    "viewers_of",
]

#: Deepest nesting a payload may have (browsers' and servers' JSON decoders
#: recurse per level).
MAX_DEPTH = 32


class InvalidPayload(ValueError):
    """A payload that isn't JSON data, is too large, or fails its type's check."""


@dataclass(frozen=True, slots=True)
class Recipients:
    """Who a push is for. Build one with the functions below; ``a | b`` is both."""

    audience: wire.AudienceSpec

    def __or__(self, other: Recipients) -> Recipients:
        a, b = self.audience, other.audience
        if a.staff_only != b.staff_only:
            # (A and staff) or B has no AudienceSpec: refuse, don't widen A.
            raise ValueError("a staff-only audience combines only with another")
        return Recipients(
            wire.AudienceSpec(
                everyone=a.everyone or b.everyone,
                staff=a.staff or b.staff,
                superusers=a.superusers or b.superusers,
                groups=a.groups | b.groups,
                users=a.users | b.users,
                permissions=a.permissions | b.permissions,
                staff_only=a.staff_only,
            )
        )


def everyone() -> Recipients:
    """Every connected user."""
    return Recipients(wire.AudienceSpec(everyone=True))


def staff() -> Recipients:
    """Users with ``is_staff``."""
    return Recipients(wire.AudienceSpec(staff=True))


def superusers() -> Recipients:
    """Users with ``is_superuser``."""
    return Recipients(wire.AudienceSpec(superusers=True))


def users(*users: AbstractBaseUser | wire.UserKey | UUID) -> Recipients:
    """These users (instances or primary keys, of any type)."""
    keys = frozenset(map(key_of, users))
    if not keys:
        raise ValueError("name at least one user")
    return Recipients(wire.AudienceSpec(users=keys))


def groups(*groups: Group | int) -> Recipients:
    """The members of these groups (instances or primary keys)."""
    return Recipients(wire.AudienceSpec(groups=_primary_keys(groups, "group")))


def permission(*names: str) -> Recipients:
    """
    Holders of any of these permissions (``"app_label.codename"``), directly
    or through a group, and superusers: who ``user.has_perm()`` says yes to
    with Django's ``ModelBackend``.
    """
    if not names:
        raise ValueError("name at least one permission")
    for name in names:
        _check_permission(name)
    return Recipients(wire.AudienceSpec(permissions=frozenset(names)))


def viewers_of(model: type[models.Model] | models.Model) -> Recipients:
    """
    The users the admin lets view ``model`` (a model class or an instance
    of one): holders of its view or change permission, and superusers.
    """
    opts = model._meta
    return permission(
        *(
            f"{opts.app_label}.{get_permission_codename(action, opts)}"
            for action in ("view", "change")
        )
    )


def push(event_type: str, data: Any, *, to: Recipients) -> int | None:
    """
    Send ``data`` as an event of ``event_type`` to ``to``, once the current
    transaction commits (at once outside one).

    Return the event's id for a durable type (its row is written now, in the
    caller's transaction), None for a live-only one. Raise
    :exc:`UndeclaredEventType` for a type that isn't declared and
    :exc:`InvalidPayload` for data that isn't JSON, is larger than
    ``NOTIFICATIONS_PUSH_MAX_BYTES`` encoded, or fails the type's check.
    """
    declared = get_event_type(event_type)
    _validate(declared, data)
    return services.send_push(event_type=declared, data=data, audience=to.audience)


def push_many(
    event_type: str, pushes: Sequence[tuple[Any, Recipients]]
) -> list[int | None]:
    """
    Send each ``(data, to)`` of ``pushes`` as :func:`push` would, at a cost
    that doesn't grow with their number: one insert for the rows of a
    durable type, one publish on commit. Return their ids, in order.

    Raise as :func:`push` does, before anything is sent, if any payload is
    refused.
    """
    declared = get_event_type(event_type)
    for data, _to in pushes:
        _validate(declared, data)
    return services.send_pushes(
        event_type=declared, pushes=[(data, to.audience) for data, to in pushes]
    )


def notify(
    title: str,
    *,
    to: Recipients,
    body: str = "",
    url: str = "",
    level: str = Level.INFO,
    expires_at: datetime | None = None,
    sender: AbstractBaseUser | None = None,
) -> int:
    """
    Send a notification to ``to`` and return its event id.

    Each recipient gets an inbox row now, in the caller's transaction; their
    open pages get it live once that commits. Unlike a push, a notification
    is resolved to users when it is sent, so ``to`` is one kind of audience:
    ``everyone()``, ``staff()``, ``superusers()``, ``users(...)``,
    ``groups(...)`` or ``permission(...)`` (``ValueError`` for a union of two
    kinds: send one notification each, or name the users).
    """
    spec = to.audience
    kinds = [field.name for field in fields(spec) if getattr(spec, field.name)]
    if len(kinds) != 1:
        raise ValueError(
            f"a notification goes to one kind of audience, not {' | '.join(kinds)}"
        )
    [kind] = kinds
    event = services.send_event(
        title=title,
        body=body,
        url=url,
        level=level,
        audience=_AUDIENCES[kind],
        users=get_user_model().objects.filter(pk__in=spec.users),
        groups=Group.objects.filter(pk__in=spec.groups),
        permissions=[_permission_object(name) for name in spec.permissions],
        created_by=sender,
        expires_at=expires_at,
    )
    return event.pk


def retract(event_id: int, *, by: AbstractBaseUser | None = None) -> bool:
    """
    Take back the notification ``event_id`` (what ``notify()`` returned):
    it leaves every inbox and resume now, in the caller's transaction, and
    every open page once that commits; ``by`` is recorded as who did it.

    Return False if it was retracted already. Raise ``ValueError`` if no
    notification has that id (a push, once sent, can't be taken back).
    """
    try:
        event = Event.objects.get(pk=event_id, push_type="")
    except Event.DoesNotExist:
        raise ValueError(f"no notification has the id {event_id!r}") from None
    return services.retract_event(event=event, by=by)


#: AudienceSpec field -> the Event audience it becomes.
_AUDIENCES = {
    "everyone": Audience.EVERYONE,
    "staff": Audience.STAFF,
    "superusers": Audience.SUPERUSERS,
    "users": Audience.USERS,
    "groups": Audience.GROUPS,
    "permissions": Audience.PERMISSIONS,
}


def _permission_object(name: str) -> Permission:
    app_label, codename = name.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def _validate(declared: EventType, data: Any) -> None:
    _check_json(data, depth=0)
    size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
    if size > settings.PUSH_MAX_BYTES:
        raise InvalidPayload(
            f"{declared.name} payload is {size} bytes encoded; "
            f"NOTIFICATIONS_PUSH_MAX_BYTES is {settings.PUSH_MAX_BYTES}"
        )
    if declared.check is not None:
        try:
            declared.check(data)
        except (ValueError, ValidationError) as exc:
            raise InvalidPayload(
                f"{declared.name} payload refused by its check: {exc}"
            ) from exc


def _check_json(value: Any, *, depth: int) -> None:
    """
    Refuse what JSON can't carry as it is: ``json.dumps`` would turn a
    non-string key into a string and NaN into invalid JSON, silently.
    """
    if depth > MAX_DEPTH:
        raise InvalidPayload(f"payload is nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidPayload(f"payload holds {value!r}, which JSON can't carry")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check_json(item, depth=depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidPayload(f"payload key {key!r} is not a string")
            _check_json(item, depth=depth + 1)
        return
    raise InvalidPayload(
        f"payload holds a {type(value).__name__}, which is not JSON data "
        "(send str, int, float, bool, None, list or dict)"
    )


def _primary_keys(items: Iterable[models.Model | int], kind: str) -> frozenset[int]:
    keys = frozenset(
        item if isinstance(item, int) and not isinstance(item, bool) else item.pk
        for item in items
    )
    if not keys:
        raise ValueError(f"name at least one {kind}")
    return keys


def _check_permission(name: str) -> None:
    app_label, dot, codename = name.partition(".")
    if not dot or (app_label, codename) not in _known_permissions(name):
        raise ValueError(
            f"unknown permission {name!r}: give 'app_label.codename' of a "
            "permission in the database"
        )


def _known_permissions(name: str) -> frozenset[tuple[str, str]]:
    """
    Every permission's (app label, codename), loaded once per process and
    again when ``name`` is not among them (it may have been created since).
    """
    global _permissions
    app_label, _dot, codename = name.partition(".")
    if _permissions is None or (app_label, codename) not in _permissions:
        _permissions = frozenset(
            Permission.objects.values_list("content_type__app_label", "codename")
        )
    return _permissions


_permissions: frozenset[tuple[str, str]] | None = None
