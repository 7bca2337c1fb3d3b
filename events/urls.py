"""Push endpoints (served by the lean push handler, see fleet.wsgi)."""

from __future__ import annotations

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
