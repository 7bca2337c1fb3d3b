"""Benchmark-only push endpoint, mounted under /push/ (so it takes the lean push handler) when BENCH_BARE_VIEW
is set — and only where this package is installed at all."""

from __future__ import annotations

from django.conf import settings
from django.urls import path

from devtools.views import bench_bare_insert

urlpatterns = [path("_bare/<slug:source>", bench_bare_insert, name="bench-bare")] if settings.BENCH_BARE_VIEW else []
