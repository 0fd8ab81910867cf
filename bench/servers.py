"""
The servers compared, and how to start each one.

* ``raw``: the ceiling, bench/raw_server.py on uvloop (no auth, no DB).
* ``raw-asyncio``: the same on the standard asyncio loop, which separates
  what the event loop costs from what ws_server's own work costs.
* ``ours``: ``manage.py runwsserver`` exactly as deployed (uvloop, which
  requirements.txt installs; compression off by default).
* ``ours-asyncio``: the same on asyncio's own loop (``--loop asyncio``).
* ``ours-cache-sessions``: the same with Django's cache session engine
  (Redis) instead of the database one.
* ``ours-deflate``: the same with ``NOTIFICATIONS_WS_COMPRESSION=true`` and a
  load client that offers permessage-deflate as browsers do.
* ``ours-json-logs``: the same with ``LOG_FORMAT=json`` (every connection's
  open and close lines through python-json-logger).
* ``ours-workers2``: ``runwsserver --workers 2`` (SO_REUSEPORT).
* ``ours-deflate-workers2``: both; compression makes fan-out CPU-bound in
  the server, which is where a second worker can show what it adds.
* ``channels``: bench/channels_app served by uvicorn (uvloop, httptools,
  websockets-sansio: what ``uvicorn[standard]`` picks) with channels_redis.
* ``ours-baseline``: ``ours`` run from another checkout, the one the
  environment variable ``BENCH_BASELINE_DIR`` names, to compare commits in
  one run (docs/benchmarks.md, "How to compare against an older commit").
  The server imports that checkout's code (its directory is its cwd and
  PYTHONPATH) with this venv's Python and packages, and uses the run's
  database, which this checkout migrated: an older commit must accept the
  schema (a migration it does not know about is fine if its models still
  match). Everything else, the load clients and the publisher included, is
  this checkout's. Python caches its bytecode there as usual (ignored by
  git; nothing with PYTHONDONTWRITEBYTECODE=1).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["SERVERS", "ServerSpec"]

REPO_ROOT = Path(__file__).resolve().parent.parent

Publishing = Literal["stream", "channels"]
#: How the benchmark tells a server serves (bench/readiness.py): ws_server
#: answers ``GET /readyz``; the others have no such endpoint, so a client
#: must be welcomed.
Readiness = Literal["readyz", "welcome"]


@dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str
    #: The command, with ``{port}`` to fill in.
    command: tuple[str, ...]
    #: How to tell it serves.
    readiness: Readiness
    #: Processes sharing the port (``--workers``): each one must be ready.
    workers: int = 1
    #: Where events reach this server from.
    publishing: Publishing = "stream"
    settings_module: str = "project.settings"
    client_deflate: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Compared with raw and channels in the ratios.
    ours: bool = False
    #: The environment variable naming another checkout to run the server
    #: from; None: this one.
    checkout_variable: str | None = None

    def checkout(self) -> Path:
        """The directory the server runs in and imports its code from."""
        if self.checkout_variable is None:
            return REPO_ROOT
        value = os.environ.get(self.checkout_variable)
        if not value:
            raise ValueError(
                f"{self.name} runs another checkout: set {self.checkout_variable} "
                "to its directory (git worktree add --detach /tmp/baseline <commit>)"
            )
        path = Path(value).expanduser().resolve()
        if not (path / "manage.py").is_file():
            raise ValueError(f"{self.checkout_variable}={value}: no manage.py there")
        return path


PY = sys.executable

#: The client offers permessage-deflate as browsers do, and the server accepts.
DEFLATE: dict[str, Any] = {
    "client_deflate": True,
    "extra_env": {"NOTIFICATIONS_WS_COMPRESSION": "true"},
}


def _runwsserver(name: str, label: str, *options: str, **fields: Any) -> ServerSpec:
    """``manage.py runwsserver`` with ``options``: ws_server as deployed."""
    command = (
        PY,
        "manage.py",
        "runwsserver",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
    )
    return ServerSpec(
        name=name,
        label=label,
        command=(*command, *options),
        readiness="readyz",
        ours=True,
        **fields,
    )


SERVERS: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in [
        ServerSpec(
            name="raw",
            label="raw websockets (uvloop)",
            command=(PY, "-m", "bench.raw_server", "--port", "{port}", "--redis-url", "{redis_url}", "--stream", "{stream}"),
            readiness="welcome",
        ),
        ServerSpec(
            name="raw-asyncio",
            label="raw websockets (asyncio)",
            command=(PY, "-m", "bench.raw_server", "--port", "{port}", "--redis-url", "{redis_url}", "--stream", "{stream}", "--loop", "asyncio"),
            readiness="welcome",
        ),
        _runwsserver("ours", "ws_server"),
        _runwsserver(
            "ours-baseline", "ws_server from $BENCH_BASELINE_DIR",
            checkout_variable="BENCH_BASELINE_DIR",
        ),
        _runwsserver("ours-deflate", "ws_server, permessage-deflate on", **DEFLATE),
        _runwsserver(
            "ours-cache-sessions", "ws_server, sessions in the Redis cache",
            extra_env={"SESSION_ENGINE": "django.contrib.sessions.backends.cache"},
        ),
        _runwsserver("ours-asyncio", "ws_server on asyncio's loop", "--loop", "asyncio"),
        _runwsserver(
            "ours-json-logs", "ws_server, JSON log lines",
            extra_env={"LOG_FORMAT": "json"},
        ),
        _runwsserver("ours-workers2", "ws_server --workers 2", "--workers", "2", workers=2),
        _runwsserver(
            "ours-deflate-workers2", "ws_server --workers 2, permessage-deflate on",
            "--workers", "2", workers=2, **DEFLATE,
        ),
        ServerSpec(
            name="channels",
            label="Django Channels (uvicorn + channels_redis)",
            command=(
                PY, "-m", "uvicorn", "bench.channels_app.asgi:application",
                "--host", "127.0.0.1", "--port", "{port}", "--lifespan", "off",
                # Not info: it logs two lines per WebSocket connection.
                "--log-level", "warning", "--no-access-log",
            ),
            readiness="welcome",
            publishing="channels",
            settings_module="bench.channels_app.settings",
        ),
    ]
}  # fmt: skip
