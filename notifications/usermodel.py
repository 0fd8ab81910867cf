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

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist

__all__ = ["AUDIENCE_FIELDS", "has_field"]

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
