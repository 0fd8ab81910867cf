"""The app mounted under a prefix with a "/0/" in it, as a host project might."""

from django.urls import include, path

urlpatterns = [path("team/0/notifications/", include("notifications.urls"))]
