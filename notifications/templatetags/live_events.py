"""
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

from notifications.views import live_config as build_live_config

register = template.Library()


@register.simple_tag(takes_context=True)
def live_config(context: template.Context) -> SafeString:
    return json_script(build_live_config(context["request"]), "live-config")
