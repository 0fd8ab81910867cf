"""
Template tags for live notifications in any page.

``{% notifications_bell %}`` drops the notification bell into a template
(one tag in the base template): a button with the unread count and a
dropdown feed, with its own configuration, static files and CSRF token,
and no element ids required of the page. Nothing for anonymous users.

``{% live_config %}`` starts the page's live connection: it renders the
configuration as a JSON script element (``id="live-config"``) and live.js,
which connects with it, so a page needs no view changes. Every push then
reaches the page as a DOM event (``live:<name>`` on ``document.body``), and
the page's own scripts get the same client::

    {% load live_events %}
    {% live_config %}
    <script type="module">
      const config = JSON.parse(document.getElementById("live-config").textContent);
      const live = LiveNotifications.connect(config);
      live.on("order.status", (data) => { ... });
    </script>

The scripts are classic ones rendered with ``{% static %}``: every URL is the
storage's (hashed by ManifestStaticFilesStorage), and a static host on
another origin needs no CORS headers (docs/widget.md).
"""

from django import template
from django.templatetags.static import static
from django.utils.html import format_html, json_script
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
    config = json_script(build_live_config(context["request"]), "live-config")
    script = format_html(
        '<script src="{}" defer></script>', static("notifications/live.js")
    )
    return config + script
