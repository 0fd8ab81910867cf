"""
The inbox page and a small JSON API, so a page without a socket still works.

Every state change is a POST protected by ``csrf_protect``, like Django's own
auth views, so it stays protected in a project that dropped the CSRF
middleware. The API answers 401 JSON rather than redirecting to the login
page, with or without Django's ``LoginRequiredMiddleware``: a redirect would
end in the login page's 200, which a ``fetch()`` takes for success.
"""

import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlsplit

import redis
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_protect, ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from . import selectors, services, tickets
from .client_strings import client_catalog
from .conf import settings
from .models import Notification
from .payloads import event_payload
from .wire import MAX_ID

logger = logging.getLogger(__name__)

PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


def api_login_required(
    view: Callable[..., HttpResponse],
) -> Callable[..., HttpResponse]:
    """
    Answer an anonymous request with 401 JSON instead of calling ``view``.

    The view is marked ``login_not_required``, so that
    ``LoginRequiredMiddleware`` leaves the check to it rather than redirecting.
    """

    @login_not_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"error": "authentication required"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def websocket_url(request: HttpRequest) -> str:
    """The configured public WebSocket URL, or this host on WS_PORT."""
    if settings.WS_URL:
        return settings.WS_URL
    scheme = "wss" if request.is_secure() else "ws"
    hostname = urlsplit(f"//{request.get_host()}").hostname or "localhost"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{scheme}://{hostname}:{settings.WS_PORT}/ws"


def live_config(request: HttpRequest) -> dict[str, object]:
    """
    The options of live.js's ``connect()`` for a page served by ``request``,
    with the client's strings in the request's language.
    """
    return {
        "wsUrl": websocket_url(request),
        "ticketUrl": reverse("notifications:api-ticket"),
        # Answers 401 once the user is signed out: tells a revoked socket
        # whether to reconnect.
        "sessionCheckUrl": reverse("notifications:api-unread"),
        "csrfToken": get_token(request),
        # Tabs share one socket per user: a tab still showing someone who
        # signed out must not read the next user's frames.
        "user": str(request.user.pk) if request.user.is_authenticated else "",
        "strings": client_catalog(),
    }


def feed_config(request: HttpRequest) -> dict[str, object]:
    """What feed.js needs: the connection's options and the inbox API's URLs."""
    return {
        **live_config(request),
        "listUrl": reverse("notifications:api-list"),
        "readAllUrl": reverse("notifications:api-read-all"),
        "readUrlTemplate": id_url_template("notifications:api-read"),
        "dismissUrlTemplate": id_url_template("notifications:api-dismiss"),
    }


def id_url_template(name: str) -> str:
    """
    The URL named ``name`` with ``{id}`` where the event id goes.

    The id is the last number in the path, so a prefix the project mounts
    the app under (even one with a ``/0/`` in it) is left alone.
    """
    head, _zero, tail = reverse(name, args=[0]).rpartition("/0/")
    return f"{head}/{{id}}/{tail}"


# The page hands its CSRF token to the script, which posts with it: the
# cookie must go out with the page even without the CSRF middleware.
@login_required
@ensure_csrf_cookie
@require_GET
def inbox_page(request: HttpRequest) -> HttpResponse:
    return render(
        request, "notifications/inbox.html", {"client_config": feed_config(request)}
    )


@login_required
@require_GET
def activity_page(request: HttpRequest) -> HttpResponse:
    """
    The admin's activity, history then live, as far as the user may view it:
    not found unless ``NOTIFICATIONS_ACTIVITY`` is on, forbidden to
    non-staff (the admin itself turns them away).
    """
    if not settings.ACTIVITY:
        raise Http404("the activity stream is off")
    if not getattr(request.user, "is_staff", False):
        raise PermissionDenied
    # Imported here: the activity stream exists only with the admin installed.
    from .activity import activity_payload, recent_activity

    # Rendered now, in the reader's language (LocaleMiddleware's choice):
    # the log keeps the admin's change messages in a structured form.
    entries = recent_activity(request=request)
    return render(
        request,
        "notifications/activity.html",
        {"entries": [(activity_payload(entry), entry) for entry in entries]},
    )


