"""The one NinjaAPI of the project, at /api/: each app contributes routers from its own `api.py`, mounted here.

Every operation declares a scope (fleet/auth.py): the mounts below are the table of who may call what. A router
of an app (which cannot import fleet) gets its scope and rate-limit group at its mount; an operation defined in
fleet/ may also pass `auth=require(...)` itself. Anything undeclared falls to `UNDECLARED` (admin:fleet only),
and fleet/tests/test_auth_matrix.py fails on it. The view endpoints are mounted so:

    api.add_router("/views/", dashboards_api.router, auth=require(READ_FLEET), throttle=rate_limit(DASHBOARDS))

/api/openapi.json and /api/docs are public: they describe the contracts and hold no fleet data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, Throttled
from ninja.openapi.schema import OpenAPISchema
from ninja.operation import Operation

from domain import api as domain_api
from fleet.auth import ADMIN_FLEET, READ_FLEET, UNDECLARED, WRITE_OPS, AuthDenied, BearerJWT, DjangoSession, require
from fleet.ratelimit import DASHBOARDS, ROUTES, rate_limit
from geo import api as geo_api
from geo import enrich as geo_enrich
from ops import api as ops_api
from slo import api as slo_api
from state.dashboards import api as dashboards_api


class ScopedOpenAPISchema(OpenAPISchema):
    """The OpenAPI document, with each operation's scopes in its security requirements (OpenAPI 3.1 allows
    scopes for any scheme): `{"BearerJWT": ["read:fleet"]}`. An undeclared operation shows none."""

    def operation_security(self, operation: Operation) -> list[dict[str, Any]] | None:
        result = super().operation_security(operation)
        documented = [auth for auth in operation.auth_callbacks if hasattr(auth, "openapi_security_schema")]
        for requirement, auth in zip(result or [], documented, strict=True):
            if isinstance(auth, BearerJWT | DjangoSession) and auth.declared:
                (name,) = requirement
                requirement[name] = sorted(auth.scopes)
        return result


def _error(api: NinjaAPI, request: HttpRequest, status: int, code: str, detail: str) -> HttpResponse:
    response = api.create_response(request, {"detail": detail, "code": code}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="fleet"'
    return response


class FleetAPI(NinjaAPI):
    """A NinjaAPI whose refusals are {"detail", "code"} and whose OpenAPI document names the scopes."""

    def set_default_exception_handlers(self) -> None:
        super().set_default_exception_handlers()
        # ninja types a handler's exception as the instance or its class; it only ever hands over the instance.
        self.add_exception_handler(AuthDenied, self._auth_denied)  # type: ignore[arg-type]  # an instance, see above
        self.add_exception_handler(AuthenticationError, self._not_authenticated)  # type: ignore[arg-type]  # likewise
        self.add_exception_handler(Throttled, self._throttled)  # type: ignore[arg-type]  # likewise

    def _auth_denied(self, request: HttpRequest, exc: AuthDenied) -> HttpResponse:
        return _error(self, request, exc.status_code, exc.code, exc.message)

    def _not_authenticated(self, request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        detail = "authentication required: a bearer token (POST /api/auth/token) or a session"
        return _error(self, request, 401, "not_authenticated", detail)

    def _throttled(self, request: HttpRequest, exc: Throttled) -> HttpResponse:
        # ninja adds Retry-After from the throttle's wait().
        wait = math.ceil(exc.wait) if exc.wait else None
        return _error(
            self, request, 429, "rate_limited", "rate limit exceeded" + (f"; retry in {wait} s" if wait else "")
        )

    def get_openapi_schema(
        self, *, path_prefix: str | None = None, path_params: dict[str, Any] | None = None
    ) -> OpenAPISchema:
        if path_prefix is None:
            path_prefix = self.get_root_path(path_params or {})
        return ScopedOpenAPISchema(self, path_prefix)


def scoped_view(view: Callable[..., HttpResponse], *scopes: str) -> Callable[..., HttpResponse]:
    """A plain Django view (one outside /api/, such as the road tiles) behind the API's own check: a bearer token
    or a session holding one of `scopes`, refused with the API's {"detail", "code"} answers (401, 403)."""
    checks = require(*scopes)

    @wraps(view)
    def scoped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            for check in checks:
                principal = check(request)
                if principal is not None:
                    request.auth = principal  # type: ignore[attr-defined]  # the attribute ninja sets on requests
                    return view(request, *args, **kwargs)
        except AuthDenied as exc:
            return _error(api, request, exc.status_code, exc.code, exc.message)
        detail = "authentication required: a bearer token (POST /api/auth/token) or a session"
        return _error(api, request, 401, "not_authenticated", detail)

    return scoped


api = FleetAPI(
    title="Fleet Platform API",
    version="1.0.0",
    description=(
        "Typed view contracts over the fleet's event-sourced state. Authenticate with a bearer token from "
        "`POST /api/auth/token` (refresh at `/api/auth/token/refresh`, log out at `/api/auth/token/revoke`) or "
        "a Django session (with `X-CSRFToken` on writes). Each operation lists the scopes it accepts."
    ),
    docs_url="/docs",
    urls_namespace="api",
    auth=UNDECLARED,
)


# --- Mounts: prefix, router, scope, rate-limit group ----------------------------------------------------------

api.add_router("/fleet/", domain_api.router, auth=require(READ_FLEET))
api.add_router("/fleet/", domain_api.admin_router, auth=require(ADMIN_FLEET))

# Every /api/views/* operation: read:fleet, and RATE_LIMIT_DASHBOARDS_PER_MIN per client IP. The payloads the state
# layer builds get what geo knows about their points (addresses, the nearest depot) here, where both may be imported.
dashboards_api.router.add_decorator(geo_enrich.view_enrichment)
api.add_router("/views/", dashboards_api.router, auth=require(READ_FLEET), throttle=rate_limit(DASHBOARDS))
api.add_router("/slo/", slo_api.router, auth=require(READ_FLEET))
api.add_router("/reports/", ops_api.reports_router, auth=require(READ_FLEET))
# Ops writes: acknowledgements, tickets, odometer readings, the service log.
api.add_router("/ops/", ops_api.ops_router, auth=require(WRITE_OPS))
# POST /api/routes: read:fleet, and RATE_LIMIT_ROUTES_PER_MIN per client IP.
api.add_router("/routes", geo_api.routes_router, auth=require(READ_FLEET), throttle=rate_limit(ROUTES))
api.add_router("/pois", geo_api.pois_router, auth=require(READ_FLEET))
