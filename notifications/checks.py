"""
System checks: configuration mistakes reported at start-up, not at first use.

Messages and hints are translated when the check runs, in the active
language (``manage.py check`` runs in LANGUAGE_CODE); the ids are not.
"""

import importlib.util
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
from django.apps import AppConfig
from django.conf import settings as django_settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.migrations.recorder import MigrationRecorder
from django.middleware.csrf import CsrfViewMiddleware
from django.template import engines
from django.template.backends.django import DjangoTemplates
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from .apps import NotificationsConfig
from .conf import DEFAULTS, settings
from .registry import declared_event_types
from .usermodel import AUDIENCE_FIELDS, has_field

__all__ = [
    "check_event_types",
    "check_hq_history",
    "check_package_conflict",
    "check_request_handling",
    "check_settings",
    "check_user_model",
]

#: Numeric settings for which 0 means "no limit"; every other must be above 0.
#: Settings where 0 has a meaning: no cap per address; metrics on the
#: WebSocket port.
ZERO_ALLOWED = frozenset({"WS_MAX_CONNECTIONS_PER_ADDRESS", "METRICS_PORT"})
#: Settings that are TCP ports.
PORTS = frozenset({"METRICS_PORT", "WS_PORT"})


@register()
def check_event_types(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Error]:
    """``notifications.E001``: NOTIFICATIONS_EVENT_TYPES must parse."""
    try:
        declared_event_types()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=_("See docs/live-events.md for the form of each declaration."),
                id="notifications.E001",
            )
        ]
    return []


@register()
def check_package_conflict(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Error]:
    """
    ``notifications.E002``: django-notifications-hq installed over this app.

    Both distributions install a top-level package named ``notifications``;
    installing one over the other mixes their files. Its ``notifications.base``
    package is the tell: this app has none.
    """
    if importlib.util.find_spec("notifications.base") is None:
        return []
    return [
        Error(
            _(
                "django-notifications-hq is installed in the same 'notifications' "
                "package as django-live-notifications; they cannot be installed "
                "together."
            ),
            hint=_(
                "Uninstall both, then install only one of them "
                "(docs/install.md, 'Moving from django-notifications-hq')."
            ),
            id="notifications.E002",
        )
    ]


REQUEST_PROCESSOR = "django.template.context_processors.request"


