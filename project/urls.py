"""
URL configuration: admin, Django's login/logout views, the demo's pages, the
notifications app.
"""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("demo/bell/", views.bell_page, name="demo-bell"),
    path("demo/live/", views.live_page, name="demo-live"),
    path("demo/live/ship/", views.ship_order, name="demo-ship"),
    path("demo/live/bump/", views.bump_counter, name="demo-bump"),
    path("demo/orders/", views.orders_partial, name="demo-orders"),
    re_path(r"^demo/(?P<library>htmx|turbo)/$", views.swaps_page, name="demo-swaps"),
    re_path(
        r"^demo/(?P<library>htmx|turbo)/about/$",
        views.swaps_about_page,
        name="demo-swaps-about",
    ),
    path("", include("notifications.urls")),
]
