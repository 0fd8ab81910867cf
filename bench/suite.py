"""
The benchmark suite, end to end: environment, fixtures, every measurement,
the Django-side costs, then results and the report.

Isolation: a run directory under bench/runs/ (logs, SQLite databases,
session list), its own Redis key prefixes, a private Redis unless REDIS_URL
answers, loopback addresses only. Bounds: every phase has a timeout and the
whole run has ``--time-limit``; every child process is stopped on the way
out, whatever the way out is.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import pushtypes
from bench.processes import Children
from bench.redis_service import redis_cpu_seconds, use_redis
from bench.servers import REPO_ROOT, SERVERS
from notifications.wire import NOTIFICATION, PUSH

__all__ = ["main"]

BENCH_DIR = REPO_ROOT / "bench"
RUNS_DIR = BENCH_DIR / "runs"
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
ORIGIN = "http://bench.localhost"
FULL_SERVERS = [
    "raw",
    "ours",
    "channels",
    "ours-asyncio",
    "ours-deflate",
    "ours-cache-sessions",
    "ours-workers2",
    "ours-deflate-workers2",
]
SMOKE_SERVERS = ["raw", "ours", "channels", "ours-deflate"]
#: What benchmark events can be sent as: notifications, live-only pushes.
KINDS = (NOTIFICATION, PUSH)
#: What the load clients do with notifications: nothing, or acknowledge them.
ACK_MODES = {"off": False, "on": True}
#: After each burst of a run with acknowledgements, measure CPU this long:
#: the clients' 0.25 s delay, the server's one-second batch, its writing.
ACK_TAIL = 3.0
#: Under --instructions (bench/instructions.py) the server runs tens of times
#: slower: few handshakes in flight, a long database timeout (the handshake
#: deadline), and few events, so that the counted handshakes are the ones a
#: server at full speed would make, none refused as too slow.
INSTRUCTIONS_CONCURRENCY = 10
INSTRUCTIONS_DB_TIMEOUT = 600
INSTRUCTIONS_EVENTS = 3
SESSION_ENGINES = {
    "cache": "django.contrib.sessions.backends.cache",
    "db": "django.contrib.sessions.backends.db",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 bench/run.py",
        description="Benchmark ws_server against raw websockets and Django Channels.",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="N=50, quick; non-zero exit on any loss"
    )
    parser.add_argument(
        "--sizes", default="1000,5000,10000", help="connection counts, comma separated"
    )
    parser.add_argument("--servers", help=f"comma separated, from {', '.join(SERVERS)}")
    parser.add_argument(
        "--events",
        help="what events are sent as: notification (default), push (live-only, "
        "to everyone), or notification,push: both, A/B in one measurement "
        "(smoke's default; Channels gets notifications only)",
    )
    parser.add_argument(
        "--ack",
        nargs="?",
        const="on",
        default="off",
        help="clients acknowledge notifications as live.js does: --ack (on), or "
        "--ack off,on: both, A/B in one run (every burst then gets a CPU tail "
        f"of {ACK_TAIL:g} s, and no report is rendered: it compares servers)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure everything this many times"
    )
    parser.add_argument(
        "--load-clients", type=int, default=2, help="load-client processes"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help=f"handshakes in flight (default 100; {INSTRUCTIONS_CONCURRENCY} "
        "with --instructions)",
    )
    parser.add_argument(
        "--database-url",
        help="a dedicated, empty database (default: SQLite in the run dir)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL"), help="used if it answers"
    )
    parser.add_argument("--session-engine", choices=SESSION_ENGINES, default="db")
    parser.add_argument(
        "--conn-max-age", type=int, default=60, help="CONN_MAX_AGE for every process"
    )
    parser.add_argument("--fanout-users", type=int, default=100_000)
    parser.add_argument("--time-limit", type=int, help="seconds for the whole run")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"results JSON (default {RESULTS_FILE.relative_to(REPO_ROOT)})",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="don't render docs/benchmarks.md"
    )
    parser.add_argument(
        "--keep-dumps",
        action="store_true",
        help="keep every receipt log in the run dir",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the servers (numbers then skewed)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the servers' instructions per handshake with callgrind "
        "(the other numbers then skewed)",
    )
    parser.add_argument(
        "--quiet-wait", type=float, default=60.0,
        help="before each measurement, wait up to this many s for other work to stop",
    )  # fmt: skip
    options = parser.parse_args(argv)
    if options.smoke:
        options.sizes = "50"
        options.servers = options.servers or ",".join(SMOKE_SERVERS)
        options.events = options.events or ",".join(KINDS)
        options.fanout_users = min(options.fanout_users, 1_000)
        options.load_clients = 1
        options.quiet_wait = 0.0
    options.sizes = [int(size) for size in options.sizes.split(",")]
    options.servers = (options.servers or ",".join(FULL_SERVERS)).split(",")
    unknown = set(options.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    for name in options.servers:
        try:
            SERVERS[name].checkout()
        except ValueError as error:
            parser.error(str(error))
    events = (options.events or NOTIFICATION).split(",")
    unknown = set(events) - set(KINDS)
    if unknown:
        parser.error(f"unknown events: {', '.join(sorted(unknown))}")
    options.events = tuple(dict.fromkeys(events))
    acks = options.ack.split(",")
    unknown = set(acks) - set(ACK_MODES)
    if unknown:
        parser.error(f"unknown --ack modes: {', '.join(sorted(unknown))}")
    options.ack = tuple(ACK_MODES[mode] for mode in dict.fromkeys(acks))
    if len(options.ack) > 1:
        options.no_report = True
    if options.concurrency is None:
        options.concurrency = INSTRUCTIONS_CONCURRENCY if options.instructions else 100
    if options.instructions:
        options.no_report = True
        options.quiet_wait = 0.0  # counts don't depend on the machine's load
    options.time_limit = options.time_limit or (150 if options.smoke else 1800)
    return options


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    run_dir = RUNS_DIR / time.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    _raise_open_files_limit()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGALRM, _time_is_up)
    signal.alarm(options.time_limit)
    started = time.time()
    try:
        with use_redis(options.redis_url) as redis_url, Children(run_dir) as children:
            results = run(options, run_dir, redis_url, children)
    except KeyboardInterrupt:
        print(
            "Interrupted; every process this run started has been stopped.",
            file=sys.stderr,
        )
        return 130
    except TimeLimitReached as exc:
        print(
            f"{exc}; every process this run started has been stopped.", file=sys.stderr
        )
        return 2
    finally:
        signal.alarm(0)
    results["duration_s"] = round(time.time() - started)
    return finish(options, run_dir, results)


def run(
    options: argparse.Namespace, run_dir: Path, redis_url: str, children: Children
) -> dict[str, Any]:
    """Everything that needs Redis and the children: fixtures, measurements, costs."""
    prefix = f"bench-{run_dir.name}"
    env = bench_env(options, run_dir, redis_url, prefix)
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.channels_app.settings"
    import django

    django.setup()
    from bench import fixtures
    from bench.scenario import Bench, run_scenario

    servers = options.servers
    print(f"Run directory: {run_dir.relative_to(REPO_ROOT)}", flush=True)
    fixtures.prepare_database()
    user_pks = fixtures.create_users(max(options.sizes))
    session_keys = fixtures.create_sessions(user_pks)
    sessions_file = run_dir / "sessions.txt"
    sessions_file.write_text("\n".join(session_keys) + "\n")
    bench = Bench(
        run_dir=run_dir,
        env=env,
        redis_cpu=lambda: redis_cpu_seconds(redis_url),
        stream=f"{prefix}:stream",
        sessions_file=sessions_file,
        user_pks=user_pks,
        children=children,
        origin=ORIGIN,
        keep_dumps=options.keep_dumps,
        quiet_wait=options.quiet_wait,
        profile=options.profile,
        instructions=options.instructions,
    )
    measurements = []
    try:
        for repeat in range(options.repeat):
            # A B, then B A: no server is always the first (or last) measured.
            order = servers if repeat % 2 == 0 else servers[::-1]
            for size in options.sizes:
                for name, ack in itertools.product(order, options.ack):
                    spec = SERVERS[name]
                    plan = make_plan(
                        size,
                        options,
                        channels=spec.publishing == "channels",
                        repeat=repeat,
                        ack=ack,
                    )
                    acking = ", acknowledging" if ack else ""
                    print(
                        f"[{repeat + 1}/{options.repeat}] {spec.label}, N={size}"
                        f"{acking} ...",
                        flush=True,
                    )
                    result = run_scenario(bench, spec, plan)
                    result["repeat"] = repeat
                    print("    " + one_line(result), flush=True)
                    measurements.append(result)
        django_costs = measure_django_costs(options, run_dir, env)
    finally:
        if options.redis_url and redis_url == options.redis_url:
            clean_redis(redis_url, prefix, session_keys)
    return {
        "command": " ".join(["python3", "bench/run.py", *sys.argv[1:]]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "smoke": options.smoke,
        "machine": describe_machine(redis_url),
        "settings": {
            "session_engine": env["SESSION_ENGINE"],
            "conn_max_age": options.conn_max_age,
            "database": env["DATABASE_URL"].partition(":")[0],
            "load_clients": options.load_clients,
            "concurrency": options.concurrency,
            "ack": list(options.ack),
        },
        "measurements": measurements,
        "django": django_costs,
    }


def make_plan(
    size: int, options: argparse.Namespace, *, channels: bool, repeat: int, ack: bool
) -> Any:
    """
    Phase sizes for N connections.

    Latency events are spaced so each fan-out ends before the next starts
    (about 30 us per connection, from the raw ceiling, plus margin). The
    burst is ~300,000 deliveries (at most 200 events), enough for seconds of
    steady state; Channels gets a fifth of it, or it would take minutes,
    and notifications only (its comparison publishes no pushes). Both
    counts are per kind of event; each repeat sends a different kind first.
    In a run where clients acknowledge, every burst has a CPU tail, so that
    its measurements with and without acknowledgements compare.
    """
    from bench.scenario import Plan

    burst = 50 if options.smoke else min(200, max(10, 300_000 // size))
    latency = 10 if options.smoke else 30
    if options.instructions:
        burst = latency = INSTRUCTIONS_EVENTS
    if channels:
        burst = max(5, burst // 5)
    kinds = (NOTIFICATION,) if channels else options.events
    return Plan(
        kinds=kinds,
        lead=repeat % len(kinds),
        connections=size,
        load_clients=options.load_clients,
        concurrency=options.concurrency,
        latency_events=latency,
        latency_interval=0.05 + size * 30e-6,
        burst_events=burst,
        phase_timeout=10 if options.smoke else 30,
        connect_timeout=30,
        ack=ack,
        burst_tail=ACK_TAIL if any(options.ack) else 0.0,
    )


def bench_env(
    options: argparse.Namespace, run_dir: Path, redis_url: str, prefix: str
) -> dict[str, str]:
    """The environment every process of the run shares (see project/settings.py)."""
    database_url = options.database_url or f"sqlite:///{run_dir / 'bench.sqlite3'}"
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "CONN_MAX_AGE": str(options.conn_max_age),
        "REDIS_URL": redis_url,
        "CACHE_URL": redis_url,
        "SESSION_ENGINE": SESSION_ENGINES[options.session_engine],
        "NOTIFICATIONS_REDIS_PREFIX": prefix,
        "NOTIFICATIONS_WS_ORIGINS": ORIGIN,
        # The load clients open thousands of connections from each address.
        "NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_ADDRESS": "0",
        "BENCH_CHANNELS_PREFIX": f"{prefix}-asgi",
        # Declared as a project declares its own (read by project/settings.py).
        "NOTIFICATIONS_EVENT_TYPES": json.dumps(pushtypes.EVENT_TYPES),
        "LOG_LEVEL": "INFO",
        **(
            {"NOTIFICATIONS_DB_TIMEOUT": str(INSTRUCTIONS_DB_TIMEOUT)}
            if options.instructions
            else {}
        ),
    }


def measure_django_costs(
    options: argparse.Namespace, run_dir: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Publish cost and the 100,000-user fan-out, in a fresh Django process."""
    print(
        f"Django side: publish cost, fan-out to {options.fanout_users:,} users ...",
        flush=True,
    )
    output = run_dir / "django-costs.json"
    database_url = options.database_url or f"sqlite:///{run_dir / 'fanout.sqlite3'}"
    command = [
        sys.executable, "-m", "bench.djangocost", "--users", str(options.fanout_users),
        "--output", str(output),
    ]  # fmt: skip
    if options.smoke:
        command += [
            "--fanout-repeats", "1", "--publish-repeats", "20", "--push-repeats", "20",
        ]  # fmt: skip
    if options.database_url:
        command.append("--clean-up")
    subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={
            **env,
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "project.settings",
        },
        check=True,
        timeout=600,
    )
    costs: dict[str, Any] = json.loads(output.read_text())
    push = costs["push"]
    print(
        f"    publish adds {costs['publish']['publish_ms']['p50']} ms (p50); "
        f"push to one user {push['push_live_ms']['p50']} ms live, "
        f"{push['push_durable_ms']['p50']} ms durable (p50); "
        f"fan-out to {costs['fanout']['users']:,} users: {costs['fanout']['median_ms']} ms",
        flush=True,
    )
    return costs


