"""
What the project's user model offers the audiences.

Django's own user has ``is_active``, ``is_staff``, ``is_superuser``,
``groups`` and ``user_permissions``; a custom one built on
``AbstractBaseUser`` may have none of them. Each audience uses only what is
there: without ``is_staff`` the staff audience is nobody, without ``groups``
the groups audience is nobody, and so on, and the system check
``notifications.W001`` says so at start-up.
"""

from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError

from . import wire

__all__ = ["AUDIENCE_FIELDS", "has_field", "key_of"]

#: The user field each audience needs.
AUDIENCE_FIELDS = {
    "staff": "is_staff",
    "superusers": "is_superuser",
    "groups": "groups",
    "permissions": "user_permissions",
}


@cache
def has_field(name: str) -> bool:
    """Tell whether the user model has the field ``name``."""
    try:
        get_user_model()._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def key_of(user: Any) -> wire.UserKey:
    """
    The key of ``user`` (an instance, or its primary key in any form: ``5`` or
    ``"5"``, a UUID or its string) as the wire, the hub and the signals spell
    it. Raises ``ValueError`` for something that can't be a primary key.
    """
    pk = getattr(user, "pk", user)
    try:
        return wire.user_key(get_user_model()._meta.pk.to_python(pk))
    except ValidationError as error:
        raise ValueError(f"not a user id: {pk!r}") from error
