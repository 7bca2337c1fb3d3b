"""Authentication and scopes: JWT bearer tokens and Django sessions, one set of scopes, deny by default.

Scopes. `read:fleet` (every dashboard and fleet read), `write:ops` (driver assignments, alarm acks, service
log, admin actions on operational records), `admin:fleet` (lifecycle transitions, device provisioning, audit).
A scope is a Django permission (`fleet.scope_read_fleet`, `fleet.scope_write_ops`, `fleet.scope_admin_fleet`, on
the table-less model fleet.models.ApiScope), so there is one permission model: a group carries scopes and model
permissions side by side (fleet/groups.py: the role groups "Ops clerk", "Dispatcher", "Manager", "Fleet admin", and
one group per scope named after it). Superusers hold all three; inactive users none. Scopes do not imply each
other: an ops clerk who also reads dashboards holds `read:fleet` and `write:ops`. The admins of the layers below ask
the same question through domain.access (registered in fleet/apps.py).

Tokens (simplejwt; DRF serves these three endpoints and nothing else):
- `POST /api/auth/token` {username, password} → {access, refresh}. Login throttled (see `login_lock_wait`).
- `POST /api/auth/token/refresh` {refresh} → {access, refresh}: the refresh token rotates, the one presented is
  blacklisted; its scopes are recomputed from the user's groups, so a group change applies within one access
  lifetime. Presenting a blacklisted refresh token again is a replay (a stolen token, or a client that lost a
  race): it revokes the token's whole family.
- `POST /api/auth/token/revoke` {refresh} → {}: blacklists it and revokes its family (log out).
The claims: `scope` (space-separated scopes), `sid` (the family: one id per login, kept through rotations).

Revoking access tokens. Access tokens live JWT_ACCESS_LIFETIME_S (5 min). Each bearer request also makes one
indexed query that loads the user and asks whether the token's family is in `fleet_revoked_token_families`: a
revoked login, or a deactivated user, is refused from the next request on, not at expiry.

Sessions. The ninja API accepts a Django session (the server-rendered pages) as well, with the scopes of the
session's user, and checks CSRF on unsafe methods (the `X-CSRFToken` header) once a session is present.

Declaring scopes. Every API operation needs a scope: `require(*scopes)` (any one of them suffices) as `auth=` on
a router mount in fleet/api.py or on an operation defined in fleet/. The API's default is `UNDECLARED`, which
admits admin:fleet only and shows no scope in the OpenAPI document, and a test fails on it.

Errors are JSON {"detail", "code"}: 401 (no or bad credentials: not_authenticated, token_invalid,
token_expired, token_revoked, user_inactive), 403 (insufficient_scope, csrf_failed), 429 (rate_limited).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import connection
from django.db.models.expressions import RawSQL
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf
from rest_framework import serializers
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import (
    ExpiredTokenError,
    TokenBackendError,
    TokenBackendExpiredToken,
    TokenError,
)
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken, Token
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

# The scope names are defined once, in the lowest layer, so that the admins below the project can ask for them.
from domain.access import ADMIN_FLEET as ADMIN_FLEET
from domain.access import READ_FLEET as READ_FLEET
from domain.access import SCOPES as SCOPES
from domain.access import WRITE_OPS as WRITE_OPS
from events.ratelimit import too_many_requests
from fleet.groups import scope_permission
from fleet.ratelimit import client_ip, counter_get, counter_hit, counter_reset, rate_limits_prune

# scope → the permission that grants it ("app_label.codename"; fleet.models.ApiScope declares them).
SCOPE_PERMISSIONS = {scope: scope_permission(scope) for scope in sorted(SCOPES)}

SCOPE_CLAIM = "scope"
FAMILY_CLAIM = "sid"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class Principal:
    """Who called, with which scopes, and how (`token` or `session`): `request.auth` in every API operation."""

    user: Any
    scopes: frozenset[str]
    via: str


def user_scopes(user: Any) -> frozenset[str]:
    """The scopes a user holds now: their scope permissions (through groups, or given directly); all for a
    superuser; none when inactive."""
    if user is None or not user.is_authenticated or not user.is_active:
        return frozenset()
    if user.is_superuser:
        return SCOPES
    held = user.get_all_permissions()
    return frozenset(scope for scope, permission in SCOPE_PERMISSIONS.items() if permission in held)


def _scope_claim(user: Any) -> str:
    return " ".join(sorted(user_scopes(user)))


# --- Revoked token families ---------------------------------------------------------------------------------


def token_family_revoke(family: str | None, *, reason: str) -> None:
    if not family:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fleet_revoked_token_families (family, reason) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [str(family)[:64], reason[:32]],
        )


def token_family_revoked(family: str | None) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM fleet_revoked_token_families WHERE family = %s", [str(family or "")[:64]])
        return cursor.fetchone() is not None


def token_families_prune() -> int:
    """Forget revocations older than a refresh token lives: no token of those families can still be valid."""
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM fleet_revoked_token_families WHERE revoked_at < now() - make_interval(secs => %s)",
            [settings.JWT_REFRESH_LIFETIME_S],
        )
        forgotten: int = cursor.rowcount
        return forgotten


def auth_tables_prune() -> dict[str, int]:
    """Daily upkeep, for a cron task: expired outstanding tokens (and their blacklist rows, which cascade: what
    `manage.py flushexpiredtokens` does), revocations past any token's life, rate-limit counters of past windows."""
    _, deleted = OutstandingToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return {
        "tokens": deleted.get(OutstandingToken._meta.label, 0),
        "families": token_families_prune(),
        "rate_limits": rate_limits_prune(),
    }


