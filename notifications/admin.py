"""
Admins send events from here.

Sending is a service (recipients, inbox rows, publish on commit), so the admin
stays thin: the add form collects the fields and ``save_model`` hands them to
:func:`notifications.services.send_event`. A sent event can't be edited: its
copies are already in users' inboxes and browsers; it can be retracted.

Before sending, the add form asks two JSON views (``preview/`` and
``send-test/``) how many users the audience resolves to, what a recipient
will see, and sends the same notification to the admin alone. Users are
picked through a third (``users/``), which searches the user model's
username and email itself: the project's own user admin may search other
fields, or none.

Nothing here names the app's label: URL names come from ``Event._meta`` and
the templates use ``opts``, so they follow the label.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AutocompleteSelectMultiple
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import ManyToManyField, Q, QuerySet
from django.forms import ModelMultipleChoiceField
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from . import presence, selectors, services
from .links import validate_link
from .models import Audience, Event
from .usermodel import has_field

SEND_FIELDS = [
    "title",
    "body",
    "level",
    "url",
    "audience",
    "groups",
    "users",
    "permissions",
    "expires_at",
]


class LinkField(forms.URLField):
    """An http(s) URL ("example.com" is taken for https) or a path on the site."""

    default_validators = [validate_link]

    def to_python(self, value: object) -> str:
        text = forms.CharField.to_python(self, value)
        # URLField would read "/exports/42/" as a host name with no scheme.
        return text if text.startswith("/") else super().to_python(text)


#: The counts in the event's delivery column (DeliveryStats fields), each
#: in the reader's language and plural form.
DELIVERY_COUNTS = {
    "recipients": ngettext_lazy("%(count)d recipient", "%(count)d recipients", "count"),
    "delivered": ngettext_lazy(
        "%(count)d delivered live", "%(count)d delivered live", "count"
    ),
    "read": ngettext_lazy("%(count)d read", "%(count)d read", "count"),
    "dismissed": ngettext_lazy("%(count)d dismissed", "%(count)d dismissed", "count"),
}


def url_name(view: str) -> str:
    """The admin URL name of one of the event admin's own views."""
    return f"{Event._meta.app_label}_{Event._meta.model_name}_{view}"


class UserAutocomplete(AutocompleteSelectMultiple):
    """The admin's autocomplete widget, asking the event admin's user search."""

    def get_url(self) -> str:
        return reverse(f"{self.admin_site.name}:{url_name('users')}")


