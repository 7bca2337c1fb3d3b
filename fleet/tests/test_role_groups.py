"""One permission model: each role group carries the API scopes and the Django model permissions that match, and a
member of each gets exactly that — over every API operation and every admin page."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, RequestFactory
from django.urls import reverse

from devtools.testing.auth import PASSWORD, access_for, bearer
from domain.models import Account, Device, Lifecycle, Vehicle
from fleet.auth import ADMIN_FLEET, READ_FLEET, WRITE_OPS, user_scopes
from fleet.groups import FLEET_ADMIN, GROUPS, ROLE_GROUPS, group_permissions, groups_ensure
from fleet.tests.test_auth_matrix import declared_scopes, openapi_operations, request

pytestmark = pytest.mark.django_db

IMEI = "861234567890123"


@pytest.fixture
def device(db: Any) -> Device:
    groups_ensure(apps=django_apps)  # a transactional test's flush may have emptied them (post_migrate refills)
    return Device.objects.create(
        imei=IMEI, account=Account.objects.create(name="Roles"), vehicle=Vehicle.objects.create(plate="KDA1A")
    )


def member(group: str) -> Any:
    user = get_user_model().objects.create_user(
        username=group.lower().replace(" ", "-"), password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=group))
    return user


def test_it_declares_only_permissions_that_exist_and_keeps_them_after_a_migrate():
    Group.objects.filter(name__in=ROLE_GROUPS).delete()
    assert groups_ensure(apps=django_apps)[FLEET_ADMIN] > 0  # strict: an unknown permission would raise
    assert set(groups_ensure(apps=django_apps).values()) == {0}  # idempotent
    for name, spec in GROUPS.items():
        held = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}
        assert held == set(group_permissions(spec)), name


@pytest.mark.parametrize(
    ("group", "scopes"),
    [
        ("Ops clerk", {READ_FLEET, WRITE_OPS}),
        ("Dispatcher", {READ_FLEET, WRITE_OPS}),
        ("Manager", {READ_FLEET, WRITE_OPS}),
        ("Fleet admin", {READ_FLEET, WRITE_OPS, ADMIN_FLEET}),
    ],
)
def test_it_gives_each_group_its_scopes_on_every_api_operation(device, group, scopes):
    user = member(group)
    assert user_scopes(user) == scopes
    token = bearer(access_for(user))
    session = Client()
    session.login(username=user.username, password=PASSWORD)
    for path, method, op in openapi_operations():
        allowed = bool(declared_scopes(op) & scopes)
        for how, response in (
            ("token", request(Client(), method, path, **token)),
            ("session", request(session, method, path)),
        ):
            what = f"{group} {method.upper()} {path} by {how}"
            if allowed:
                assert response.status_code not in (401, 403), what
            else:
                assert (response.status_code, response.json()["code"]) == (403, "insufficient_scope"), what


def _admin_urls() -> list[tuple[str, str, str]]:
    """(model label "app.model", changelist URL, add URL) of every model the admin registers."""
    return [
        (
            f"{model._meta.app_label}.{model._meta.model_name}",
            reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"),
            reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add"),
        )
        for model in admin.site._registry
    ]


@pytest.mark.parametrize("group", ROLE_GROUPS)
def test_it_gives_each_group_its_model_permissions_on_every_admin_page(device, group):
    declared = set(GROUPS[group].permissions)
    client = Client()
    client.force_login(member(group))
    root = RequestFactory().get("/")
    root.user = get_user_model().objects.create_superuser("root", password=PASSWORD)  # what an admin allows at all
    shown = []
    for label, changelist, add in _admin_urls():
        app, model = label.split(".")
        model_admin = admin.site._registry[django_apps.get_model(app, model)]
        may_view = f"{app}.view_{model}" in declared or f"{app}.change_{model}" in declared
        assert client.get(changelist).status_code == (200 if may_view else 403), f"{group}: {changelist}"
        may_add = f"{app}.add_{model}" in declared and model_admin.has_add_permission(root)
        assert client.get(add).status_code == (200 if may_add else 403), f"{group}: {add}"
        if may_view:
            shown.append(label)
    assert shown, group
    assert client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize("group", ROLE_GROUPS)
def test_it_lets_only_admin_fleet_move_a_lifecycle_in_the_admin(device, group):
    client = Client()
    client.force_login(member(group))
    devices = reverse("admin:domain_device_changelist")
    form = {"action": "activate", ACTION_CHECKBOX_NAME: [device.pk], "confirm": "yes", "reason": "OPS-1"}
    client.post(devices, form)
    device.refresh_from_db()
    if ADMIN_FLEET in GROUPS[group].scopes:
        assert device.lifecycle == Lifecycle.ACTIVE
    else:
        assert device.lifecycle == Lifecycle.PROVISIONED
        page = client.get(devices)
        if page.status_code == 200:  # a group that may see devices is not offered the lifecycle actions
            actions = page.context["action_form"]
            assert actions is None or "activate" not in dict(actions.fields["action"].choices)
