"""
What live notifications cost the Django side, measured in its own process.

* Publishing: the milliseconds that ``send_event``'s ``on_commit`` publish
  (one XADD) adds to the request that sends an event, next to the whole
  ``send_event`` call for a one-recipient event.
* Pushing: the whole ``live.push`` call to one user, for a live-only and a
  durable type, next to ``send_event`` to one user, each outside a
  transaction as a view in autocommit makes it (so each includes its
  commit and its ``on_commit`` XADD).
* Publishing while Redis hangs: the same ``send_event`` calls with a private
  redis-server frozen (SIGSTOP). The first request waits one
  ``NOTIFICATIONS_PUBLISH_TIMEOUT``; the circuit breaker skips Redis for the
  ones after it.
* Database fan-out: ``send_event`` to "everyone" with 100,000 active users,
  which inserts 100,000 inbox rows in one INSERT ... SELECT; then to each
  audience type in turns, each resolving to the same 100,000 recipients.

Runs against its own database (DATABASE_URL), which it leaves without the
users and events it created.

    python -m bench.djangocost --users 100000 --output cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import django

from bench import pushtypes

if TYPE_CHECKING:
    from django.db.models import Model, QuerySet

USERNAME_PREFIX = "bench-fanout-"
#: The fan-out group's name, and the group ``clean_up`` deletes.
GROUP_NAME = f"{USERNAME_PREFIX}members"
#: Recipients of the "permissions" audience who also hold it directly.
DIRECT_HOLDERS = 100


def measure_publish(repeats: int) -> dict[str, Any]:
    """Time ``send_event`` for one recipient, and the publish inside it."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from notifications.models import Audience
    from notifications.services import send_event

    recipient = get_user_model()._default_manager.create(
        username=f"{USERNAME_PREFIX}recipient"
    )
    totals, publishes = [], []
    for i in range(repeats):
        marks: dict[str, float] = {}
        started = time.perf_counter()
        # The outer block only lets us stamp around the publish callback:
        # on_commit callbacks run in registration order, right after commit.
        with transaction.atomic():
            transaction.on_commit(partial(_stamp, marks, "committed"))
            send_event(title=f"cost {i}", audience=Audience.USERS, users=[recipient])
            transaction.on_commit(partial(_stamp, marks, "published"))
        totals.append(time.perf_counter() - started)
        publishes.append(marks["published"] - marks["committed"])
    return {
        "repeats": repeats,
        "send_event_ms": _percentiles(totals),
        "publish_ms": _percentiles(publishes),
    }


def measure_push(repeats: int) -> dict[str, Any]:
    """
    Time ``live.push`` to one user, live-only and durable, and ``send_event``
    to one user, in turns, each call outside a transaction.

    One untimed round first: parsing the declared types and Redis's first
    connection are a process's start-up, not a request's.
    """
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    from notifications import live
    from notifications.models import Audience
    from notifications.services import send_event

    recipient, _created = get_user_model()._default_manager.get_or_create(
        username=f"{USERNAME_PREFIX}push-recipient"
    )
    data = {"order": 1234, "status": "shipped"}
    calls: dict[str, Callable[[int], object]] = {
        "send_event_ms": lambda i: send_event(
            title=f"push cost {i}", audience=Audience.USERS, users=[recipient]
        ),
        "push_live_ms": lambda i: live.push(
            pushtypes.LIVE, data, to=live.users(recipient)
        ),
        "push_durable_ms": lambda i: live.push(
            pushtypes.DURABLE, data, to=live.users(recipient)
        ),
    }
    with override_settings(NOTIFICATIONS_EVENT_TYPES=pushtypes.EVENT_TYPES):
        _time_calls(calls, 1)
        timings = _time_calls(calls, repeats)
    return {
        "repeats": repeats,
        **{name: _percentiles(seconds) for name, seconds in timings.items()},
    }