@register()
def check_request_handling(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """
    What the views, the template tags and the ws_server need of the project:
    ``notifications.E004`` no session middleware (users are who their session
    says, in Django and in the ws_server's handshake); ``notifications.W004``
    no request context processor (the tags read the page's request);
    ``notifications.W005`` no CSRF middleware (it sets the cookie the bell's
    POSTs need on the host's pages; the app's own views protect themselves).
    """
    messages: list[CheckMessage] = []
    if not _has_middleware(SessionMiddleware):
        messages.append(
            Error(
                _(
                    "MIDDLEWARE has no SessionMiddleware: no user is signed in, "
                    "and the WebSocket server authenticates browsers by their "
                    "session."
                ),
                hint=_(
                    "Add 'django.contrib.sessions.middleware.SessionMiddleware' "
                    "to MIDDLEWARE, before AuthenticationMiddleware."
                ),
                id="notifications.E004",
            )
        )
    if not _has_request_processor():
        messages.append(
            Warning(
                _(
                    "No DjangoTemplates engine has the %(processor)r context "
                    "processor: {%% notifications_bell %%} and {%% live_config %%} "
                    "fail to render without the page's request."
                )
                % {"processor": REQUEST_PROCESSOR},
                hint=_("Add %(processor)r to TEMPLATES' OPTIONS['context_processors'].")
                % {"processor": REQUEST_PROCESSOR},
                id="notifications.W004",
            )
        )
    if not _has_middleware(CsrfViewMiddleware):
        messages.append(
            Warning(
                _(
                    "MIDDLEWARE has no CsrfViewMiddleware: pages carrying "
                    "{% notifications_bell %} don't set the CSRF cookie, so its "
                    "Mark read and Dismiss are refused (403) until the user opens "
                    "the inbox page."
                ),
                hint=_(
                    "Add 'django.middleware.csrf.CsrfViewMiddleware' to MIDDLEWARE."
                ),
                id="notifications.W005",
            )
        )
    return messages


def _has_middleware(base: type) -> bool:
    """Whether MIDDLEWARE has ``base`` or a subclass of it."""
    for path in django_settings.MIDDLEWARE:
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django's own start-up reports it
        if isinstance(middleware, type) and issubclass(middleware, base):
            return True
    return False


def _has_request_processor() -> bool:
    """Whether some Django template engine puts ``request`` in the context."""
    return any(
        REQUEST_PROCESSOR in engine.engine.context_processors
        for engine in engines.all()
        if isinstance(engine, DjangoTemplates)
    )


#: django-notifications-hq's app label: its rows in django_migrations.
HQ_LABEL = "notifications"


@register(Tags.database)
def check_hq_history(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[Warning]:
    """
    ``notifications.W003``: the database still holds django-notifications-hq's
    migration history (``migrate`` and ``check --database`` run it).

    This app's label, tables and migrations are its own, so nothing breaks;
    but hq's rows and tables are left over, and someone reading
    ``showmigrations`` or the tables would take them for this app's.
    """
    return [
        Warning(
            _(
                "Database %(alias)r holds django-notifications-hq's migration "
                "history (app %(hq)r in django_migrations) and probably its "
                "notifications_notification table. This app is %(label)r and "
                "never uses them."
            )
            % {"alias": alias, "hq": HQ_LABEL, "label": NotificationsConfig.label},
            hint=_(
                "Copy the notifications you want to keep, then drop hq's "
                "tables and its django_migrations rows: docs/install.md, 'Moving "
                "from django-notifications-hq'."
            ),
            id="notifications.W003",
        )
        for alias in databases or ()
        if _has_hq_history(alias)
    ]


def _has_hq_history(alias: str) -> bool:
    recorder = MigrationRecorder(connections[alias])
    return recorder.has_table() and recorder.migration_qs.filter(app=HQ_LABEL).exists()


@register()
def check_user_model(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[Warning]:
    """``notifications.W001``: an audience the user model can't have members of."""
    return [
        Warning(
            _(
                "The user model has no %(field)r field: the %(audience)r "
                "audience reaches nobody."
            )
            % {"field": field, "audience": audience},
            hint=_(
                "Send to users or everyone instead, or add the field "
                "(PermissionsMixin gives is_superuser, groups and "
                "user_permissions)."
            ),
            id="notifications.W001",
        )
        for audience, field in AUDIENCE_FIELDS.items()
        if not has_field(field)
    ]


@register()
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """
    ``notifications.E003``: a setting of the wrong type or out of range;
    ``notifications.W002``: a ``NOTIFICATIONS_`` setting that doesn't exist
    (a typo keeps the default, silently, without this).

    Each setting's type is its default's (conf.DEFAULTS, the one place they
    live); the Redis URL is parsed as redis-py will, without connecting.
    """
    messages: list[CheckMessage] = [
        Error(
            f"NOTIFICATIONS_{name}: {problem}.",
            hint=_(
                "The default is %(default)r; the README's configuration table "
                "says what it does."
            )
            % {"default": DEFAULTS[name]},
            id="notifications.E003",
        )
        for name in DEFAULTS
        if (problem := _setting_problem(name, getattr(settings, name)))
    ]
    if problem := _redis_url_problem(settings.REDIS_URL):
        messages.append(
            Error(
                _("The Redis URL %(url)r is invalid: %(problem)s.")
                % {"url": settings.REDIS_URL, "problem": problem},
                hint=_(
                    "NOTIFICATIONS_REDIS_URL (or REDIS_URL) takes "
                    "redis://, rediss:// or unix:// URLs."
                ),
                id="notifications.E003",
            )
        )
    messages.extend(
        Warning(
            _("%(name)s is not a setting of this app; it has no effect.")
            % {"name": name},
            hint=_("Check the spelling against the README's configuration table."),
            id="notifications.W002",
        )
        for name in dir(django_settings)
        if name.startswith("NOTIFICATIONS_")
        and name.removeprefix("NOTIFICATIONS_") not in DEFAULTS
    )
    return messages


def _setting_problem(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the setting ``name``, or None."""
    default = DEFAULTS[name]
    if isinstance(default, bool):
        return (
            None
            if isinstance(value, bool)
            else _("%(value)r is not True or False") % {"value": value}
        )
    if isinstance(default, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return _("%(value)r is not a number") % {"value": value}
        if isinstance(default, int) and not isinstance(value, int):
            return _("%(value)r is not a whole number") % {"value": value}
        if value < 0 or (value == 0 and name not in ZERO_ALLOWED):
            return _("%(value)r must be above 0") % {"value": value}
        if name in PORTS and value > 65_535:
            return _("%(value)r is not a TCP port") % {"value": value}
        return None
    if isinstance(default, str):
        if not isinstance(value, str):
            return _("%(value)r is not a string") % {"value": value}
        return _ws_url_problem(value) if name == "WS_URL" else None
    if isinstance(default, list):
        if not isinstance(value, list | tuple) or not all(
            isinstance(item, str) for item in value
        ):
            return _("%(value)r is not a list of strings") % {"value": value}
        return _origins_problem(value) if name == "WS_ORIGINS" else None
    # EVENT_TYPES: a dict, checked in full by notifications.E001.
    return (
        None
        if isinstance(value, dict)
        else _("%(value)r is not a dict") % {"value": value}
    )


def _ws_url_problem(url: str) -> str | None:
    if not url or url.startswith("/"):
        return None
    if urlsplit(url).scheme not in {"ws", "wss", "http", "https"}:
        return _(
            "%(value)r is not a ws(s):// or http(s):// URL, nor a path like /ws"
        ) % {"value": url}
    return None


def _origins_problem(origins: Sequence[str]) -> str | None:
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path:
            return _("%(value)r is not an origin like 'https://example.com'") % {
                "value": origin
            }
    return None


def _redis_url_problem(url: str) -> str | None:
    try:
        redis.ConnectionPool.from_url(url)
    except ValueError as exc:
        return str(exc)
    return None
