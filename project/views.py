"""
The demo's pages: the live-events page, the two worked examples of
docs/live-events.md, a page that is nothing but the bell's one tag, and the
pages of a site that navigates by swapping the body with htmx or Turbo
(docs/widget.md), where a partial refreshes on a push with no JavaScript of
the page's.

"Ship an order" pushes a durable ``demo.order`` event to the user who
clicked; "+1" pushes a live-only ``demo.counter`` event to the Engineering
group (and the clicker). The live page subscribes to both with live.js.
"""

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

import notifications

COUNTER_GROUP = "Engineering"


@require_GET
def bell_page(request: HttpRequest) -> HttpResponse:
    """A page of its own, no base template: what the bell's one tag brings."""
    return render(request, "demo/bell.html")


@login_required
@require_GET
def live_page(request: HttpRequest) -> HttpResponse:
    return render(request, "demo/live.html", {"counter_group": COUNTER_GROUP})


@login_required
@require_GET
def swaps_page(request: HttpRequest, library: str) -> HttpResponse:
    """Orders, on a site that navigates with ``library`` (htmx or Turbo)."""
    context = {"library": library, "heading": "Orders"}
    context["orders"] = _current("demo-order")
    return render(request, "demo/swaps.html", context)


@login_required
@require_GET
def swaps_about_page(request: HttpRequest, library: str) -> HttpResponse:
    """A page with nothing live but the bell, on the same site."""
    context = {"library": library, "heading": "About", "about": True}
    return render(request, "demo/swaps.html", context)


@login_required
@require_GET
def orders_partial(request: HttpRequest) -> HttpResponse:
    """What htmx fetches on ``live:demo.order``: the count, as HTML."""
    return render(request, "demo/orders.html", {"orders": _current("demo-order")})


@login_required
@require_POST
def ship_order(request: HttpRequest) -> JsonResponse:
    order = _next("demo-order")
    notifications.push(
        "demo.order",
        {"order": order, "status": "shipped"},
        to=notifications.users(request.user),
    )
    return JsonResponse({"order": order})


@login_required
@require_POST
def bump_counter(request: HttpRequest) -> JsonResponse:
    value = _next("demo-counter")
    team = Group.objects.filter(name=COUNTER_GROUP).first()
    to = notifications.users(request.user)
    if team is not None:
        to |= notifications.groups(team)
    notifications.push("demo.counter", {"value": value}, to=to)
    return JsonResponse({"value": value})


def _next(key: str) -> int:
    """A demo sequence (per cache: per process with the default local memory)."""
    cache.add(key, 0)
    return cache.incr(key)


def _current(key: str) -> int:
    """A demo sequence's last value, 0 before its first."""
    return cache.get(key, 0)
