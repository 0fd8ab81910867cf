"""The settings module: safe defaults for the demo, refusal of insecure production."""

import os
import subprocess
import sys

from tests.servers import BASE_DIR


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_the_demo_secret_key():
    """DEBUG=false without a real SECRET_KEY stops startup with a clear error."""
    result = run_check(DEBUG="false")
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set" in result.stderr


def test_production_starts_with_a_real_secret_key():
    """DEBUG=false with a long random SECRET_KEY passes Django's checks."""
    result = run_check(
        DEBUG="false", SECRET_KEY="x" * 20 + "-a-long-random-production-key"
    )
    assert result.returncode == 0, result.stderr


def test_no_environment_runs_the_demo():
    """With no environment at all the project is configured (DEBUG on, SQLite)."""
    assert run_check().returncode == 0
