"""
Admins send events from here.

Sending is a service (recipients, inbox rows, publish on commit), so the admin
stays thin: the add form collects the fields and ``save_model`` hands them to
:func:`notifications.services.send_event`. A sent event can't be edited: its
copies are already in users' inboxes and browsers; it can be retracted.

Before sending, the add form asks two JSON views (``preview/`` and
``send-test/``) how many users the audience resolves to, what a recipient
will see, and sends the same notification to the admin alone.
"""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse
from django.urls import URLPattern, path
from django.utils.formats import date_format
from django.utils.timezone import localtime
from django.views.decorators.http import require_POST

from . import presence, selectors, services
from .links import validate_link
from .models import Audience, Event

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


class SendEventForm(forms.ModelForm):
    url = LinkField(label="Link", required=False, max_length=500, assume_scheme="https")

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
    # Picking among every user needs a search: autocomplete when the user
    # model's admin has search_fields (Django's own does), else raw ids
    # rather than admin.E039 in a project whose user admin has none.
    raw_id_fields = ["users"]
    readonly_fields = [
        "created_by",
        "created_at",
        "retracted_at",
        "retracted_by",
        "delivery",
    ]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        user_admin = self.admin_site._registry.get(get_user_model())
        return ["users"] if user_admin is not None and user_admin.search_fields else []

    @admin.display(description="Delivery")
    def delivery(self, event: Event) -> str:
        """Recipients, live deliveries (acknowledged), reads, dismissals."""
        if event.pk is None:
            return "-"
        stats = selectors.delivery_stats(event_id=event.pk)
        first_read = (
            f" (first {date_format(localtime(stats.first_read_at), 'DATETIME_FORMAT')})"
            if stats.first_read_at
            else ""
        )
        return (
            f"{stats.recipients} recipients, {stats.delivered} delivered live, "
            f"{stats.read} read{first_read}, {stats.dismissed} dismissed"
        )

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "preview/",
                self.admin_site.admin_view(require_POST(self.preview_view)),
                name="notifications_event_preview",
            ),
            path(
                "send-test/",
                self.admin_site.admin_view(require_POST(self.send_test_view)),
                name="notifications_event_send_test",
            ),
        ]
        return own + super().get_urls()

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
            return JsonResponse({"error": "permission denied"}, status=403)
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
        description="Retract selected events (remove them from every inbox)",
        permissions=["delete"],
    )
    def retract(self, request: HttpRequest, queryset) -> None:
        retracted = 0
        for event in queryset.filter(retracted_at__isnull=True):
            if services.retract_event(event=event, by=request.user):
                # The audit trail: who took what back, when (the admin's log).
                self.log_change(request, event, "Retracted.")
                retracted += 1
        self.message_user(request, f"Retracted {retracted} event(s).")

    @admin.action(
        description="Send selected events again (to their audience as it is now)",
        permissions=["add"],
    )
    def send_again(self, request: HttpRequest, queryset) -> None:
        sent = 0
        for event in queryset.prefetch_related("groups", "users", "permissions"):
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
            self.log_addition(request, copy, f"Sent again from event {event.pk}.")
            sent += 1
        self.message_user(request, f"Sent {sent} event(s) again.")

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
