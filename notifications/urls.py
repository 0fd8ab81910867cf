from django.urls import path

from . import views

app_name = "notifications"

# Event ids in paths are "str": the views answer 400 JSON for one that isn't
# an id (0 to wire.MAX_ID), where "int" would give a bare 404 for "-1" and pass
# 2**64 through to the database.
urlpatterns = [
    path("", views.inbox_page, name="inbox"),
    path("activity/", views.activity_page, name="activity"),
    path("api/", views.list_notifications, name="api-list"),
    path("api/unread/", views.unread_count, name="api-unread"),
    path("api/<str:event_id>/read/", views.mark_read, name="api-read"),
    path("api/<str:event_id>/dismiss/", views.dismiss, name="api-dismiss"),
    path("api/read-all/", views.mark_all_read, name="api-read-all"),
    path("api/ws-ticket/", views.websocket_ticket, name="api-ticket"),
]
