"""The one NinjaAPI of the project; each app contributes a Router from its own `api.py`."""

from __future__ import annotations

from ninja import NinjaAPI

api = NinjaAPI(
    title="Fleet Platform API",
    version="1.0.0",
    description="Typed view contracts over the fleet's event-sourced state.",
    docs_url="/docs",
    urls_namespace="api",
)
