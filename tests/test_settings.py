"""The settings module: safe defaults for the demo, refusal of insecure production."""

import os
import re
import subprocess
import sys

from django.conf import settings as django_settings
from django.test import override_settings

from notifications.conf import DEFAULTS, LOCAL_REDIS_URL, settings
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


def test_readme_configuration_table_lists_every_app_setting():
    """Each notifications setting, with its default, has a row in the README's table."""
    readme = (BASE_DIR / "README.md").read_text()
    rows = dict(re.findall(r"^\| `NOTIFICATIONS_(\w+)` \| ([^|]*) \|", readme, re.M))
    for name, default in DEFAULTS.items():
        assert name in rows, f"NOTIFICATIONS_{name} is missing from the README"
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert float(rows[name].strip(" `")) == default, f"NOTIFICATIONS_{name}"


def test_every_test_the_docs_name_exists():
    """A promise names the test that proves it: each named test (or test module)
    in the README and the docs exists, so a renamed test can't leave a promise
    pointing at nothing."""
    docs = [
        "README.md",
        "docs/install.md",
        "docs/protocol.md",
        "docs/live-events.md",
        "docs/widget.md",
        "docs/deployment.md",
        "docs/operations.md",
    ]
    named = set()
    for doc in docs:
        named |= set(re.findall(r"`(test_\w+)", (BASE_DIR / doc).read_text()))
    tests = BASE_DIR / "tests"
    source = "\n".join(path.read_text() for path in tests.glob("test_*.py"))
    missing = {
        name
        for name in named
        if f"def {name}(" not in source and not (tests / f"{name}.py").exists()
    }
    assert not missing, f"the docs name tests that don't exist: {sorted(missing)}"


def test_the_redis_url_has_one_default_and_an_app_setting():
    """NOTIFICATIONS_REDIS_URL wins; without it the project's REDIS_URL; with
    neither (a host project that never heard of Redis), the local default
    rather than an AttributeError at the first publish."""
    with override_settings(
        NOTIFICATIONS_REDIS_URL="redis://app:6379/1", REDIS_URL="redis://site:6379/0"
    ):
        assert settings.REDIS_URL == "redis://app:6379/1"
    with override_settings(REDIS_URL="redis://site:6379/0"):
        assert settings.REDIS_URL == "redis://site:6379/0"
    with override_settings():
        del django_settings.REDIS_URL
        assert settings.REDIS_URL == LOCAL_REDIS_URL