# --- Token endpoints (DRF + simplejwt) ----------------------------------------------------------------------


class TokenObtainSerializer(TokenObtainPairSerializer):
    @classmethod
    def get_token(cls, user: Any) -> Token:
        token = super().get_token(user)
        token[SCOPE_CLAIM] = _scope_claim(user)
        token[FAMILY_CLAIM] = uuid.uuid4().hex
        return token


def _verified_refresh(raw: str) -> RefreshToken:
    """A refresh token whose signature, expiry and type are checked (blacklisted or not: the caller decides)."""
    try:
        token_backend.decode(raw, verify=True)  # type: ignore[arg-type]  # simplejwt annotates the encoded str as Token
    except TokenBackendExpiredToken as exc:
        raise ExpiredTokenError("Token is expired") from exc
    except TokenBackendError as exc:
        raise TokenError("Token is invalid") from exc
    token = RefreshToken(raw, verify=False)  # type: ignore[arg-type]  # simplejwt annotates the encoded str as Token
    token.verify_token_type()
    if not token.get(FAMILY_CLAIM):
        raise TokenError("Token is invalid")
    return token


class TokenRefreshSerializer(serializers.Serializer[None]):
    refresh = serializers.CharField(write_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = _verified_refresh(attrs["refresh"])
        family = refresh[FAMILY_CLAIM]
        # Blacklist before anything else, atomically (a unique row): of two refreshes of one token, one wins.
        created: bool
        _, created = refresh.blacklist()  # type: ignore[misc]  # simplejwt says a row; it returns get_or_create's pair
        if not created:
            token_family_revoke(family, reason="reused")
            raise TokenError("Token is blacklisted: it was used before, so its login is revoked; log in again")
        if token_family_revoked(family):
            raise TokenError("Token is revoked; log in again")
        user = get_user_model().objects.filter(pk=refresh.get(api_settings.USER_ID_CLAIM)).first()
        if user is None or not user.is_active:
            raise AuthenticationFailed("No active account found for the given token.", "no_active_account")
        refresh[SCOPE_CLAIM] = _scope_claim(user)
        refresh.set_jti()
        refresh.set_exp()
        refresh.set_iat()
        refresh.outstand()
        return {"access": str(refresh.access_token), "refresh": str(refresh)}


class TokenRevokeSerializer(serializers.Serializer[None]):
    refresh = serializers.CharField(write_only=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        refresh = _verified_refresh(attrs["refresh"])
        refresh.blacklist()
        token_family_revoke(refresh[FAMILY_CLAIM], reason="revoked")
        return {}


class TokenObtainView(TokenObtainPairView):
    """POST /api/auth/token, throttled per username + client IP (429 with Retry-After)."""

    def post(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        username = str(request.data.get("username", "")) if hasattr(request.data, "get") else ""
        ip = client_ip(request)
        wait = login_lock_wait(username, ip)
        if wait:
            return too_many_requests(wait, f"too many failed logins for this username; retry in {wait} s")
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            login_succeeded(username, ip)
        return response


class TokenRotateView(TokenRefreshView):
    serializer_class = TokenRefreshSerializer


class TokenRevokeView(TokenBlacklistView):
    serializer_class = TokenRevokeSerializer


# --- Login throttling ---------------------------------------------------------------------------------------


def _login_key(username: str, ip: str) -> str:
    # Raw client input: NUL cannot go into PostgreSQL text (the lock is checked before the form is validated).
    return f"login:{username.replace(chr(0), '').casefold()[:150]}:{ip}"


def login_succeeded(username: str, ip: str) -> None:
    """A successful login clears the failures counted against `username` from `ip`."""
    counter_reset(_login_key(username, ip))


def login_lock_wait(username: str, ip: str) -> int | None:
    """Seconds until `username` may try again from `ip`, or None: LOGIN_FAILURES_MAX failures per window."""
    failures, left = counter_get(_login_key(username, ip), period_s=settings.LOGIN_FAILURES_WINDOW_S)
    return left if failures >= settings.LOGIN_FAILURES_MAX else None


@receiver(user_login_failed, dispatch_uid="fleet.auth.login_failure_count")
def login_failure_count(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    """Every failed authenticate() with a request (the token endpoint, the admin login) counts one failure."""
    if request is None:
        return
    username = str(credentials.get(get_user_model().USERNAME_FIELD, ""))
    counter_hit(_login_key(username, client_ip(request)), period_s=settings.LOGIN_FAILURES_WINDOW_S)


def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """The admin's login view, throttled like the token endpoint (mounted before admin/ in fleet/urls.py)."""
    if request.method == "POST":
        username, ip = request.POST.get("username", ""), client_ip(request)
        wait = login_lock_wait(username, ip)
        if wait:
            response = HttpResponse(
                f"Too many failed logins for this username. Try again in {wait} seconds.\n",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(wait)
            return response
    response = admin.site.login(request, extra_context)
    if request.method == "POST" and response.status_code == 302:
        login_succeeded(request.POST.get("username", ""), client_ip(request))
    return response


# --- The ninja side: bearer or session, then the scope --------------------------------------------------------


class AuthDenied(HttpError):
    """A refusal with a machine-readable `code` (fleet/api.py renders it as {"detail", "code"})."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(status_code, message)
        self.code = code


def _bearer_principal(raw: str) -> Principal:
    try:
        access = AccessToken(raw)  # type: ignore[arg-type]  # simplejwt annotates the encoded str as Token
    except ExpiredTokenError as exc:
        raise AuthDenied(401, "token_expired", "access token expired: refresh it at /api/auth/token/refresh") from exc
    except TokenError as exc:
        raise AuthDenied(401, "token_invalid", "access token invalid") from exc
    family = access.get(FAMILY_CLAIM)
    user_id = access.get(api_settings.USER_ID_CLAIM)
    if not family or user_id is None:
        raise AuthDenied(401, "token_invalid", "access token invalid")
    revoked = RawSQL("EXISTS (SELECT 1 FROM fleet_revoked_token_families WHERE family = %s)", [str(family)[:64]])
    user = get_user_model().objects.filter(pk=user_id).annotate(family_revoked=revoked).first()
    if user is None or not user.is_active:
        raise AuthDenied(401, "user_inactive", "the token's user is unknown or inactive")
    if user.family_revoked:
        raise AuthDenied(401, "token_revoked", "token revoked: log in again")
    return Principal(user=user, scopes=frozenset(str(access.get(SCOPE_CLAIM, "")).split()) & SCOPES, via="token")


class _ScopeRequirement:
    scopes: frozenset[str]
    declared: bool

    def _grant(self, principal: Principal) -> Principal:
        if self.scopes.isdisjoint(principal.scopes):
            needed = " or ".join(sorted(self.scopes))
            held = " ".join(sorted(principal.scopes)) or "no scope"
            raise AuthDenied(
                403, "insufficient_scope", f"this operation needs {needed}; the {principal.via} has {held}"
            )
        return principal


class BearerJWT(_ScopeRequirement, HttpBearer):
    """An access token from POST /api/auth/token, in `Authorization: Bearer <token>`."""

    openapi_bearerFormat = "JWT"

    def __init__(self, scopes: frozenset[str], *, declared: bool) -> None:
        self.scopes, self.declared = scopes, declared
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        # A bad token is refused outright (401), never passed on to the session check.
        return self._grant(_bearer_principal(token))


class DjangoSession(_ScopeRequirement, APIKeyCookie):
    """A logged-in Django session (the server-rendered pages); unsafe methods need the X-CSRFToken header."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, scopes: frozenset[str], *, declared: bool) -> None:
        self.scopes, self.declared = scopes, declared
        super().__init__(csrf=False)  # checked below, once we know there is a session to protect

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        exempt = getattr(request, "_ninja_csrf_exempt", False)
        if request.method not in SAFE_METHODS and not exempt and check_csrf(request) is not None:
            raise AuthDenied(403, "csrf_failed", "CSRF check failed: with a session, send the X-CSRFToken header")
        return self._grant(Principal(user=user, scopes=user_scopes(user), via="session"))


def require(*scopes: str, declared: bool = True) -> list[BearerJWT | DjangoSession]:
    """The `auth=` of a router mount or an operation: a bearer token or a session holding any one of `scopes`."""
    unknown = set(scopes) - SCOPES
    if not scopes or unknown:
        raise ValueError(f"require() takes one or more of {sorted(SCOPES)}; got {list(scopes)}")
    needed = frozenset(scopes)
    return [BearerJWT(needed, declared=declared), DjangoSession(needed, declared=declared)]


# The API's default for an operation that declares nothing: admin:fleet only, and flagged by the scope test.
UNDECLARED = require(ADMIN_FLEET, declared=False)
