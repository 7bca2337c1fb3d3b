"""URL map of the gateway role."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.urls import include, path

from fleet import health, pages
from fleet.api import api, scoped_view
from fleet.auth import READ_FLEET, TokenObtainView, TokenRevokeView, TokenRotateView, admin_login
from fleet.roles import ROLES
from geo.views import road_tile_view
from ops.overview import ops_overview


def _role_statuses() -> list[dict[str, Any]]:
    return [health.role_status(role)[1] for role in ROLES]


urlpatterns = [
    # Before admin/: the admin's own login, throttled per username + IP (fleet.auth.admin_login).
    path("admin/login/", admin_login, name="admin-login-throttled"),
    path(
        "admin/ops-overview/",
        admin.site.admin_view(partial(ops_overview, role_statuses=_role_statuses)),
        name="ops-overview",
    ),
    path("admin/", admin.site.urls),
    # Before api/: the token endpoints are DRF (simplejwt); everything else under /api/ is the NinjaAPI.
    path("api/auth/token", TokenObtainView.as_view(), name="token-obtain"),
    path("api/auth/token/refresh", TokenRotateView.as_view(), name="token-refresh"),
    path("api/auth/token/revoke", TokenRevokeView.as_view(), name="token-revoke"),
    path("api/", api.urls),
    path("health/<str:role>", health.role_health, name="health"),
    path("push/", include("events.urls")),
    # The road graph as vector tiles for the pages' maps (geo/views.py), read:fleet like the API (token or session).
    path("tiles/roads/<str:z>/<str:x>/<str:y>.pbf", scoped_view(road_tile_view, READ_FLEET), name="road-tile"),
    # The pages for dispatchers and managers (fleet/pages.py): session login, read:fleet like the API.
    path("", pages.home, name="fleet-home"),
    path("login/", pages.FleetLoginView.as_view(), name="fleet-login"),
    path("logout/", LogoutView.as_view(), name="fleet-logout"),
    path("live/", pages.live, name="fleet-live"),
    path("history/", pages.history, name="fleet-history"),
    path("dispatch/", pages.dispatch, name="fleet-dispatch"),
    path("routes/", pages.routes, name="fleet-routes"),
    path("reports/", pages.reports, name="fleet-reports"),
]

# Development tools (benchmarks), present only in the set-up `make test` installs: never in the image.
if apps.is_installed("devtools"):
    urlpatterns.append(path("push/", include("devtools.urls")))
