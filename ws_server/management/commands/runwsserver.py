"""``python manage.py runwsserver``: start the WebSocket server."""

import argparse
import asyncio
import logging
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from notifications.conf import settings
from ws_server import metrics
from ws_server.db import DatabaseUnavailable
from ws_server.loops import LOOPS, Loop, loop_runner
from ws_server.server import run_server
from ws_server.workers import run_workers


class Command(BaseCommand):
    help = "Run the WebSocket server that relays live notifications."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument(
            "--port",
            type=int,
            default=settings.WS_PORT,
            help="Port to bind (default: NOTIFICATIONS_WS_PORT, 8001 unless "
            "set); 0 picks a free one.",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            help="Server processes sharing the port (SO_REUSEPORT); one per core.",
        )
        parser.add_argument(
            "--loop",
            choices=LOOPS,
            default="auto",
            help="Event loop: uvloop if installed (auto), or the one named.",
        )
        parser.add_argument(
            "--reuse-port",
            action="store_true",
            help="Bind with SO_REUSEPORT (--workers sets it for its workers).",
        )
        # Set by --workers for its workers: the supervisor serves a separate
        # metrics port for them all.
        parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)

    def handle(
        self,
        *args: object,
        host: str,
        port: int,
        workers: int,
        loop: Loop,
        reuse_port: bool,
        supervised: bool,
        **options: Any,
    ) -> None:
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if workers == 1:
            try:
                run = loop_runner(loop)
            except RuntimeError as exc:
                raise CommandError(str(exc)) from None
            if not supervised:
                serve_metrics_port()
            try:
                run(run_server(host, port, reuse_port=reuse_port))
            except DatabaseUnavailable as exc:
                # At start-up: the ledger starts from the newest event. Later
                # outages are ridden out; this one leaves nothing to serve.
                raise CommandError(
                    f"the database is unavailable ({exc}): is it running, "
                    "and migrated (manage.py migrate)?"
                ) from None
            return
        if port == 0:
            raise CommandError(
                "--workers needs a fixed --port for the workers to share"
            )
        command = worker_command(host, port, loop, options)
        with metrics.multiprocess_dir():
            serve_metrics_port()
            sys.exit(asyncio.run(run_workers(command, workers)))


def serve_metrics_port() -> None:
    """Serve /metrics on its own port if NOTIFICATIONS_METRICS_PORT says so."""
    if not settings.METRICS_PORT:
        return
    try:
        metrics.serve_separately(settings.METRICS_HOST, settings.METRICS_PORT)
    except OSError as exc:
        raise CommandError(
            f"cannot serve metrics on {settings.METRICS_HOST}:"
            f"{settings.METRICS_PORT}: {exc}"
        ) from None
    logging.getLogger("ws_server.metrics").info(
        "metrics on http://%s:%d/metrics", settings.METRICS_HOST, settings.METRICS_PORT
    )


def worker_command(
    host: str, port: int, loop: Loop, options: dict[str, Any]
) -> list[str]:
    """
    The command line of one worker: this command again, without --workers.

    Django's own options go along (a project started with ``--settings`` or
    ``--pythonpath`` must find the same settings in its workers), and so
    does the verbosity.
    """
    command = [sys.executable, sys.argv[0], "runwsserver", "--host", host]
    command += ["--port", str(port), "--loop", loop, "--reuse-port", "--supervised"]
    command += ["--verbosity", str(options.get("verbosity", 1))]
    for option in ("settings", "pythonpath"):
        if options.get(option):
            command += [f"--{option}", options[option]]
    return command