def one_line(result: dict[str, Any]) -> str:
    kinds = "; ".join(_kind_line(kind, n) for kind, n in result["kinds"].items())
    recorded = result["recorded"]
    counted = result.get("instructions_per_handshake")
    if counted:
        kinds += (
            f"; instructions a handshake: {counted['connect']:,} new, "
            f"{counted['storm']:,} resuming"
        )
    return (
        f"{result['ready']}/{result['connections']} ready at {result['connect_per_s']}/s, "
        f"{result['kib_per_connection']} KiB/conn, {kinds}; losses {result['losses']}, "
        f"storm {result['storm']['ready']} resumed in {result['storm']['seconds']} s; "
        f"{result['acks_sent']:,} acks, {recorded['delivered']:,}/{recorded['rows']:,} "
        f"rows delivered in {recorded['updates']:,} UPDATEs"
    )


def _kind_line(kind: str, numbers: dict[str, Any]) -> str:
    latency, burst = numbers["latency"], numbers["burst"]
    return (
        f"{kind}: p50/p99 {latency['p50_ms']}/{latency['p99_ms']} ms, "
        f"burst {burst['deliveries_per_s']:,}/s (p99 {burst['p99_ms']} ms), "
        f"server CPU {numbers['burst_cpu']['server']}%"
    )


