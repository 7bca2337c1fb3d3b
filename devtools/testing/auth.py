"""Test helpers for the API: users holding scopes, tokens (valid, expired, revoked), auth headers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import RefreshToken

from fleet.auth import TokenObtainSerializer
from fleet.groups import scope_permission

PASSWORD = "correct horse battery staple 7"  # noqa: S105  (test users only)


def scope_group(scope: str) -> Group:
    """The group named after `scope`, holding the scope's permission (fleet/groups.py)."""
    # get_or_create: a transactional test's flush empties auth_group, migration data included (post_migrate
    # restores it, but a test may have changed it).
    group = Group.objects.get_or_create(name=scope)[0]
    app_label, codename = scope_permission(scope).split(".")
    group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


def make_api_user(username: str, *scopes: str, superuser: bool = False, active: bool = True) -> Any:
    """A user in the scope groups named by `scopes` (fleet/groups.py)."""
    user = get_user_model().objects.create_user(
        username=username, password=PASSWORD, is_superuser=superuser, is_staff=superuser, is_active=active
    )
    user.groups.add(*(scope_group(scope) for scope in scopes))
    return user


def token_pair(client: Client, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/api/auth/token", {"username": username, "password": password}, "application/json")
    assert response.status_code == 200, response.content
    return response.json()


def access_for(user: Any, *, expired: bool = False) -> str:
    """An access token minted as the token endpoint would (without the HTTP round trip)."""
    refresh = TokenObtainSerializer.get_token(user)
    assert isinstance(refresh, RefreshToken)  # the serializer's token class (simplejwt declares the base Token)
    access = refresh.access_token
    if expired:
        access.set_exp(from_time=timezone.now() - timedelta(hours=1))
    return str(access)


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
