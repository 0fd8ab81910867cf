"""
Quick start: run the test suite on SQLite, then on PostgreSQL when one answers.

    python3 scripts/test.py [--python python3.13] [pytest arguments ...]

Create .venv on first use and give the tests a Redis (REDIS_URL, or a private
one). Both databases run because they differ where this project is delicate:
transactions, locking and on_commit. With CI=true a PostgreSQL that does not
answer fails the run instead of being skipped. ``--python`` runs the suite on
another interpreter, in a venv of its own (.venv-python3.13): requirements.txt
pins the Django each Python gets, so this is how CI tests Django 6.
"""

import argparse
import os
import platform
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scripts.bootstrap import REPO_ROOT, ensure_venv, venv_for
from scripts.services import accepts_connections, use_redis

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"
NO_TESTS_COLLECTED = 5


@dataclass(frozen=True)
class Outcome:
    """How one database's run ended, for the closing summary."""

    database: str
    ok: bool
    detail: str


def main(argv: Sequence[str]) -> int:
    """Run every suite that can run here and return non-zero if any failed."""
    # Not abbreviated and no -h of its own: every other argument is pytest's.
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--python", help="the interpreter to test on")
    options, pytest_args = parser.parse_known_args(argv)
    ensure_venv(venv_for(options.python), interpreter=options.python)
    # Let SIGTERM unwind like Ctrl-C so that the ``with`` block still stops a
    # private Redis.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with use_redis():
            outcomes = [run_pytest("SQLite", pytest_args, database_url=None)]
            outcomes.append(run_postgres(pytest_args))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"test: {exc}", file=sys.stderr)
        return 1
    summary = "; ".join(f"{outcome.database} {outcome.detail}" for outcome in outcomes)
    print(f"Summary: {summary}", flush=True)
    return 0 if all(outcome.ok for outcome in outcomes) else 1


def run_postgres(pytest_args: Sequence[str]) -> Outcome:
    """Run the suite on PostgreSQL if it listens; skip it, or fail it under CI."""
    url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 5432
    address = f"{host}:{port}"
    if accepts_connections(host, port):
        return run_pytest("PostgreSQL", pytest_args, database_url=url)
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        print(
            f"== pytest on PostgreSQL: FAILED, nothing listens at {address} "
            "(TEST_POSTGRES_URL); CI=true requires the PostgreSQL run ==",
            file=sys.stderr,
            flush=True,
        )
        return Outcome("PostgreSQL", ok=False, detail=f"unreachable at {address}")
    print(
        f"== pytest on PostgreSQL skipped: nothing listens at {address} "
        "(set TEST_POSTGRES_URL to point at one) ==",
        flush=True,
    )
    return Outcome("PostgreSQL", ok=True, detail="skipped (unreachable)")


def run_pytest(
    database: str, pytest_args: Sequence[str], *, database_url: str | None
) -> Outcome:
    """Run pytest in a child; without ``database_url`` Django uses SQLite."""
    import django  # from the venv

    versions = f"Python {platform.python_version()}, Django {django.get_version()}"
    print(f"== pytest on {database} ({versions}) ==", flush=True)
    env = {name: value for name, value in os.environ.items() if name != "DATABASE_URL"}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "pytest", *pytest_args]
    code = subprocess.run(command, cwd=REPO_ROOT, env=env).returncode
    if code == 0:
        return Outcome(database, ok=True, detail="passed")
    if code == NO_TESTS_COLLECTED:
        return Outcome(database, ok=False, detail="failed: no tests collected")
    return Outcome(database, ok=False, detail=f"failed (pytest exit code {code})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
