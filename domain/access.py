"""API scopes as the layers below the project ask about them.

The scopes are the project's (fleet/auth.py: a user holds a scope through a permission, carried by groups); the
admin of a lower layer must ask the same question the API asks — a lifecycle move in the admin needs admin:fleet,
as `POST /api/fleet/devices/{imei}/lifecycle` does — but cannot import the project. So the question is asked here,
and the project registers the answer when it starts (fleet/apps.py). Until it does, only an active superuser holds
a scope: a lower layer used on its own is closed, not open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

READ_FLEET = "read:fleet"
WRITE_OPS = "write:ops"
ADMIN_FLEET = "admin:fleet"
SCOPES = frozenset({READ_FLEET, WRITE_OPS, ADMIN_FLEET})

ScopeCheck = Callable[[Any, str], bool]


def _superuser_only(user: Any, scope: str) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


_check: ScopeCheck = _superuser_only


def scope_check_register(check: ScopeCheck) -> None:
    """The project's answer to "does this user hold this scope?" (fleet.auth.user_scopes)."""
    global _check
    _check = check


def user_holds_scope(user: Any, scope: str) -> bool:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; scopes: {sorted(SCOPES)}")
    return _check(user, scope)