def measure_publish_hung(repeats: int) -> dict[str, Any]:
    """
    Time ``send_event`` for one recipient, back to back, while Redis hangs.

    A private redis-server (never the run's: other processes use that one)
    takes one publish first, so the client holds a pooled connection as in a
    process that has been serving, then is paused with SIGSTOP: connections
    are accepted and nothing answers, as with a hung Redis.
    """
    from django.contrib.auth import get_user_model
    from django.test import override_settings

    from notifications.broker import get_redis
    from notifications.conf import settings
    from notifications.models import Audience
    from notifications.services import send_event
    from scripts.redis_server import RedisServer

    recipient, _created = get_user_model()._default_manager.get_or_create(
        username=f"{USERNAME_PREFIX}hung-recipient"
    )
    send = partial(send_event, audience=Audience.USERS, users=[recipient])
    with RedisServer() as server, override_settings(REDIS_URL=server.url):
        get_redis.cache_clear()
        try:
            send(title="warm-up")
            server.pause()
            calls = {"hung": lambda i: send(title=f"hung {i}")}
            hung = _time_calls(calls, repeats)["hung"]
        finally:
            get_redis.cache_clear()
    timeout = settings.PUBLISH_TIMEOUT
    return {
        "repeats": repeats,
        "publish_timeout_ms": round(timeout * 1000, 1),
        "cooldown_s": settings.PUBLISH_COOLDOWN,
        "first_ms": round(hung[0] * 1000, 3),
        "send_event_ms": _percentiles(hung),
        # Requests that waited for Redis: the first, then one per cooldown.
        "waited": sum(t >= timeout / 2 for t in hung),
    }


def _stamp(marks: dict[str, float], name: str) -> None:
    marks[name] = time.perf_counter()


def _time_calls(
    calls: dict[str, Callable[[int], object]],
    repeats: int,
    around: Callable[[str], AbstractContextManager[object]] | None = None,
) -> dict[str, list[float]]:
    """
    Call each of ``calls`` with 0 .. ``repeats`` - 1 and time every call, in
    turns: whatever drifts during the run (the machine's other work, caches)
    weighs on all of them alike, so they compare side by side.

    ``around(name)``, if given, is entered before each call of ``name`` and
    left after it, outside the timing: the setup and the bookkeeping a call
    needs but a request would not pay for.
    """
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            with around(name) if around else nullcontext():
                started = time.perf_counter()
                call(i)
                timings[name].append(time.perf_counter() - started)
    return timings


def measure_fanout(users: int, repeats: int) -> dict[str, Any]:
    """Time ``send_event`` to everyone with ``users`` active users."""
    from notifications.services import send_event

    started = time.perf_counter()
    active = _top_up_active_users(users)
    create_s = time.perf_counter() - started
    rows: list[int] = []
    calls = {"everyone": lambda i: send_event(title=f"fan-out {i}", body="x" * 100)}
    timings = _time_calls(calls, repeats, lambda name: _counting_inbox_rows(rows))
    seconds = timings["everyone"]
    return {
        "users": active,
        "rows_per_event": rows[-1],
        "repeats": repeats,
        "send_event_ms": [round(t * 1000, 1) for t in seconds],
        "median_ms": round(statistics.median(seconds) * 1000, 1),
        "create_users_s": round(create_s, 2),
    }


