"""
What the activity stream costs the admin's bulk actions: a "delete
selected" costs the same number of queries and one publish, whatever the
number of objects (but for the database's own cap on a query's parameters).
"""

import math

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from notifications import publishing
from notifications.models import Event
from tests.admins import deletes_selected
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def delete_selected_cost(browser: Client, count: int, capture) -> tuple[int, int]:
    """Queries and publishes of the admin's "delete selected" on ``count`` groups."""
    groups = [make_group() for _ in range(count)]
    with (
        CaptureQueriesContext(connection) as queries,
        capture() as callbacks,
    ):
        deletes_selected(browser, groups)
    assert not Group.objects.filter(pk__in=[group.pk for group in groups]).exists()
    publishes = [
        callback
        for callback in callbacks
        if getattr(callback, "func", None) is publishing.publish_pushes
    ]
    return len(queries), len(publishes)


def insert_batches(count: int) -> int:
    """
    The INSERTs ``bulk_create`` splits ``count`` activity rows into: one,
    except where the database caps a query's parameters (SQLite before
    Django 6.0: 999, so 76 rows of 13 fields a query).
    """
    fields = [field for field in Event._meta.concrete_fields if not field.primary_key]
    return math.ceil(count / connection.ops.bulk_batch_size(fields, [None] * count))


def test_delete_selected_costs_the_same_for_10_and_100_objects(
    django_capture_on_commit_callbacks,
):
    """Deleting 100 groups with "delete selected" makes as many queries as
    deleting 10 (but for the INSERTs the database's parameter cap splits),
    and one publish each time, while every group's activity row is written."""
    admin = make_user(staff=True, is_superuser=True)
    browser = Client()
    browser.force_login(admin)
    # Warm up the caches Django fills once (session, content types).
    delete_selected_cost(browser, 2, django_capture_on_commit_callbacks)
    ten = delete_selected_cost(browser, 10, django_capture_on_commit_callbacks)
    hundred = delete_selected_cost(browser, 100, django_capture_on_commit_callbacks)
    split = insert_batches(100) - insert_batches(10)
    assert (ten[0] + split, ten[1]) == hundred
    assert ten[1] == 1
    assert Event.objects.filter(push_type="activity").count() == 112
