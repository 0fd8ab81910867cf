"""
ModelAdmins as projects write them, a way to register one of a test's own
on the default admin site for a block, and admin actions driven over HTTP.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Group
from django.db import models
from django.test import Client


class NameOnlyUserAdmin(UserAdmin):
    """A project's user admin that searches a name field only (as
    cookiecutter-django's searches ``name``)."""

    search_fields = ["first_name"]


@contextmanager
def registered_admin(
    model: type[models.Model], model_admin: type[admin.ModelAdmin]
) -> Iterator[None]:
    """
    Make ``model_admin`` the default site's admin of ``model`` in the block,
    as a project's own admin.py would, then put the one before back.

    The site's URLs were built with the one before, so requests to the
    model's own admin pages still reach it; what looks the admin up at run
    time (the activity stream, autocomplete) sees this one.
    """
    previous = admin.site._registry.pop(model, None)
    admin.site.register(model, model_admin)
    try:
        yield
    finally:
        admin.site._registry.pop(model, None)
        if previous is not None:
            admin.site._registry[model] = previous


def deletes_selected(browser: Client, groups: list[Group]) -> None:
    """The admin's "delete selected" action on ``groups``, confirmed."""
    response = browser.post(
        "/admin/auth/group/",
        {
            "action": "delete_selected",
            "_selected_action": [group.pk for group in groups],
            "post": "yes",
        },
    )
    assert response.status_code == 302, response.content[:500]
