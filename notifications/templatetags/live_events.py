"""
Template tags for live notifications in any page.

``{% notifications_bell %}`` drops the notification bell into a template
(one tag in the base template): a button with the unread count and a
dropdown feed, with its own configuration, static files and CSRF token,
and no element ids required of the page. Nothing for anonymous users.

``{% live_config %}``: what a page's script needs to ``connect()`` with live.js.

It renders the configuration as a JSON script element (``id="live-config"``),
so a page needs no view changes::

    {% load live_events static %}
    {% live_config %}
    <script type="module">
      import { connect } from "{% static 'notifications/live.js' %}";
      const live = connect(JSON.parse(document.getElementById("live-config").textContent));
      live.on("order.status", (data) => { ... });
    </script>
"""

from django import template
from django.utils.html import json_script
from django.utils.safestring import SafeString

from notifications.views import feed_config
from notifications.views import live_config as build_live_config

register = template.Library()


@register.inclusion_tag("notifications/bell.html", takes_context=True)
def notifications_bell(context: template.Context) -> dict[str, object]:
    request = context["request"]
    if not request.user.is_authenticated:
        return {"show": False}
    return {"show": True, "config": feed_config(request)}


@register.simple_tag(takes_context=True)
def live_config(context: template.Context) -> SafeString:
    return json_script(build_live_config(context["request"]), "live-config")