def measure_fanout_by_audience(users: int, repeats: int) -> dict[str, Any]:
    """
    Time ``send_event`` to every audience type, in turns, each resolving to
    the same ``users`` recipients.

    The recipients are the active users this module creates, topped up as in
    ``measure_fanout`` (a database's own active users count for "everyone"
    only): all staff, all in one group that holds a permission (the first
    ``DIRECT_HOLDERS`` also hold it directly), all selected for the "users"
    audience, whose event then has ``users`` rows in ``Event.users``. Beside
    them are as many inactive users, so every query leaves out as many users
    as it picks. The recipients are superusers only for the "superusers"
    turn: a superuser holds every permission, and with all of them
    superusers the "permissions" audience would be that flag alone, never
    reaching its group subqueries. Flipping the flag is not timed, nor is
    the ``_vacuum`` after it and after the setup; each send inserts into an
    empty inbox table, as in ``measure_fanout``.
    """
    started = time.perf_counter()
    arguments = _prepare_audiences(users)
    setup_s = time.perf_counter() - started
    rows: dict[str, list[int]] = {audience: [] for audience in arguments}
    calls = {
        audience: partial(_send_to, audience, kwargs)
        for audience, kwargs in arguments.items()
    }
    timings = _time_calls(calls, repeats, partial(_audience_turn, rows))
    return {
        "users": _active_users().count(),
        "population": _users().count(),
        "repeats": repeats,
        "setup_s": round(setup_s, 2),
        "audiences": {
            audience: {
                "recipients": rows[audience][-1],
                # Rows the event's own relation got: Event.groups, .users or
                # .permissions ("users" holds every recipient, as an admin's
                # "selected users" rarely would).
                "audience_rows": sum(map(len, arguments[audience].values())),
                "send_event_s": _seconds(timings[audience]),
            }
            for audience in arguments
        },
    }


def _send_to(audience: str, kwargs: dict[str, list[Any]], i: int) -> None:
    from notifications.services import send_event

    send_event(title=f"{audience} {i}", body="x" * 100, audience=audience, **kwargs)


def _prepare_audiences(users: int) -> dict[str, dict[str, list[Any]]]:
    """
    Make every audience type resolve to the ``users`` recipients described
    in ``measure_fanout_by_audience``; return each type's ``send_event``
    arguments.
    """
    from django.contrib.auth.models import Group, Permission

    from notifications.models import Audience

    _top_up_active_users(users)
    _create_users("bystander-", users, is_active=False)
    recipients = _active_users()
    recipients.update(is_staff=True)
    permission = Permission.objects.get_by_natural_key(
        "view_event", "live_notifications", "event"
    )
    group, _created = Group.objects.get_or_create(name=GROUP_NAME)
    group.permissions.add(permission)
    selected = list(recipients.only("pk").order_by("pk"))
    _grant(group.user_set.through, "group_id", group.pk, selected)
    _grant(
        permission.user_set.through,
        "permission_id",
        permission.pk,
        selected[:DIRECT_HOLDERS],
    )
    _vacuum(recipients.model, group.user_set.through, permission.user_set.through)
    return {
        Audience.EVERYONE: {},
        Audience.STAFF: {},
        Audience.SUPERUSERS: {},
        Audience.GROUPS: {"groups": [group]},
        Audience.USERS: {"users": selected},
        Audience.PERMISSIONS: {"permissions": [permission]},
    }


def _grant(through: type[Model], field: str, value: int, users: list[Any]) -> None:
    """
    Add ``users`` to a group or a permission with rows of its ``through``
    table: no ``m2m_changed``, which would announce each user to Redis.
    """
    through.objects.bulk_create(
        [through(user_id=user.pk, **{field: value}) for user in users],
        batch_size=5_000,
        ignore_conflicts=True,
    )


@contextmanager
def _audience_turn(rows: dict[str, list[int]], audience: str) -> Iterator[None]:
    """
    Make the recipients superusers for the "superusers" turn only, and count
    the inbox rows of the send.
    """
    from notifications.models import Audience

    superusers = audience == Audience.SUPERUSERS
    recipients = _active_users()
    if recipients.exclude(is_superuser=superusers).update(is_superuser=superusers):
        _vacuum(recipients.model)
    with _counting_inbox_rows(rows[audience]):
        yield


