"""URL map of the gateway role."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from fleet import health
from fleet.api import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("health/<str:role>", health.role_health, name="health"),
    path("push/", include("events.urls")),
]
