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
  which inserts 100,000 inbox rows in one INSERT ... SELECT.

Runs against its own database (DATABASE_URL), which it leaves without the
users and events it created.

    python -m bench.djangocost --users 100000 --output cost.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import django

from bench import pushtypes

USERNAME_PREFIX = "bench-fanout-"


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
    calls: dict[str, Callable[[int], object]], repeats: int
) -> dict[str, list[float]]:
    """
    Call each of ``calls`` with 0 .. ``repeats`` - 1 and time every call, in
    turns: whatever drifts during the run (the machine's other work, caches)
    weighs on all of them alike, so they compare side by side.
    """
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call(i)
            timings[name].append(time.perf_counter() - started)
    return timings


def measure_fanout(users: int, repeats: int) -> dict[str, Any]:
    """Time ``send_event`` to everyone with ``users`` active users."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from notifications.models import Notification
    from notifications.services import send_event

    model = get_user_model()
    password = make_password(None)
    # Top up to ``users`` active users: a shared database may have some already.
    missing = users - model._default_manager.filter(is_active=True).count()
    started = time.perf_counter()
    model._default_manager.bulk_create(
        [
            model(username=f"{USERNAME_PREFIX}{i:07d}", password=password)
            for i in range(missing)
        ],
        batch_size=5_000,
    )
    create_s = time.perf_counter() - started
    active = model._default_manager.filter(is_active=True).count()
    timings = []
    for i in range(repeats):
        Notification.objects.all()._raw_delete(Notification.objects.db)
        started = time.perf_counter()
        event = send_event(title=f"fan-out {i}", body="x" * 100)
        timings.append(time.perf_counter() - started)
    rows = Notification.objects.filter(event=event).count()
    return {
        "users": active,
        "rows_per_event": rows,
        "repeats": repeats,
        "send_event_ms": [round(t * 1000, 1) for t in timings],
        "median_ms": round(statistics.median(timings) * 1000, 1),
        "create_users_s": round(create_s, 2),
    }


def clean_up() -> None:
    """Leave the database as we found it: no fan-out users, no events."""
    from django.contrib.auth import get_user_model

    from bench.fixtures import clear_events

    clear_events()
    get_user_model()._default_manager.filter(
        username__startswith=USERNAME_PREFIX
    ).delete()


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
        }
    finally:
        if options.clean_up:
            clean_up()
    Path(options.output).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
