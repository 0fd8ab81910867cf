"""
One measurement: one server, N connections, from start to stop.

Phases, each bounded in time:

1. start the server; warm it up with a few connections (lazy imports,
   thread pools), then note its RSS;
2. connect: N connections, as browsers do (cookie, Origin, hello, welcome),
   with a bounded number of handshakes in flight -> connections/s;
3. idle: RSS again -> KiB per idle authenticated connection;
4. latency: events one at a time, spaced so that each fan-out finishes before
   the next -> publish-to-receipt latency over all (client, event) pairs;
5. burst: events published back to back -> deliveries/s, and losses;
6. CPU of every process in each phase; then close everything;
7. read back what the server recorded of the clients' acknowledgements.

Events are notifications, live-only pushes, or both (``Plan.kinds``): with
both, the paced events take turns, A/B, so that the two kinds see the same
server in the same moments, and each kind gets a burst of its own. Which
kind goes first alternates from one repeat to the next (``Plan.lead``).

Clients may acknowledge what they receive, as browsers do (``Plan.ack``).
The acknowledgements of a burst reach the server after its last frame, and
are written in its next one-second batch: ``Plan.burst_tail`` keeps
measuring CPU a while after each burst, acknowledging or not, so the two
compare.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import Count

from bench.fixtures import activate_users, clear_events
from bench.instructions import InstructionCounter, under_callgrind
from bench.loadclients import LoadClients
from bench.measure import (
    CpuMeter,
    CpuSnapshot,
    Deliveries,
    load_deliveries,
    summarize_recorded,
    wait_for_quiet,
)
from bench.processes import Child, Children
from bench.profiling import Profiler
from bench.publisher import Publisher, Stamp
from bench.readiness import wait_until_serving
from bench.servers import REPO_ROOT, ServerSpec
from notifications.models import Event, Notification
from notifications.wire import NOTIFICATION

__all__ = ["Bench", "Plan", "run_scenario"]

WARMUP_CONNECTIONS = 10
#: In the reconnect storm, how many events each client missed, and how many
#: handshakes are in flight: browsers come back within a second of a restart.
STORM_MISSED = 5
STORM_CONCURRENCY = 1000
SETTLE_SECONDS = 1.0
#: How much longer a server takes to start under callgrind (not counting).
CALLGRIND_SLOWDOWN = 10


@dataclass(frozen=True)
class Plan:
    """How much of each phase one measurement does."""

    connections: int
    load_clients: int
    #: Handshakes in flight, all load clients together.
    concurrency: int
    latency_events: int
    latency_interval: float
    burst_events: int
    #: Longest wait for a phase's deliveries after its last publish.
    phase_timeout: float
    connect_timeout: float
    #: What the events are sent as (``bench.suite.KINDS``); the first is the
    #: one in the result's ``latency`` and ``burst``. ``latency_events`` and
    #: ``burst_events`` are per kind.
    kinds: tuple[str, ...] = (NOTIFICATION,)
    #: Which of ``kinds`` is sent first: repeats take turns, so that no kind
    #: always has its burst after the other's.
    lead: int = 0
    #: The clients acknowledge every notification, as live.js does.
    ack: bool = False
    #: Seconds of CPU measurement after each burst's last frame (0: none).
    burst_tail: float = 0.0

    @property
    def order(self) -> tuple[str, ...]:
        """``kinds`` in the order they are sent."""
        return self.kinds[self.lead :] + self.kinds[: self.lead]


@dataclass
class Bench:
    """What every measurement of a run shares."""

    run_dir: Path
    env: dict[str, str]
    redis_cpu: Callable[[], float]
    stream: str
    sessions_file: Path
    user_pks: list[int]
    children: Children
    origin: str
    #: Keep the load clients' receipt logs (``<server>-<N>-client<k>.bin``).
    keep_dumps: bool = False
    #: Before a measurement and its burst, wait (at most ``quiet_wait`` s)
    #: until the rest of the machine uses less than this % of one core.
    quiet_threshold: float = 30.0
    quiet_wait: float = 0.0
    #: Record the server with py-spy during the connect and burst phases.
    profile: bool = False
    #: Count the server's instructions in the connect and storm phases
    #: (bench/instructions.py).
    instructions: bool = False


def run_scenario(bench: Bench, spec: ServerSpec, plan: Plan) -> dict[str, Any]:
    """Measure ``spec`` with ``plan.connections`` connections; return the numbers."""
    activate_users(bench.user_pks, plan.connections)
    clear_events()
    quiet = (
        wait_for_quiet(bench.quiet_threshold, bench.quiet_wait)
        if bench.quiet_wait
        else None
    )
    name = f"{spec.name}-{plan.connections}"
    port = _free_port()
    checkout = spec.checkout()
    env = {
        **bench.env,
        "DJANGO_SETTINGS_MODULE": spec.settings_module,
        **spec.extra_env,
    }
    if checkout != REPO_ROOT:
        # That checkout's code. Bytecode as for every other server: a cache
        # prefix would recompile Django and every package at each start,
        # which leaves megabytes in the warm RSS and skews KiB/connection.
        env["PYTHONPATH"] = str(checkout)
    command = [
        part.format(port=port, redis_url=bench.env["REDIS_URL"], stream=bench.stream)
        for part in spec.command
    ]
    if bench.instructions:
        command = under_callgrind(command, bench.run_dir / f"{name}.callgrind")
    server = bench.children.start(name, command, env=env, cwd=checkout)
    try:
        wait_until_serving(
            server,
            spec,
            port,
            origin=bench.origin,
            session_key=_first_session(bench.sessions_file),
            slowdown=CALLGRIND_SLOWDOWN if bench.instructions else 1,
        )
        clients = LoadClients(
            bench.children,
            count=plan.load_clients,
            name=name,
            url=f"ws://127.0.0.1:{port}/ws",
            sessions_file=bench.sessions_file,
            origin=bench.origin,
            deflate=spec.client_deflate,
            acknowledge=plan.ack,
            env=bench.env,
            cwd=REPO_ROOT,
        )
        try:
            result = Measurement(bench, spec, plan, server, clients).run()
            result["machine_busy_before"] = quiet
        finally:
            clients.stop()
    finally:
        bench.children.stop(server)
    result["recorded"] = _recorded_deliveries()
    result["commit"] = _commit(checkout)
    return result


#: A burst's events, their stamps, and CPU snapshots: at the commit, at the
#: last frame, and (with a tail) at the end of the tail.
Burst = tuple[range, list[Stamp], list[CpuSnapshot]]


class Measurement:
    def __init__(
        self,
        bench: Bench,
        spec: ServerSpec,
        plan: Plan,
        server: Child,
        clients: LoadClients,
    ) -> None:
        self.bench = bench
        self.spec = spec
        self.plan = plan
        self.server = server
        self.clients = clients
        self.publisher = Publisher(channels=spec.publishing == "channels")
        sources: dict[str, Callable[[], float]] = {
            "server": server.cpu_seconds,
            "redis": bench.redis_cpu,
            "django": _own_cpu_seconds,
        }
        for k, process in enumerate(clients.processes):
            sources[f"client{k}"] = process.cpu_seconds
        self.meter = CpuMeter(sources)
        self.shares: list[int] = []
        #: Instructions the server executed in each counted phase.
        self.instructions: dict[str, int] = {}

    def run(self) -> dict[str, Any]:
        """
        Every phase, in order. ``latency``, ``burst`` and the burst's CPU are
        the first kind's; ``kinds`` has each kind's.
        """
        self._warm_up()
        rss_base = self.server.rss()
        connect, connect_cpu = self._connect()
        time.sleep(SETTLE_SECONDS)
        ready = connect["ready"]
        rss_idle = self.server.rss()
        client_rss = sum(p.rss() for p in self.clients.processes)
        order, k = self.plan.order, len(self.plan.order)
        latency_seqs = range(0, self.plan.latency_events * k)
        latency_stamps, latency_cpu = self._latency_phase(latency_seqs)
        bursts = self._burst_phases(start=latency_seqs.stop)
        deliveries = self._collect()
        by_kind = {}
        for kind in self.plan.kinds:  # in the results, always in this order
            i = order.index(kind)
            paced = (latency_seqs[i::k], latency_stamps[i::k])
            by_kind[kind] = _summarize(
                deliveries, ready, latency=paced, burst=bursts[kind]
            )
        first = by_kind[self.plan.kinds[0]]
        stats = self.clients.ask_all({"cmd": "stats"})
        closed: dict[str, int] = {}
        for answer in stats:
            for code, count in answer["closed"].items():
                closed[code] = closed.get(code, 0) + count
        acks_sent = sum(answer["acks_sent"] for answer in stats)
        self.clients.ask_all({"cmd": "close", "timeout": 5})
        storm, storm_cpu = self._reconnect_storm()
        return {
            "server": self.spec.name,
            "label": self.spec.label,
            "connections": self.plan.connections,
            "ack": self.plan.ack,
            "acks_sent": acks_sent,
            "ready": ready,
            "connect_failed": connect["failed"],
            "connect_errors": connect["errors"],
            "connect_per_s": connect["rate"],
            "connect_s": connect["seconds"],
            "rss_base_mib": round(rss_base / 2**20, 1),
            "rss_idle_mib": round(rss_idle / 2**20, 1),
            "kib_per_connection": round(
                (rss_idle - rss_base) / max(ready, 1) / 1024, 2
            ),
            "client_kib_per_connection": round(client_rss / max(ready, 1) / 1024, 2),
            "latency": first["latency"],
            "burst": first["burst"],
            "losses": sum(k["losses"] for k in by_kind.values()),
            "closed_by_server": closed,
            "cpu": {
                "connect": connect_cpu,
                "latency": latency_cpu,
                "burst": first["burst_cpu"],
                "storm": storm_cpu,
            },
            "storm": storm,
            "kinds": by_kind,
            "order": list(order),
            **self._instructions_per_handshake(ready, storm["ready"]),
        }

    def _instructions_per_handshake(self, ready: int, resumed: int) -> dict[str, Any]:
        """With ``--instructions``, what a new and a resuming handshake cost."""
        if not self.instructions:
            return {}
        return {
            "instructions_per_handshake": {
                "connect": round(self.instructions["connect"] / max(ready, 1)),
                "storm": round(self.instructions["storm"] / max(resumed, 1)),
            }
        }

    def _warm_up(self) -> None:
        """A few connections first: imports and thread pools start here, not in N."""
        count = min(WARMUP_CONNECTIONS, self.plan.connections)
        self.clients.ask_first(
            {
                "cmd": "connect",
                "start": 0,
                "count": count,
                "concurrency": count,
                "timeout": self.plan.connect_timeout,
            }
        )
        self.clients.ask_first({"cmd": "close", "timeout": 5})
        self.clients.ask_first(
            {"cmd": "dump", "path": str(self.bench.run_dir / "warmup.bin")}
        )
        time.sleep(SETTLE_SECONDS)

    def _reconnect_storm(self) -> tuple[dict[str, Any], dict[str, float]]:
        """
        Everyone reconnects at once, as after a server restart, resuming.

        Each client says it last saw the event STORM_MISSED events before the
        newest, so each replays that many (servers without resume ignore it).
        Live-only pushes have no rows and are never replayed: after pushes
        alone, clients come back as new ones.
        """
        newest = list(
            Event.objects.order_by("-pk").values_list("pk", flat=True)[
                : STORM_MISSED + 1
            ]
        )
        connect, cpu = self._connect(
            last_id=newest[-1] if newest else None,
            phase="storm",
            # Counting instructions, a slowed server would refuse a storm.
            concurrency=None if self.bench.instructions else STORM_CONCURRENCY,
        )
        path = (
            self.bench.run_dir / f"{self.spec.name}-{self.plan.connections}-storm.bin"
        )
        replayed = sum(
            a["frames"]
            for a in self.clients.ask_all({"cmd": "dump", "path": str(path)})
        )
        path.unlink()
        self.clients.ask_all({"cmd": "close", "timeout": 5})
        return {**connect, "replayed": replayed}, cpu

    def _connect(
        self,
        last_id: int | None = None,
        phase: str = "connect",
        concurrency: int | None = None,
    ) -> tuple[dict[str, Any], dict[str, float]]:
        n, k = self.plan.connections, len(self.clients)
        bounds = [n * i // k for i in range(k + 1)]
        commands = [
            {
                "cmd": "connect",
                "start": bounds[i],
                "count": bounds[i + 1] - bounds[i],
                "concurrency": max(1, (concurrency or self.plan.concurrency) // k),
                "timeout": self.plan.connect_timeout,
                "last_id": last_id,
            }
            for i in range(k)
        ]
        before = self.meter.snapshot()
        with self._profiled(phase):
            answers = self.clients.ask(commands)
        after = self.meter.snapshot()
        self.shares = [a["ready"] for a in answers]
        seconds = max(a["finished"] for a in answers) - min(
            a["started"] for a in answers
        )
        errors: dict[str, int] = {}
        for answer in answers:
            for error, count in answer["errors"].items():
                errors[error] = errors.get(error, 0) + count
        ready = sum(self.shares)
        return {
            "ready": ready,
            "failed": sum(a["failed"] for a in answers),
            "errors": errors,
            "seconds": round(seconds, 3),
            "rate": round(ready / max(seconds, 1e-9)),
        }, CpuMeter.percent(before, after)

    def _latency_phase(self, seqs: range) -> tuple[list[Stamp], dict[str, float]]:
        """Paced events; with several kinds, event ``i`` is of kind ``i % k``."""
        kinds = self.plan.order
        before = self.meter.snapshot()
        start = time.monotonic()
        stamps = []
        for i, seq in enumerate(seqs):
            stamps.append(self.publisher.send_one(seq, kind=kinds[i % len(kinds)]))
            time.sleep(
                max(
                    0.0, start + (i + 1) * self.plan.latency_interval - time.monotonic()
                )
            )
        self._wait_for(seqs.stop)
        return stamps, CpuMeter.percent(before, self.meter.snapshot())

    def _burst_phases(self, start: int) -> dict[str, Burst]:
        """One burst per kind, in order, each after a quiet moment."""
        bursts = {}
        for kind in self.plan.order:
            seqs = range(start, start + self.plan.burst_events)
            start = seqs.stop
            if self.bench.quiet_wait:
                wait_for_quiet(self.bench.quiet_threshold, self.bench.quiet_wait / 3)
            bursts[kind] = self._burst_phase(seqs, kind)
        return bursts

    def _burst_phase(self, seqs: range, kind: str) -> Burst:
        """
        Publish back to back; CPU counts from the commit, not the DB inserts,
        to the last frame, and on to the end of ``Plan.burst_tail``.
        """
        snapshots: list[CpuSnapshot] = []
        with self._profiled(f"burst-{kind}" if len(self.plan.kinds) > 1 else "burst"):
            stamps = self.publisher.send_burst(
                seqs,
                kind=kind,
                on_commit=lambda: snapshots.append(self.meter.snapshot()),
            )
            self._wait_for(seqs.stop)
            snapshots.append(self.meter.snapshot())
            if self.plan.burst_tail:
                time.sleep(self.plan.burst_tail)
                snapshots.append(self.meter.snapshot())
        return seqs, stamps, snapshots

    @contextmanager
    def _profiled(self, phase: str) -> Iterator[None]:
        """Record the server during ``phase``, if the run asks for it."""
        name = f"{self.spec.name}-{self.plan.connections}"
        if self.bench.instructions and phase in ("connect", "storm"):
            output = self.bench.run_dir / f"{name}.callgrind"
            with InstructionCounter(self.server.pid, output) as counter:
                yield
            assert counter.instructions is not None
            self.instructions[phase] = counter.instructions
        elif self.bench.profile:
            path = self.bench.run_dir / f"{name}-{phase}.pyspy.txt"
            with Profiler(self.server.pid, path):
                yield
        else:
            yield

    def _wait_for(self, events: int) -> None:
        """Wait until every ready connection has ``events`` frames, or time out."""
        self.clients.ask(
            [
                {
                    "cmd": "wait",
                    "total": share * events,
                    "timeout": self.plan.phase_timeout,
                }
                for share in self.shares
            ]
        )

    def _collect(self) -> Deliveries:
        paths = [
            self.bench.run_dir
            / f"{self.spec.name}-{self.plan.connections}-client{k}.bin"
            for k in range(len(self.clients))
        ]
        self.clients.ask([{"cmd": "dump", "path": str(path)} for path in paths])
        deliveries = load_deliveries(paths)
        if not self.bench.keep_dumps:
            for path in paths:
                path.unlink()
        return deliveries


def _summarize(
    deliveries: Deliveries,
    ready: int,
    *,
    latency: tuple[range, list[Stamp]],
    burst: Burst,
) -> dict[str, Any]:
    """
    One kind's numbers: paced latency (from commit and from call), burst,
    and the server's CPU per 1,000 burst deliveries (with the tail's, if any).
    """
    seqs, stamps = latency
    paced = deliveries.summary(seqs, [s.committed for s in stamps], ready)
    from_call = deliveries.summary(seqs, [s.called for s in stamps], ready)
    paced["from_call_p50_ms"] = from_call["p50_ms"]
    paced["from_call_p99_ms"] = from_call["p99_ms"]
    burst_seqs, burst_stamps, snapshots = burst
    fast = deliveries.summary(burst_seqs, [s.committed for s in burst_stamps], ready)
    committed, delivered, *tail = snapshots
    received = fast["received"]
    per_1000 = {"burst": _server_ms_per_1000(committed, delivered, received)}
    summary = {
        "latency": paced,
        "burst": fast,
        "burst_cpu": CpuMeter.percent(committed, delivered),
        "server_cpu_ms_per_1000": per_1000,
        "losses": paced["losses"] + fast["losses"],
    }
    if tail:
        summary["tail_cpu"] = CpuMeter.percent(delivered, tail[0])
        per_1000["with_tail"] = _server_ms_per_1000(committed, tail[0], received)
    return summary


def _server_ms_per_1000(start: CpuSnapshot, end: CpuSnapshot, deliveries: int) -> float:
    """The server's CPU milliseconds between two snapshots, per 1,000 deliveries."""
    seconds = end.seconds["server"] - start.seconds["server"]
    return round(1e6 * seconds / max(deliveries, 1), 3)


def _recorded_deliveries() -> dict[str, Any]:
    """
    Read back what the server wrote of the acknowledgements. Called once it
    has stopped, so its last batch (written on the way out) is in.
    """
    updates = (
        Notification.objects.filter(delivered_at__isnull=False)
        .values_list("event_id", "delivered_at", "event__created_at")
        .annotate(rows=Count("pk"))
        .order_by()
    )
    return summarize_recorded(
        Notification.objects.count(),
        [
            (event, at.timestamp(), created.timestamp(), rows)
            for event, at, created, rows in updates
        ],
    )


def _own_cpu_seconds() -> float:
    """The Django side runs in this process: its CPU is ours."""
    times = os.times()
    return times.user + times.system


def _commit(checkout: Path) -> str | None:
    """The commit the server ran, ``-dirty`` if tracked files were changed."""
    git = ["git", "--no-optional-locks", "-C", str(checkout)]  # writes nothing
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if changed else head


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _first_session(sessions_file: Path) -> str:
    """The session key of the first connection (its user is always active)."""
    with sessions_file.open() as sessions:
        return sessions.readline().strip()
