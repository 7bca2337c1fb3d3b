"""geo admin: points of interest, edited on a map."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.gis.admin import GISModelAdmin

from geo.models import Poi


@admin.register(Poi)
class PoiAdmin(GISModelAdmin):
    list_display = ("name", "kind", "account", "created_at")
    list_filter = ("kind", "account")
    search_fields = ("name", "notes")
    gis_widget_kwargs = {"attrs": {"default_lat": 43.7384, "default_lon": 7.4246, "default_zoom": 13}}