class SendEventForm(forms.ModelForm):
    url = LinkField(
        label=_("Link"), required=False, max_length=500, assume_scheme="https"
    )

    class Meta:
        model = Event
        fields = SEND_FIELDS

    def clean(self) -> dict:
        cleaned_data = super().clean()
        services.validate_audience(
            cleaned_data.get("audience", ""),
            groups=list(cleaned_data.get("groups") or []),
            users=list(cleaned_data.get("users") or []),
            permissions=list(cleaned_data.get("permissions") or []),
        )
        return cleaned_data


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    form = SendEventForm
    list_display = [
        "title",
        "level",
        "audience",
        "created_by",
        "created_at",
        "retracted_at",
        "retracted_by",
    ]
    list_filter = ["level", "audience", "created_at", "retracted_at"]
    actions = ["retract", "send_again"]
    search_fields = ["title", "body"]
    filter_horizontal = ["groups", "permissions"]
    list_select_related = ["created_by", "retracted_by"]
    #: Users found by one page of the user search.
    users_per_page = 20
    readonly_fields = [
        "created_by",
        "created_at",
        "retracted_at",
        "retracted_by",
        "delivery",
    ]

    def formfield_for_manytomany(
        self, db_field: ManyToManyField, request: HttpRequest, **kwargs
    ) -> ModelMultipleChoiceField | None:
        # Picking among every user needs a search, and the project's user
        # admin may search neither username nor email (or not be registered).
        if db_field.name == "users":
            kwargs["widget"] = UserAutocomplete(db_field, self.admin_site)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description=_("Delivery"))
    def delivery(self, event: Event) -> str:
        """Recipients, live deliveries (acknowledged), reads, dismissals."""
        if event.pk is None:
            return "-"
        stats = selectors.delivery_stats(event_id=event.pk)
        counts = {
            name: text % {"count": getattr(stats, name)}
            for name, text in DELIVERY_COUNTS.items()
        }
        if stats.first_read_at:
            first = date_format(localtime(stats.first_read_at), "DATETIME_FORMAT")
            # Translators: "3 read (first 7 Dec 2026, 12:00)".
            counts["read"] = gettext("%(read)s (first %(time)s)") % {
                "read": counts["read"],
                "time": first,
            }
        # Translators: the four counts of an event's delivery, in this order.
        return (
            gettext("%(recipients)s, %(delivered)s, %(read)s, %(dismissed)s") % counts
        )

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name=url_name("preview"),
            ),
            path(
                "send-test/",
                self.admin_site.admin_view(require_POST(self.send_test_view)),
                name=url_name("send_test"),
            ),
            path(
                "users/",
                self.admin_site.admin_view(self.users_view),
                name=url_name("users"),
            ),
        ]
        return own + super().get_urls()

    def users_view(self, request: HttpRequest) -> JsonResponse:
        """
        Users whose username (or email, if the model has one) contains the
        search term, a page at a time, as the admin's autocomplete widget
        reads them.
        """
        if not self.has_add_permission(request):
            raise PermissionDenied
        term = request.GET.get("term", "").strip()
        user_model = get_user_model()
        users = user_model._default_manager.order_by(user_model.USERNAME_FIELD)
        if term:
            found = Q(**{f"{user_model.USERNAME_FIELD}__icontains": term})
            if has_field("email"):
                found |= Q(email__icontains=term)
            users = users.filter(found)
        page = Paginator(users, self.users_per_page).get_page(request.GET.get("page"))
        return JsonResponse(
            {
                "results": [{"id": str(user.pk), "text": str(user)} for user in page],
                "pagination": {"more": page.has_next()},
            }
        )

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """How many users the form's audience reaches, and what they will see."""
        form = self._bound_send_form(request)
        if isinstance(form, JsonResponse):
            return form
        data = form.cleaned_data
        recipients = selectors.resolve_audience(
            audience=data["audience"],
            groups=[group.pk for group in data["groups"]],
            users=[user.pk for user in data["users"]],
            permissions=[permission.pk for permission in data["permissions"]],
        ).count()
        notification = {name: data[name] for name in ("title", "body", "level", "url")}
        return JsonResponse({"recipients": recipients, "notification": notification})

    def send_test_view(self, request: HttpRequest) -> JsonResponse:
        """Send the form's notification to the admin alone, as a test."""
        form = self._bound_send_form(request)
        if isinstance(form, JsonResponse):
            return form
        fields = {name: form.cleaned_data[name] for name in SEND_FIELDS}
        fields.update(audience=Audience.USERS, users=[request.user])
        event = services.send_event(**fields, created_by=request.user)
        return JsonResponse({"sent": event.pk})

    def _bound_send_form(self, request: HttpRequest) -> SendEventForm | JsonResponse:
        """The add form bound to the request, or the response refusing it."""
        if not self.has_add_permission(request):
            # The add form shows it: in the admin's language.
            return JsonResponse({"error": gettext("Permission denied.")}, status=403)
        form = SendEventForm(request.POST)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        return form

    def changelist_view(self, request: HttpRequest, extra_context=None):
        # Who the next event would reach live, across every ws_server.
        online = presence.online()
        return super().changelist_view(
            request,
            {**(extra_context or {}), "online": online if online.available else None},
        )

    def get_queryset(self, request: HttpRequest):
        # Pushes from application code share the table, not the inbox.
        return super().get_queryset(request).filter(push_type="")

    @admin.action(
        description=_("Retract selected events (remove them from every inbox)"),
        permissions=["delete"],
    )
    def retract(self, request: HttpRequest, queryset) -> None:
        retracted = 0
        for event in queryset.filter(retracted_at__isnull=True):
            if services.retract_event(event=event, by=request.user):
                # The audit trail: who took what back, when (the admin's log).
                self.log_change(request, event, "Retracted.")
                retracted += 1
        self.message_user(
            request,
            ngettext(
                "Retracted %(count)d event.", "Retracted %(count)d events.", retracted
            )
            % {"count": retracted},
        )

    @admin.action(
        description=_("Send selected events again (to their audience as it is now)"),
        permissions=["add"],
    )
    def send_again(self, request: HttpRequest, queryset: QuerySet[Event]) -> None:
        sent = 0
        for event in queryset.prefetch_related("groups", "users", "permissions"):
            try:
                copy = services.send_event(
                    title=event.title,
                    body=event.body,
                    level=event.level,
                    url=event.url,
                    audience=event.audience,
                    groups=event.groups.all(),
                    users=event.users.all(),
                    permissions=event.permissions.all(),
                    created_by=request.user,
                )
            except ValidationError as error:
                # Its groups, users or permissions were deleted since.
                self.message_user(
                    request,
                    gettext("Event %(id)s “%(title)s” was not sent again: %(why)s")
                    % {"id": event.pk, "title": event, "why": " ".join(error.messages)},
                    messages.WARNING,
                )
                continue
            self.log_addition(request, copy, f"Sent again from event {event.pk}.")
            sent += 1
        self.message_user(
            request,
            ngettext(
                "Sent %(count)d event again.", "Sent %(count)d events again.", sent
            )
            % {"count": sent},
        )

    def has_change_permission(
        self, request: HttpRequest, obj: Event | None = None
    ) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: Event, form: SendEventForm, change: bool
    ) -> None:
        event = services.send_event(
            **{name: form.cleaned_data[name] for name in SEND_FIELDS},
            created_by=request.user,
        )
        # The admin logs and redirects to the object it saved; point it at ours.
        obj.pk = event.pk

    def save_related(
        self, request: HttpRequest, form: SendEventForm, formsets: list, change: bool
    ) -> None:
        """The service already set the audience's groups, users and permissions."""