@contextmanager
def _counting_inbox_rows(counts: list[int]) -> Iterator[None]:
    """
    Empty the inbox table (TRUNCATE on PostgreSQL: its indexes keep no dead
    entries of the sends before), let one send fill it, append how many
    rows it has.
    """
    from django.core.management.color import no_style
    from django.db import connection

    from notifications.models import Notification

    table = Notification._meta.db_table
    connection.ops.execute_sql_flush(connection.ops.sql_flush(no_style(), [table]))
    yield
    counts.append(Notification.objects.count())


def _vacuum(*models: type[Model]) -> None:
    """
    On PostgreSQL, VACUUM ANALYZE the tables of ``models``, as autovacuum
    does soon after a bulk change: a send meets current statistics and no
    dead rows whatever the server's autovacuum settings, not a plan built on
    guessed selectivities. SQLite keeps no statistics unless an application
    asks, and applications don't.
    """
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {tables}")


def _top_up_active_users(users: int) -> int:
    """
    Create users until ``users`` are active (a shared database may have some
    already); return how many are.
    """
    from django.contrib.auth import get_user_model

    active = get_user_model()._default_manager.filter(is_active=True)
    _create_users("", users - active.count())
    return active.count()


def _create_users(name: str, count: int, **fields: Any) -> None:
    """Create ``count`` users ``USERNAME_PREFIX + name + number``, if missing."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    model = get_user_model()
    password = make_password(None)
    model._default_manager.bulk_create(
        [
            model(
                username=f"{USERNAME_PREFIX}{name}{i:07d}", password=password, **fields
            )
            for i in range(count)
        ],
        batch_size=5_000,
        ignore_conflicts=True,
    )


def _users() -> QuerySet:
    """The users this module creates."""
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(
        username__startswith=USERNAME_PREFIX
    )


def _active_users() -> QuerySet:
    """The fan-out's recipients: the active users this module created."""
    return _users().filter(is_active=True)


def clean_up() -> None:
    """Leave the database as we found it: no fan-out users or group, no events."""
    from django.contrib.auth.models import Group

    from bench.fixtures import clear_events
    from notifications.models import Event

    # clear_events() predates Event.permissions: its rows would hold the events.
    Event.permissions.through.objects.all()._raw_delete(Event.objects.db)
    clear_events()
    _users().delete()
    Group.objects.filter(name=GROUP_NAME).delete()


def _seconds(seconds: list[float]) -> dict[str, Any]:
    """Seconds per call: median and worst of a few repeats, and each one."""
    return {
        "p50": round(statistics.median(seconds), 3),
        "max": round(max(seconds), 3),
        "each": [round(s, 3) for s in seconds],
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)

    def rank(q: float) -> float:
        return round(ms[min(len(ms) - 1, int(len(ms) * q))], 3)

    return {
        "p50": round(statistics.median(ms), 3),
        "p90": rank(0.90),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ms[-1], 3),
        "mean": round(statistics.fmean(ms), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--fanout-repeats", type=int, default=3)
    parser.add_argument(
        "--audience-repeats",
        type=int,
        help="rounds of send_event to each audience type (default: --fanout-repeats)",
    )
    parser.add_argument("--publish-repeats", type=int, default=200)
    parser.add_argument(
        "--push-repeats",
        type=int,
        default=1000,
        help="rounds of send_event, live-only push, durable push",
    )
    parser.add_argument(
        "--hung-repeats", type=int, default=200, help="send_event calls, Redis hung"
    )
    parser.add_argument("--output", required=True)
    parser.add_argument(
        "--clean-up", action="store_true", help="delete what it created (shared DB)"
    )
    options = parser.parse_args()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    try:
        result = {
            "publish": measure_publish(options.publish_repeats),
            "push": measure_push(options.push_repeats),
            "publish_hung": measure_publish_hung(options.hung_repeats),
            "fanout": measure_fanout(options.users, options.fanout_repeats),
            "fanout_by_audience": measure_fanout_by_audience(
                options.users, options.audience_repeats or options.fanout_repeats
            ),
        }
    finally:
        if options.clean_up:
            clean_up()
    Path(options.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