def finish(options: argparse.Namespace, run_dir: Path, results: dict[str, Any]) -> int:
    """Write results (and the report), remove the databases, return the exit code."""
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    if not options.smoke:
        output = options.output or RESULTS_FILE
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"Results: {output}")
        if not options.no_report:
            from bench.report import render

            for path in render(results):
                print(f"Report: {path.relative_to(REPO_ROOT)}")
    for database in run_dir.glob("*.sqlite3*"):
        database.unlink()
    problems = check(results, strict=options.smoke)
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def check(results: dict[str, Any], *, strict: bool) -> list[str]:
    """
    Failures: lost events, failed or closed connections, duplicates.

    ``strict`` (smoke) holds every server to it; a full run reports the
    Channels comparison's losses as data and only fails on ours and raw.
    """
    problems = []
    for m in results["measurements"]:
        if not strict and m["server"] == "channels":
            continue
        where = f"{m['server']} N={m['connections']}"
        if m["connect_failed"] or m["ready"] < m["connections"]:
            problems.append(
                f"{where}: {m['connections'] - m['ready']} connection(s) failed: {m['connect_errors']}"
            )
        if m["losses"]:
            problems.append(f"{where}: {m['losses']} lost deliveries")
        for kind, numbers in m["kinds"].items():
            if numbers["latency"]["duplicates"] or numbers["burst"]["duplicates"]:
                problems.append(f"{where}: duplicate {kind} deliveries")
        if m["storm"]["ready"] < m["connections"]:
            problems.append(
                f"{where}: reconnect storm: {m['connections'] - m['storm']['ready']} failed: {m['storm']['errors']}"
            )
        if m["closed_by_server"]:
            problems.append(
                f"{where}: server closed connections: {m['closed_by_server']}"
            )
    return problems


