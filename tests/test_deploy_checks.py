"""manage.py check --deploy: each WebSocket misconfiguration named, none for the documented setup."""

import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks
from django.test import override_settings

from tests.servers import BASE_DIR

# Since Django 6.0 (ticket #36663) run_checks(), like manage.py check, runs the
# model checks against every database, and JSONField's asks SQLite's features.
pytestmark = pytest.mark.django_db

#: A production setup as .env.example and the README describe it.
PRODUCTION = {
    "ALLOWED_HOSTS": ["example.com"],
    "CSRF_TRUSTED_ORIGINS": ["https://example.com"],
    "SECURE_SSL_REDIRECT": True,
    "SESSION_COOKIE_SECURE": True,
    "NOTIFICATIONS_WS_URL": "wss://example.com/ws",
    "NOTIFICATIONS_WS_ORIGINS": ["https://example.com"],
}


def deploy_messages(**changes) -> dict[str, str]:
    """The notifications messages of the deploy checks: id -> message."""
    with override_settings(**{**PRODUCTION, **changes}):
        messages = run_checks(include_deployment_checks=True)
    return {
        message.id: message.msg
        for message in messages
        if message.id.startswith("notifications.")
    }


def test_the_documented_production_settings_are_clean(private_redis):
    assert deploy_messages() == {}


@pytest.mark.parametrize(
    ("changes", "expected", "says"),
    [
        ({"NOTIFICATIONS_WS_ORIGINS": []}, "W010", "refuses every browser (HTTP 403)"),
        (
            {"NOTIFICATIONS_WS_ORIGINS": ["http://example.com"]},
            "W011",
            "is plain http",
        ),
        (
            {"NOTIFICATIONS_WS_ORIGINS": ["https://example.com", "https://other.test"]},
            "W012",
            "'https://other.test' names a host that ALLOWED_HOSTS doesn't allow",
        ),
        (
            {
                "NOTIFICATIONS_WS_URL": "ws://example.com/ws",
                "SESSION_COOKIE_SECURE": False,
            },
            "W013",
            "browsers refuse a plain ws:// socket from an https page",
        ),
        (
            {"SESSION_COOKIE_SAMESITE": "None", "SESSION_COOKIE_SECURE": False},
            "W014",
            "SESSION_COOKIE_SAMESITE is 'None' without SESSION_COOKIE_SECURE",
        ),
        (
            {
                "NOTIFICATIONS_WS_URL": "ws://example.com/ws",
                "SECURE_SSL_REDIRECT": False,
                "CSRF_TRUSTED_ORIGINS": [],
            },
            "W014",
            "SESSION_COOKIE_SECURE is on and NOTIFICATIONS_WS_URL is ws://",
        ),
        (
            {"NOTIFICATIONS_WS_PING_INTERVAL": 90.0},
            "W015",
            "the proxy closes quiet sockets",
        ),
        (
            {"NOTIFICATIONS_REDIS_URL": "redis://:secret@127.0.0.1:1/0"},
            "W016",
            "redis://:***@127.0.0.1:1/0 doesn't answer",
        ),
    ],
)
def test_each_misconfiguration_is_reported(private_redis, changes, expected, says):
    messages = deploy_messages(**changes)
    assert list(messages) == [f"notifications.{expected}"], messages
    assert says in messages[f"notifications.{expected}"]


def test_the_deploy_checks_wait_for_deploy(private_redis):
    """The demo breaks them on purpose (http, no cookie flags): plain check is quiet."""
    with override_settings(NOTIFICATIONS_WS_ORIGINS=[]):
        ids = {message.id for message in run_checks()}
    assert "notifications.W010" not in ids


def test_the_env_example_passes_check_deploy_apart_from_its_secret_key(private_redis):
    """manage.py check --deploy with .env.example's values (and a real key)
    reports nothing of this app's; with its placeholder key it doesn't start."""
    example = dict(
        line.split("=", 1)
        for line in (BASE_DIR / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("NOTIFICATIONS_", "DATABASE_URL", "SECRET_KEY"))
        # Set by the browser tests for Playwright; async.E001 under --deploy.
        and name != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    environment |= example | {"REDIS_URL": private_redis.url}
    environment.pop("DATABASE_URL")

    def check(secret_key: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "check", "--deploy"],
            cwd=BASE_DIR,
            env=environment | {"SECRET_KEY": secret_key},
            capture_output=True,
            text=True,
            timeout=60,
        )

    real = check("a-real-production-key-" + "k3y" * 12)
    assert real.returncode == 0, real.stderr
    assert "notifications." not in real.stdout + real.stderr
    placeholder = check(example["SECRET_KEY"])
    assert placeholder.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY must be set" in placeholder.stderr
