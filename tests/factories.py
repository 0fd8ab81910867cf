"""Small helpers to create users and groups in tests."""

from itertools import count
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

_serial = count()


def make_user(
    *, staff: bool = False, groups: tuple[Group, ...] = (), **fields: Any
) -> Any:
    username = fields.pop("username", f"user{next(_serial)}")
    user = get_user_model().objects.create_user(
        username=username,
        password="correct horse battery staple",
        is_staff=staff,
        **fields,
    )
    user.groups.add(*groups)
    return user


def make_group(name: str | None = None) -> Group:
    return Group.objects.create(name=name or f"group{next(_serial)}")