def _notification_json(notification: Notification) -> dict[str, object]:
    return {
        **event_payload(notification.event),
        "read": notification.read_at is not None,
    }


def _int_param(value: str | None, default: int | None) -> int | None:
    try:
        return default if value is None else int(value)
    except ValueError:
        return None


def _event_id(value: str) -> int | None:
    """The event id ``value`` spells in decimal digits, or None if it isn't one."""
    # Not int() alone: it takes "-1", "+1", " 1", "1_0" and non-ASCII digits.
    # And ids stop at MAX_ID: past it, SQLite's integers overflow (HTTP 500).
    if not (value.isascii() and value.isdigit()):
        return None
    try:
        event_id = int(value)
    except ValueError:  # more digits than int() converts
        return None
    return event_id if event_id <= MAX_ID else None


def _bad_event_id(name: str) -> JsonResponse:
    return JsonResponse(
        {"error": f"{name!r} must be an event id (0 to {MAX_ID})"}, status=400
    )


@api_login_required
@require_GET
def list_notifications(request: HttpRequest) -> JsonResponse:
    """One page of the inbox, newest first; ``before`` is the cursor."""
    raw_before = request.GET.get("before")
    before = _event_id(raw_before) if raw_before else None
    limit = _int_param(request.GET.get("limit"), PAGE_SIZE)
    if (
        (raw_before and before is None)
        or limit is None
        or not 0 < limit <= MAX_PAGE_SIZE
    ):
        return JsonResponse(
            {"error": f"'before' must be an id and 'limit' 1 to {MAX_PAGE_SIZE}"},
            status=400,
        )
    page = selectors.inbox(user_id=request.user.pk, before=before, limit=limit)
    return JsonResponse(
        {
            "results": [_notification_json(n) for n in page],
            "next_before": page[-1].event_id if len(page) == limit else None,
            "unread": selectors.unread_count(user_id=request.user.pk),
        }
    )


@api_login_required
@require_GET
def unread_count(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"unread": selectors.unread_count(user_id=request.user.pk)})


@csrf_protect
@api_login_required
@require_POST
def mark_read(request: HttpRequest, event_id: str) -> JsonResponse:
    parsed_id = _event_id(event_id)
    if parsed_id is None:
        return _bad_event_id("id")
    change = services.mark_read(user_id=request.user.pk, event_id=parsed_id)
    return JsonResponse({"unread": change.unread})


@csrf_protect
@api_login_required
@require_POST
def dismiss(request: HttpRequest, event_id: str) -> JsonResponse:
    parsed_id = _event_id(event_id)
    if parsed_id is None:
        return _bad_event_id("id")
    change = services.dismiss(user_id=request.user.pk, event_id=parsed_id)
    return JsonResponse({"unread": change.unread})


@csrf_protect
@api_login_required
@require_POST
def mark_all_read(request: HttpRequest) -> JsonResponse:
    """Mark read up to the ``up_to`` event id the page has shown."""
    up_to = _event_id(request.POST.get("up_to", ""))
    if up_to is None:
        return _bad_event_id("up_to")
    change = services.mark_all_read(user_id=request.user.pk, up_to=up_to)
    return JsonResponse({"marked": change.changed, "unread": change.unread})


@csrf_protect
@api_login_required
@require_POST
def websocket_ticket(request: HttpRequest) -> JsonResponse:
    """Issue a short-lived ticket to send as the first WebSocket message."""
    try:
        ticket = tickets.issue_ticket(request)
    except tickets.NoSession:
        # Signed in by a token or another credential that isn't a session:
        # a ticket is bound to a session (logging out revokes it).
        return JsonResponse(
            {"error": "a WebSocket ticket needs a session login"}, status=403
        )
    except redis.RedisError as exc:
        logger.warning("cannot issue a WebSocket ticket, Redis is unavailable: %s", exc)
        return JsonResponse({"error": "live notifications are unavailable"}, status=503)
    return JsonResponse({"ticket": ticket, "expires_in": settings.TICKET_MAX_AGE})
