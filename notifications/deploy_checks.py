"""
Checks for ``manage.py check --deploy``: a production setup the WebSocket
server can't work in, or works in insecurely.

Each one catches a mistake that shows up only in the browser (a socket that
never authenticates, a page that mixes ws:// into https) or only under load
balancers (a proxy that drops idle sockets). They run with ``--deploy`` only,
like Django's own security checks, since the local demo breaks them on
purpose (plain http, no cookie flags). Their messages are translated when
they run, like those of ``checks``.
"""

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis
from django.apps import AppConfig
from django.conf import settings as django_settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.http.request import validate_host
from django.utils.translation import gettext as _

from .conf import settings

__all__ = [
    "PROXY_IDLE_TIMEOUT",
    "check_cookie_reaches_the_socket",
    "check_keepalive",
    "check_origins",
    "check_redis_reachable",
    "check_ws_url_scheme",
]

#: nginx's default ``proxy_read_timeout``, which the README's configuration
#: keeps: a socket idle for longer is closed by the proxy.
PROXY_IDLE_TIMEOUT = 60.0

#: How long the Redis check waits for an answer.
REDIS_CHECK_TIMEOUT = 1.0


def _https_site() -> bool:
    return bool(
        getattr(django_settings, "SECURE_SSL_REDIRECT", False)
        or any(
            origin.startswith("https://")
            for origin in getattr(django_settings, "CSRF_TRUSTED_ORIGINS", [])
        )
    )


@register(Tags.security, deploy=True)
def check_origins(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """
    ``notifications.W010``: no WebSocket origins (every browser is refused);
    ``W011``: an origin over plain http; ``W012``: an origin whose host
    ALLOWED_HOSTS doesn't allow (the pages can't come from there).
    """
    origins = settings.WS_ORIGINS
    if not origins:
        return [
            Warning(
                _(
                    "NOTIFICATIONS_WS_ORIGINS is empty: the WebSocket server "
                    "refuses every browser (HTTP 403)."
                ),
                hint=_(
                    "List the origins your pages are served from, e.g. "
                    "['https://example.com']."
                ),
                id="notifications.W010",
            )
        ]
    messages: list[CheckMessage] = []
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme == "http":
            messages.append(
                Warning(
                    _(
                        "The WebSocket origin %(origin)r is plain http: sessions "
                        "travel unencrypted."
                    )
                    % {"origin": origin},
                    hint=_("Serve the site over https and list the https origin."),
                    id="notifications.W011",
                )
            )
        if parts.hostname and not validate_host(
            parts.hostname, django_settings.ALLOWED_HOSTS
        ):
            messages.append(
                Warning(
                    _(
                        "The WebSocket origin %(origin)r names a host that "
                        "ALLOWED_HOSTS doesn't allow: no page of this site is "
                        "served from it."
                    )
                    % {"origin": origin},
                    hint=_(
                        "Make NOTIFICATIONS_WS_ORIGINS the origins of the hosts "
                        "in ALLOWED_HOSTS."
                    ),
                    id="notifications.W012",
                )
            )
    return messages


@register(Tags.security, deploy=True)
def check_ws_url_scheme(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """``notifications.W013``: a ws:// URL for an https site (browsers block it)."""
    if urlsplit(settings.WS_URL).scheme not in {"ws", "http"} or not _https_site():
        return []
    return [
        Warning(
            _(
                "NOTIFICATIONS_WS_URL is %(url)r but the site is served over "
                "https: browsers refuse a plain ws:// socket from an https page "
                "(mixed content)."
            )
            % {"url": settings.WS_URL},
            hint=_("Use wss:// (or a path such as /ws, which follows the page)."),
            id="notifications.W013",
        )
    ]


@register(Tags.security, deploy=True)
def check_cookie_reaches_the_socket(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """
    ``notifications.W014``: the session cookie won't be sent with the
    WebSocket handshake: SameSite=None without Secure (browsers drop such
    a cookie), or a Secure cookie and a ws:// URL (not a secure scheme).
    """
    samesite = getattr(django_settings, "SESSION_COOKIE_SAMESITE", "Lax")
    secure = getattr(django_settings, "SESSION_COOKIE_SECURE", False)
    problem = None
    if samesite == "None" and not secure:
        problem = _("SESSION_COOKIE_SAMESITE is 'None' without SESSION_COOKIE_SECURE")
    elif secure and urlsplit(settings.WS_URL).scheme in {"ws", "http"}:
        problem = _("SESSION_COOKIE_SECURE is on and NOTIFICATIONS_WS_URL is ws://")
    if problem is None:
        return []
    return [
        Warning(
            _(
                "%(problem)s: browsers won't send the session cookie with the "
                "WebSocket handshake, so every socket on this host fails to "
                "authenticate (4001)."
            )
            % {"problem": problem},
            hint=_("Serve the socket over wss:// and set SESSION_COOKIE_SECURE."),
            id="notifications.W014",
        )
    ]


@register(Tags.security, deploy=True)
def check_keepalive(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """``notifications.W015``: pings too rare to keep a proxied socket open."""
    if settings.WS_PING_INTERVAL < PROXY_IDLE_TIMEOUT:
        return []
    return [
        Warning(
            _(
                "NOTIFICATIONS_WS_PING_INTERVAL is %(interval)ss, not shorter "
                "than a proxy's idle timeout (%(timeout)gs in nginx, "
                "proxy_read_timeout): the proxy closes quiet sockets."
            )
            % {"interval": settings.WS_PING_INTERVAL, "timeout": PROXY_IDLE_TIMEOUT},
            hint=_("Keep it well below the proxy's idle timeout (the default is 20)."),
            id="notifications.W015",
        )
    ]


@register(deploy=True)
def check_redis_reachable(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """
    ``notifications.W016``: Redis doesn't answer. A warning: Django serves
    without it and the WebSocket servers catch up from the database, but
    nothing is live until it answers.
    """
    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_connect_timeout=REDIS_CHECK_TIMEOUT,
        socket_timeout=REDIS_CHECK_TIMEOUT,
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return [
            Warning(
                _(
                    "Redis at %(url)s doesn't answer (%(error)s): notifications "
                    "won't be live until it does."
                )
                % {"url": _without_password(settings.REDIS_URL), "error": exc},
                hint=_("Check NOTIFICATIONS_REDIS_URL (or REDIS_URL)."),
                id="notifications.W016",
            )
        ]
    finally:
        client.close()
    return []


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()
