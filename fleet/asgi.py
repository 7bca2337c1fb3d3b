"""ASGI entry point. The gateway runs WSGI (sync views are several times faster here); this exists for tools."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

application = get_asgi_application()