def describe_machine(redis_url: str) -> dict[str, Any]:
    """Cores, memory, OS and the versions that shape the numbers."""
    import platform
    from importlib.metadata import version

    import psutil
    import redis
    from django.db import connection

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with connection.cursor():
        database = f"{connection.vendor} {connection.Database.sqlite_version if connection.vendor == 'sqlite' else connection.pg_version}"
    packages = [
        "Django",
        "websockets",
        "redis",
        "channels",
        "channels-redis",
        "uvicorn",
        "uvloop",
        "asgiref",
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "redis_server": redis.Redis.from_url(redis_url).info("server")["redis_version"],
        "database": database,
        "versions": {name: version(name) for name in packages},
    }


def clean_redis(url: str, prefix: str, session_keys: list[str]) -> None:
    """On a shared Redis, delete the run's keys: stream, Channels keys, sessions."""
    import redis
    from django.contrib.sessions.backends.cache import KEY_PREFIX
    from django.core.cache import cache

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        client.delete(key)
    cache.delete_many([KEY_PREFIX + key for key in session_keys])


def _raise_open_files_limit() -> None:
    """10,000 sockets per process: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class TimeLimitReached(Exception):
    """The whole run took longer than ``--time-limit``."""


def _time_is_up(signum: int, frame: object) -> None:
    raise TimeLimitReached("the run hit --time-limit")
