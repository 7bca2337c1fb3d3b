"""WSGI entry point of the gateway role.

Two Django handlers share one process: `/push/...` goes through a lean one (only the request id middleware:
authenticate, one INSERT, answer), everything else through the full stack (sessions, CSRF, auth, history).
Measured on a 2-core machine, the full default stack costs the push path about a fifth of its throughput.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.wsgi import WSGIHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

PUSH_PREFIX = "/push/"


class PushWSGIHandler(WSGIHandler):
    """A Django handler whose middleware chain is settings.PUSH_MIDDLEWARE instead of MIDDLEWARE."""

    def load_middleware(self, is_async: bool = False) -> None:
        from django.conf import settings
        from django.test.utils import override_settings

        with override_settings(MIDDLEWARE=settings.PUSH_MIDDLEWARE):
            super().load_middleware(is_async=is_async)


def _build() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    full = get_wsgi_application()
    push = PushWSGIHandler()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(PUSH_PREFIX):
            return push(environ, start_response)
        return full(environ, start_response)

    return application


application = _build()
