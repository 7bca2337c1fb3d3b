"""Tokens (issue, refresh, rotation, blacklist, revocation), scopes from groups, sessions with CSRF, login
throttling on the token endpoint and the admin login."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from devtools.testing.auth import PASSWORD, access_for, bearer, make_api_user, scope_group, token_pair
from fleet import ratelimit
from fleet.auth import ADMIN_FLEET, READ_FLEET, SCOPES, WRITE_OPS, auth_tables_prune, user_scopes

pytestmark = pytest.mark.django_db

DEVICES = "/api/fleet/devices"


def refresh(client: Client, token: str):
    return client.post("/api/auth/token/refresh", {"refresh": token}, "application/json")


def revoke(client: Client, token: str):
    return client.post("/api/auth/token/revoke", {"refresh": token}, "application/json")


# --- scopes from groups -----------------------------------------------------------------------------------------


def test_it_creates_one_group_per_scope_holding_its_permission_in_a_migration():
    migration = importlib.import_module("fleet.migrations.0003_role_groups")
    Group.objects.filter(name__in=SCOPES).delete()  # a transactional test's flush may have done so already
    migration.create_groups(django_apps, None)
    migration.create_groups(django_apps, None)  # idempotent
    groups = Group.objects.filter(name__in=SCOPES).prefetch_related("permissions")
    assert {g.name: {p.codename for p in g.permissions.all()} for g in groups} == {
        scope: {"scope_" + scope.replace(":", "_")} for scope in SCOPES
    }


def test_it_derives_scopes_from_permissions_all_for_superusers_none_when_inactive():
    assert user_scopes(make_api_user("reader", READ_FLEET)) == {READ_FLEET}
    assert user_scopes(make_api_user("clerk", READ_FLEET, WRITE_OPS)) == {READ_FLEET, WRITE_OPS}
    assert user_scopes(make_api_user("nobody")) == set()
    assert user_scopes(make_api_user("root", superuser=True)) == SCOPES
    assert user_scopes(make_api_user("gone", READ_FLEET, active=False)) == set()
    direct = make_api_user("direct")
    direct.user_permissions.add(Permission.objects.get(codename="scope_admin_fleet"))
    assert user_scopes(direct) == {ADMIN_FLEET}


def test_it_grants_no_scope_for_a_group_name_alone():
    user = make_api_user("reader", READ_FLEET)
    user.groups.add(Group.objects.create(name="read:everything"))
    assert user_scopes(user) == {READ_FLEET}
    bare = make_api_user("bare")
    group = Group.objects.get(name=WRITE_OPS)
    group.permissions.clear()  # a group named like a scope but without its permission grants nothing
    bare.groups.add(group)
    assert user_scopes(bare) == set()


# --- issue ---------------------------------------------------------------------------------------------------------


def test_it_issues_a_short_lived_access_token_with_the_scope_claim(client):
    make_api_user("clerk", READ_FLEET, WRITE_OPS)
    pair = token_pair(client, "clerk")
    access = AccessToken(pair["access"])  # type: ignore[arg-type]  # simplejwt annotates the encoded str as Token
    refresh_token = RefreshToken(pair["refresh"])  # type: ignore[arg-type]  # likewise
    assert access["scope"] == "read:fleet write:ops"
    assert access["exp"] - access["iat"] == 300
    assert refresh_token["exp"] - refresh_token["iat"] == 86400
    assert access["sid"] == refresh_token["sid"]


def test_it_refuses_wrong_credentials_with_401(client):
    make_api_user("clerk", READ_FLEET)
    response = client.post("/api/auth/token", {"username": "clerk", "password": "nope"}, "application/json")
    assert response.status_code == 401
    assert "access" not in response.json()


def test_it_refuses_an_inactive_user(client):
    make_api_user("gone", READ_FLEET, active=False)
    response = client.post("/api/auth/token", {"username": "gone", "password": PASSWORD}, "application/json")
    assert response.status_code == 401


def test_it_accepts_the_access_token_on_the_api(client):
    make_api_user("reader", READ_FLEET)
    response = client.get(DEVICES, **bearer(token_pair(client, "reader")["access"]))
    assert response.status_code == 200


# --- refresh, rotation, blacklist ---------------------------------------------------------------------------------


def test_it_rotates_the_refresh_token_and_blacklists_the_old_one(client):
    make_api_user("reader", READ_FLEET)
    first = token_pair(client, "reader")
    response = refresh(client, first["refresh"])
    assert response.status_code == 200
    second = response.json()
    assert second["refresh"] != first["refresh"]
    old = RefreshToken(first["refresh"], verify=False)  # type: ignore[arg-type]  # simplejwt: the encoded str as Token
    assert RefreshToken(second["refresh"])["sid"] == old["sid"]
    assert BlacklistedToken.objects.filter(token__jti=old["jti"]).exists()
    assert client.get(DEVICES, **bearer(second["access"])).status_code == 200


def test_it_treats_a_reused_refresh_token_as_theft_and_revokes_the_whole_login(client):
    make_api_user("reader", READ_FLEET)
    first = token_pair(client, "reader")
    second = refresh(client, first["refresh"]).json()
    replay = refresh(client, first["refresh"])
    assert replay.status_code == 401
    assert "blacklisted" in replay.json()["detail"]
    # The family is revoked: the rotated refresh token and its access token die with it.
    assert refresh(client, second["refresh"]).status_code == 401
    denied = client.get(DEVICES, **bearer(second["access"]))
    assert (denied.status_code, denied.json()["code"]) == (401, "token_revoked")


def test_it_recomputes_scopes_on_refresh(client):
    user = make_api_user("reader", READ_FLEET)
    pair = token_pair(client, "reader")
    user.groups.set([scope_group(WRITE_OPS)])
    renewed = refresh(client, pair["refresh"]).json()
    assert AccessToken(renewed["access"])["scope"] == "write:ops"
    assert client.get(DEVICES, **bearer(renewed["access"])).status_code == 403


def test_it_refuses_to_refresh_for_a_deactivated_user(client):
    user = make_api_user("reader", READ_FLEET)
    pair = token_pair(client, "reader")
    user.is_active = False
    user.save()
    assert refresh(client, pair["refresh"]).status_code == 401


def test_it_refuses_an_access_token_as_a_refresh_token(client):
    make_api_user("reader", READ_FLEET)
    assert refresh(client, token_pair(client, "reader")["access"]).status_code == 401


def test_it_refuses_a_forged_refresh_token(client):
    make_api_user("reader", READ_FLEET)
    header, payload, _ = token_pair(client, "reader")["refresh"].split(".")
    assert refresh(client, f"{header}.{payload}.bm90LXRoZS1zaWduYXR1cmU").status_code == 401


# --- revocation -------------------------------------------------------------------------------------------------


def test_it_revokes_a_refresh_token_and_every_access_token_of_its_login(client):
    make_api_user("reader", READ_FLEET)
    pair = token_pair(client, "reader")
    other = token_pair(client, "reader")  # a second login of the same user is not touched
    assert revoke(client, pair["refresh"]).status_code == 200
    assert refresh(client, pair["refresh"]).status_code == 401
    denied = client.get(DEVICES, **bearer(pair["access"]))
    assert denied.status_code == 401
    assert denied.json() == {"detail": "token revoked: log in again", "code": "token_revoked"}
    assert client.get(DEVICES, **bearer(other["access"])).status_code == 200


def test_it_refuses_to_revoke_garbage(client):
    assert revoke(client, "not-a-token").status_code == 401


def test_it_refuses_an_expired_access_token_saying_so(client):
    user = make_api_user("reader", READ_FLEET)
    response = client.get(DEVICES, **bearer(access_for(user, expired=True)))
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_an_access_token_of_a_deactivated_user_at_once(client):
    user = make_api_user("reader", READ_FLEET)
    access = access_for(user)
    user.is_active = False
    user.save()
    assert client.get(DEVICES, **bearer(access)).json()["code"] == "user_inactive"


def test_it_refuses_a_wrong_scope_with_403_naming_the_scope(client):
    user = make_api_user("clerk", WRITE_OPS)
    response = client.get(DEVICES, **bearer(access_for(user)))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert "read:fleet" in response.json()["detail"]


def test_it_does_not_fall_back_to_the_session_when_the_bearer_token_is_bad(client):
    make_api_user("reader", READ_FLEET)
    client.login(username="reader", password=PASSWORD)
    assert client.get(DEVICES, **bearer("garbage")).status_code == 401


# --- sessions ---------------------------------------------------------------------------------------------------


def test_it_accepts_a_session_with_the_same_scopes():
    client = Client(enforce_csrf_checks=True)
    make_api_user("reader", READ_FLEET)
    make_api_user("clerk", WRITE_OPS)
    client.login(username="reader", password=PASSWORD)
    assert client.get(DEVICES).status_code == 200
    client.login(username="clerk", password=PASSWORD)
    assert client.get(DEVICES).status_code == 403


def test_it_enforces_csrf_on_session_writes_and_accepts_the_token():
    client = Client(enforce_csrf_checks=True)
    make_api_user("admin-clerk", ADMIN_FLEET)
    client.login(username="admin-clerk", password=PASSWORD)
    url = "/api/fleet/devices/861234567890123/lifecycle"
    body = {"to": "active", "reason": "installed"}
    refused = client.post(url, body, "application/json")
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    client.get("/admin/login/")  # any page that sets the csrftoken cookie
    csrf = client.cookies["csrftoken"].value
    accepted = client.post(url, body, "application/json", HTTP_X_CSRFTOKEN=csrf)
    assert accepted.status_code == 404  # past auth and CSRF: the device does not exist


# --- login throttling -------------------------------------------------------------------------------------------


@override_settings(LOGIN_FAILURES_MAX=3, LOGIN_FAILURES_WINDOW_S=900)
def test_it_throttles_the_token_endpoint_per_username_and_ip(client, monkeypatch):
    monkeypatch.setattr(ratelimit, "clock", lambda: 9000.0 + 100)
    make_api_user("reader", READ_FLEET)

    def attempt(password: str, ip: str = "10.0.0.1"):
        body = {"username": "reader", "password": password}
        return client.post("/api/auth/token", body, "application/json", REMOTE_ADDR=ip)

    assert [attempt("wrong").status_code for _ in range(3)] == [401, 401, 401]
    locked = attempt(PASSWORD)  # even the right password, until the window ends
    assert locked.status_code == 429
    assert locked["Retry-After"] == "800"
    assert attempt(PASSWORD, ip="10.0.0.2").status_code == 200  # another address is another key
    monkeypatch.setattr(ratelimit, "clock", lambda: 9900.0 + 1)
    assert attempt(PASSWORD).status_code == 200


@override_settings(LOGIN_FAILURES_MAX=2)
def test_it_resets_the_failure_count_after_a_successful_login(client):
    make_api_user("reader", READ_FLEET)
    body = {"username": "reader", "password": "wrong"}
    client.post("/api/auth/token", body, "application/json")
    token_pair(client, "reader")
    client.post("/api/auth/token", body, "application/json")
    assert client.post("/api/auth/token", body, "application/json").status_code == 401


@override_settings(LOGIN_FAILURES_MAX=2)
def test_it_throttles_the_admin_login(client):
    make_api_user("root", superuser=True)
    form = {"username": "root", "password": "wrong", "next": "/admin/"}
    assert client.post("/admin/login/", form).status_code == 200  # the form again, with an error
    assert client.post("/admin/login/", form).status_code == 200
    locked = client.post("/admin/login/", {**form, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) > 0


def test_it_still_logs_into_the_admin(client):
    make_api_user("root", superuser=True)
    response = client.post("/admin/login/", {"username": "root", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_it_answers_a_nul_in_the_username_without_an_error(client):
    body = {"username": "a\x00b", "password": "x"}
    assert client.post("/api/auth/token", body, "application/json").status_code in (400, 401)


# --- upkeep -----------------------------------------------------------------------------------------------------


def test_it_prunes_expired_tokens_and_old_revocations(client):
    make_api_user("reader", READ_FLEET)
    pair = token_pair(client, "reader")
    revoke(client, pair["refresh"])
    assert auth_tables_prune()["tokens"] == 0  # nothing has expired yet
    OutstandingToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE fleet_revoked_token_families SET revoked_at = now() - interval '2 days'")
    pruned = auth_tables_prune()
    assert (pruned["tokens"], pruned["families"]) == (1, 1)
    assert not BlacklistedToken.objects.exists()
