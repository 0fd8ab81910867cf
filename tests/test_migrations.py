"""
Migrating a database that already has a past: a project moving off
django-notifications-hq keeps hq's migration rows and tables under the label
"notifications"; this app's own label lets ``migrate`` build its tables
beside them, and the system checks say what is left over.
"""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection

from tests.servers import BASE_DIR, database_url

#: django-notifications-hq's first migrations, as its django_migrations rows
#: name them (app label "notifications").
HQ_MIGRATIONS = [
    "0001_initial",
    "0002_auto_20150224_1134",
    "0003_notification_data",
    "0004_auto_20150826_1508",
    "0005_auto_20160504_1520",
    "0006_indexes",
    "0007_add_timestamp_index",
    "0008_index_together_recipient_unread",
]

#: A minimal stand-in for hq's table, with one notification in it.
HQ_TABLES = [
    "CREATE TABLE notifications_notification (id integer PRIMARY KEY, "
    "recipient_id integer NOT NULL, verb varchar(255) NOT NULL, "
    "unread boolean NOT NULL)",
    "INSERT INTO notifications_notification VALUES (1, 1, 'commented', TRUE)",
]

#: Sets hq's past up in the database: its table, then its history.
WRITE_HQ_HISTORY = f"""
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

with connection.cursor() as cursor:
    for statement in {HQ_TABLES!r}:
        cursor.execute(statement)
recorder = MigrationRecorder(connection)
for name in {HQ_MIGRATIONS!r}:
    recorder.record_applied("notifications", name)
"""

#: Uses the app in the migrated database, and looks at hq's table.
USE_THE_APP = """
from django.contrib.auth.models import User
from django.db import connection

from notifications import live, selectors

user = User.objects.create_user("moved")
event_id = live.notify("Welcome", to=live.users(user))
print("inbox", [event.pk == event_id for event in selectors.inbox(user_id=user.pk)])
with connection.cursor() as cursor:
    cursor.execute("SELECT verb FROM notifications_notification")
    print("hq", cursor.fetchall())
"""


@pytest.fixture
def fresh_database(tmp_path) -> Iterator[str]:
    """A database of this test's own, beside the test database: its URL."""
    if connection.vendor == "sqlite":
        yield database_url(str(tmp_path / "moved.sqlite3"))
        return
    params = connection.settings_dict
    name = f"test_notifications_moved_{uuid.uuid4().hex[:10]}"
    server = psycopg.connect(
        dbname="postgres",
        host=params["HOST"] or "localhost",
        port=params["PORT"] or None,
        user=params["USER"] or None,
        password=params["PASSWORD"] or None,
        autocommit=True,
    )
    with server:
        server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name)
        finally:
            server.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def manage(database_url: str, redis_prefix: str, *args: str) -> str:
    """Run manage.py against ``database_url``; its stdout and stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": settings.REDIS_URL,
            "NOTIFICATIONS_REDIS_PREFIX": redis_prefix,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_migrate_succeeds_on_a_database_with_django_notifications_hq_history(
    fresh_database, redis_prefix
):
    """A project that ran django-notifications-hq has ("notifications",
    "0001_initial") applied: ``migrate`` creates this app's tables anyway,
    warns about hq's leftovers (notifications.W003), leaves hq's table as
    it was, and a notification then reaches its recipient's inbox."""
    manage(fresh_database, redis_prefix, "migrate", "auth", "-v0")
    manage(fresh_database, redis_prefix, "shell", "-c", WRITE_HQ_HISTORY)

    migrated = manage(fresh_database, redis_prefix, "migrate", "-v1")
    assert "Applying live_notifications.0001_initial... OK" in migrated
    assert "notifications.W003" in migrated
    assert "django-notifications-hq" in migrated

    used = manage(fresh_database, redis_prefix, "shell", "-c", USE_THE_APP)
    assert "inbox [True]" in used
    assert "hq [('commented',)]" in used


def test_a_database_without_hq_history_migrates_without_a_warning(
    fresh_database, redis_prefix
):
    """A new project sees no word about django-notifications-hq."""
    migrated = manage(fresh_database, redis_prefix, "migrate", "-v1")
    assert "Applying live_notifications.0001_initial... OK" in migrated
    assert "W003" not in migrated


def test_the_apps_tables_and_indexes_are_named_after_its_own_label():
    """Every table, index and constraint this app creates starts with
    live_notifications_: none can meet django-notifications-hq's
    notifications_* tables, or a project's own "notification_unread"."""
    config = apps.get_app_config("live_notifications")
    names = []
    for model in config.get_models():
        opts = model._meta
        names.append(opts.db_table)
        names.extend(field.m2m_db_table() for field in opts.local_many_to_many)
        names.extend(index.name for index in opts.indexes)
        names.extend(constraint.name for constraint in opts.constraints)
    assert len(names) == 8, names
    assert all(name.startswith("live_notifications_") for name in names), names
