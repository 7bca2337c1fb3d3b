"""Factories for domain objects in tests (plain functions: the project has no factory library)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User

from domain.models import Account, AssignedCity, CostCentre, Device, Driver, Vehicle

_seq = itertools.count(1)


def make_account(**kwargs: Any) -> Account:
    return Account.objects.create(**{"name": f"Account {next(_seq)}", **kwargs})


def make_vehicle(plate: str | None = None, **kwargs: Any) -> Vehicle:
    return Vehicle.objects.create(plate=plate or f"KAA{next(_seq):03d}Z", **kwargs)


def make_device(*, account: Account, imei: str | None = None, **kwargs: Any) -> Device:
    return Device.objects.create(imei=imei or f"8612{next(_seq):011d}", account=account, **kwargs)


def make_driver(name: str | None = None, **kwargs: Any) -> Driver:
    return Driver.objects.create(name=name or f"Driver {next(_seq)}", **kwargs)


def make_cost_centre(name: str | None = None) -> CostCentre:
    return CostCentre.objects.create(name=name or f"Cost centre {next(_seq)}")


def make_city(name: str, country_code: str = "KE") -> AssignedCity:
    return AssignedCity.objects.create(name=name, country_code=country_code)


def make_user(username: str = "clerk", *, superuser: bool = False, perms: tuple[str, ...] = ()) -> User:
    """A staff user; `perms` as "app.codename"."""
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True, is_superuser=superuser)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def at(day: int, hour: int = 0) -> datetime:
    """A fixed UTC instant in March 2025, for readable assignment periods."""
    return datetime(2025, 3, day, hour, tzinfo=UTC)
