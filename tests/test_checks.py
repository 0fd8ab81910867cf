"""System checks: the installation and the settings, at start-up."""

import copy

import pytest
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import run_checks
from django.test import override_settings

import notifications
from notifications.checks import (
    check_package_conflict,
    check_request_handling,
    check_settings,
)


def test_django_notifications_hq_in_the_same_package_is_an_error(tmp_path, monkeypatch):
    """Installed over this app, django-notifications-hq adds its
    notifications/base package beside ours: manage.py check says so
    (notifications.E002) instead of failing at some import later."""
    assert check_package_conflict() == []
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "__init__.py").write_text("")
    monkeypatch.setattr(
        notifications, "__path__", [*notifications.__path__, str(tmp_path)]
    )
    [error] = check_package_conflict()
    assert error.id == "notifications.E002"
    assert "django-notifications-hq" in error.msg


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        (
            "NOTIFICATIONS_WS_RATE_LIMIT",
            0,
            "NOTIFICATIONS_WS_RATE_LIMIT: 0 must be above 0.",
        ),
        ("NOTIFICATIONS_RESUME_LIMIT", "200", "'200' is not a number"),
        ("NOTIFICATIONS_RESUME_LIMIT", 2.5, "2.5 is not a whole number"),
        ("NOTIFICATIONS_WS_COMPRESSION", "yes", "'yes' is not True or False"),
        ("NOTIFICATIONS_WS_ORIGINS", "https://a.example", "is not a list of strings"),
        ("NOTIFICATIONS_WS_ORIGINS", ["a.example"], "'a.example' is not an origin"),
        ("NOTIFICATIONS_WS_URL", "example.com/ws", "nor a path like /ws"),
        ("NOTIFICATIONS_EVENT_TYPES", [], "[] is not a dict"),
        ("NOTIFICATIONS_REDIS_URL", "localhost:6379", "Redis URL must specify one"),
        ("REDIS_URL", "http://cache", "Redis URL must specify one"),
    ],
)
def test_a_bad_setting_is_an_error_at_check_time(setting, value, says):
    """A wrong type or range used to fail at first use (a TypeError in the
    relay, an AttributeError at the first publish); manage.py check names
    the setting and what is wrong (notifications.E003)."""
    assert check_settings() == []
    with override_settings(**{setting: value}):
        [error] = check_settings()
    assert error.id == "notifications.E003"
    assert says in error.msg


def test_zero_is_allowed_where_it_means_no_limit():
    with override_settings(NOTIFICATIONS_WS_MAX_CONNECTIONS_PER_ADDRESS=0):
        assert check_settings() == []


def test_a_misspelt_setting_is_warned_about():
    """NOTIFICATIONS_RESUME_LIMT would keep the default without a word."""
    with override_settings(NOTIFICATIONS_RESUME_LIMT=50):
        [warning] = check_settings()
    assert warning.id == "notifications.W002"
    assert "NOTIFICATIONS_RESUME_LIMT" in warning.msg


def without_middleware(name: str) -> override_settings:
    return override_settings(
        MIDDLEWARE=[path for path in settings.MIDDLEWARE if path != name]
    )


def without_request_processor() -> override_settings:
    templates = copy.deepcopy(settings.TEMPLATES)
    processors = templates[0]["OPTIONS"]["context_processors"]
    processors.remove("django.template.context_processors.request")
    return override_settings(TEMPLATES=templates)


@pytest.mark.parametrize(
    ("change", "expected", "says"),
    [
        (
            without_middleware("django.contrib.sessions.middleware.SessionMiddleware"),
            "notifications.E004",
            "no SessionMiddleware",
        ),
        (
            without_request_processor(),
            "notifications.W004",
            "'django.template.context_processors.request' context processor",
        ),
        (
            without_middleware("django.middleware.csrf.CsrfViewMiddleware"),
            "notifications.W005",
            "no CsrfViewMiddleware",
        ),
    ],
    ids=["sessions", "request-context-processor", "csrf"],
)
def test_what_the_pages_and_the_server_need_of_the_project(change, expected, says):
    """A project without session middleware (nobody is signed in), without the
    request context processor (the bell's tag raises KeyError) or without
    CSRF middleware (the bell's POSTs get 403) hears it from manage.py
    check, naming the setting, instead of from a broken page."""
    assert check_request_handling() == []
    with change:
        [message] = check_request_handling()
    assert message.id == expected
    assert says in message.msg


def test_a_subclass_of_the_session_middleware_counts():
    """Projects extend SessionMiddleware; the check looks at classes, not names."""
    sessions = "django.contrib.sessions.middleware.SessionMiddleware"
    middleware = [
        "tests.test_checks.ProjectSessionMiddleware" if path == sessions else path
        for path in settings.MIDDLEWARE
    ]
    with override_settings(MIDDLEWARE=middleware):
        assert check_request_handling() == []


class ProjectSessionMiddleware(SessionMiddleware):
    """A project's own session middleware."""


@pytest.mark.django_db  # Django 6 runs the model checks against the database
def test_the_checks_run_under_manage_py_check():
    """Registered: a project's `manage.py check` (and runserver, migrate)
    reports them, not only a direct call."""
    with override_settings(NOTIFICATIONS_WS_RATE_LIMIT=-1):
        messages = run_checks()
    assert "notifications.E003" in {message.id for message in messages}
