"""The auth matrix: no URL of the project and no API operation returns fleet data without the right scope.

Every URL pattern (walked from the root resolver) falls in exactly one class below, or the test fails: a new
URL must be placed in the matrix before it ships. Every OpenAPI operation declares a scope and refuses: no
credentials, a garbage token, an expired token, a revoked token, a token or session without the scope, a
session without CSRF on writes; and answers (not 401/403) with the right scope by token and by session.

Documented exceptions, each with its own proof here: /health/<role> (role status, no fleet data), /push/...
(each source's own proof: events/tests/test_gateway.py, and below), /api/openapi.json and /api/docs (the
contracts, no data), the token endpoints, the admin login page and the pages' login and logout (they are how one
logs in). The pages (fleet/pages.py) hold read:fleet like the API: anonymous → the login page, no scope → 403.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from ninja import NinjaAPI, Router

from devtools.testing.auth import PASSWORD, access_for, bearer, make_api_user, token_pair
from domain.models import Account, Device, Vehicle
from events.models import RawEvent
from fleet.api import FleetAPI, api
from fleet.auth import SCOPES, UNDECLARED, WRITE_OPS

pytestmark = pytest.mark.django_db

IMEI = "861234567890123"
PLATE = "KDA123Z"
UNSAFE = {"post", "put", "patch", "delete"}
PUBLIC_DOCS = {"/api/openapi.json", "/api/docs"}
TOKEN_ENDPOINTS = {"/api/auth/token", "/api/auth/token/refresh", "/api/auth/token/revoke"}
ADMIN_LOGIN_PAGES = {"/admin/login/", "/admin/logout/"}
PAGES = {"/", "/live/", "/history/", "/dispatch/", "/routes/", "/reports/"}
PAGE_LOGIN = {"/login/", "/logout/"}


@pytest.fixture
def device(db: Any) -> Device:
    account = Account.objects.create(name="Matrix account")
    vehicle = Vehicle.objects.create(plate=PLATE)
    return Device.objects.create(imei=IMEI, account=account, vehicle=vehicle)


def leaks(response: Any) -> bool:
    body = response.content.decode("utf-8", "replace")
    return IMEI in body or PLATE in body


# --- the URL walk -------------------------------------------------------------------------------------------------


def url_patterns(resolver: URLResolver | None = None, prefix: str = "") -> Iterator[str]:
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            yield from url_patterns(pattern, prefix + str(pattern.pattern))
        else:
            assert isinstance(pattern, URLPattern)
            yield prefix + str(pattern.pattern)


def concrete(pattern: str) -> str:
    """A path that the pattern matches: converters and the admin's regex groups filled with samples."""
    path = re.sub(r"<(?:int:)?[a-z_]*id>", "1", pattern)
    path = re.sub(r"<[^>]+>", "sample", path)
    path = path.replace("^(?P<app_label>", "").replace(")/$", "/")
    path = re.sub(r"\|[^/]*", "", path)  # auth|token_blacklist|... → auth
    path = path.replace("(?P<url>.*)$", "no-such-page/")
    return "/" + path.lstrip("^")


def openapi_path(pattern: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", pattern)


def openapi_operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = api.get_openapi_schema()
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]


def classify(pattern: str, api_paths: set[str]) -> str:
    path = "/" + pattern
    if openapi_path(pattern) in api_paths:
        return "api operation"
    if path in TOKEN_ENDPOINTS:
        return "token endpoint"
    if path in PUBLIC_DOCS:
        return "public docs"
    if path == "/api/":
        return "api root"
    if path in ADMIN_LOGIN_PAGES:
        return "admin login"
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/health/"):
        return "health"
    if path.startswith("/push/"):
        return "push"
    if path in PAGES:
        return "page"
    if path in PAGE_LOGIN:
        return "page login"
    if path.startswith("/tiles/"):
        return "tiles"
    return "unclassified"


def test_it_places_every_url_of_the_project_in_the_matrix():
    api_paths = {path for path, _, _ in openapi_operations()}
    classes = {pattern: classify(pattern, api_paths) for pattern in url_patterns()}
    assert not [p for p, c in classes.items() if c == "unclassified"], "add the new URL to the auth matrix"
    # The walk sees what it should: every operation of the API is a URL pattern too.
    assert {openapi_path(p) for p, c in classes.items() if c == "api operation"} == api_paths
    assert {"admin", "health", "push", "token endpoint", "public docs", "page", "page login", "tiles"} <= set(
        classes.values()
    )


def test_it_sends_every_admin_url_to_the_login_page(device):
    client = Client()
    make_api_user("reader", *SCOPES)  # scopes are no key to the admin: it wants a staff login
    other = Client()
    other.login(username="reader", password=PASSWORD)
    admin_urls = [concrete(p) for p in url_patterns() if classify(p, set()) == "admin"]
    assert len(admin_urls) > 20
    for url in admin_urls:
        for who in (client, other):
            response = who.get(url)
            assert response.status_code == 302, url
            assert response["Location"].startswith("/admin/login/"), url


def test_it_shows_the_admin_login_page_without_fleet_data(client, device):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert not leaks(response)
    logout = client.get("/admin/logout/")  # a POST for the logged in; anyone else is sent away
    assert logout.status_code == 302
    assert not leaks(logout)


def test_it_shows_health_without_fleet_data(client, device):
    for role in ("gateway", "worker", "cron"):
        response = client.get(f"/health/{role}")
        assert response.status_code in (200, 503)
        assert set(response.json()) <= {
            "role", "checked_at", "ok", "database", "error", "checks",
            "heartbeat_age_s", "heartbeat_max_age_s", "listen_connections",
        }  # fmt: skip
        assert not leaks(response)


def test_it_shows_the_pages_to_read_fleet_only(device):
    pages = [concrete(p) for p in url_patterns() if classify(p, set()) == "page"]
    assert len(pages) == len(PAGES)
    make_api_user("no-scope")
    make_api_user("writer", *(SCOPES - {"read:fleet"}))
    make_api_user("page-reader", "read:fleet")
    for url in pages:
        anonymous = Client().get(url)
        assert anonymous.status_code == 302, url
        assert anonymous["Location"].startswith("/login/" if url != "/" else "/live/"), url
        for username in ("no-scope", "writer"):
            who = Client()
            who.login(username=username, password=PASSWORD)
            response = who.get(url, follow=True)
            assert response.status_code == 403, (url, username)
            assert not leaks(response), (url, username)
        reader = Client()
        reader.login(username="page-reader", password=PASSWORD)
        assert reader.get(url, follow=True).status_code == 200, url


def test_it_serves_tiles_to_read_fleet_only(device):
    """Tiles (the road graph for the pages' maps) answer like the API: 401 without credentials or with a bad token,
    403 without read:fleet (token or session), 200 with it."""
    tiles = [concrete(p).replace("sample", "0") for p in url_patterns() if classify(p, set()) == "tiles"]
    assert tiles
    make_api_user("tile-writer", *(SCOPES - {"read:fleet"}))
    make_api_user("tile-reader", "read:fleet")
    for n, url in enumerate(tiles):
        assert_refused(Client().get(url), 401, "not_authenticated", url)
        assert_refused(request(Client(), "get", url, **bearer("garbage")), 401, "token_invalid", url)
        writer = Client()
        writer.login(username="tile-writer", password=PASSWORD)
        assert_refused(writer.get(url), 403, "insufficient_scope", f"{url}, session")
        writer_token = bearer(access_for(make_api_user(f"tile-w-{n}", WRITE_OPS)))
        assert_refused(request(Client(), "get", url, **writer_token), 403, "insufficient_scope", url)
        reader = Client()
        reader.login(username="tile-reader", password=PASSWORD)
        assert reader.get(url).status_code == 200, url
        reader_token = bearer(access_for(make_api_user(f"tile-r-{n}", "read:fleet")))
        assert request(Client(), "get", url, **reader_token).status_code == 200, url


def test_it_shows_the_pages_login_without_fleet_data(client, device):
    response = client.get("/login/")
    assert response.status_code == 200
    assert not leaks(response)
    assert client.get("/logout/").status_code == 405  # a POST, with the CSRF token
    assert client.post("/logout/").status_code == 302


def test_it_stores_no_push_without_its_sources_proof(client, device):
    push_urls = [concrete(p) for p in url_patterns() if classify(p, set()) == "push"]
    assert push_urls
    for url in push_urls:
        assert client.get(url).status_code == 405, url
        response = client.post(url, "token=guess&data_list=[]", "application/x-www-form-urlencoded")
        assert response.status_code == 401, url
        assert not leaks(response)
    assert not RawEvent.objects.exists()


def test_it_serves_the_public_docs_without_fleet_data(client, device):
    for url in PUBLIC_DOCS:
        response = client.get(url)
        assert response.status_code == 200, url
        assert not leaks(response)


def test_it_gives_no_tokens_without_credentials(client, device):
    for url in TOKEN_ENDPOINTS:
        assert client.get(url).status_code == 405, url
        response = client.post(url, {}, "application/json")
        assert response.status_code == 400, url
        assert b"eyJ" not in response.content  # no JWT in the answer


def test_it_has_no_api_root_page(client):
    assert client.get("/api/").status_code == 404


# --- every OpenAPI operation declares a scope ---------------------------------------------------------------------


def declared_scopes(op: dict[str, Any]) -> set[str]:
    requirements = op.get("security") or []
    scopes = [set(scopes) for requirement in requirements for scopes in requirement.values()]
    return set().union(*scopes) if scopes and all(scopes) else set()


def test_it_declares_a_known_scope_on_every_operation():
    operations = openapi_operations()
    assert operations
    for path, method, op in operations:
        scopes = declared_scopes(op)
        assert scopes, f"{method.upper()} {path} declares no scope: mount it with auth=require(...)"
        assert scopes <= SCOPES, f"{method.upper()} {path}: unknown scopes {scopes - SCOPES}"
        assert {name for r in op["security"] for name in r} == {"BearerJWT", "DjangoSession"}


def test_it_would_catch_an_operation_that_declares_nothing():
    probe = FleetAPI(urls_namespace="probe", auth=UNDECLARED)
    router = Router()

    @router.get("/thing")
    def thing(request: Any) -> dict[str, str]:
        return {}

    probe.add_router("/probe/", router)
    (op,) = probe.get_openapi_schema(path_prefix="/")["paths"]["/probe/thing"].values()
    assert declared_scopes(op) == set()
    assert isinstance(probe, NinjaAPI)


# --- every OpenAPI operation refuses what it should -------------------------------------------------------------


def request(client: Client, method: str, path: str, **extra: Any) -> Any:
    # Path parameters: the device's IMEI, the vehicle's plate, 1 for an id (a missing object: 404 past the auth).
    samples = {"imei": IMEI, "plate": PLATE}
    url = re.sub(r"\{(\w+)\}", lambda m: samples.get(m.group(1), "1"), path)
    if method in UNSAFE:
        return getattr(client, method)(url, json.dumps({}), "application/json", **extra)
    return getattr(client, method)(url, **extra)


def assert_refused(response: Any, status: int, code: str, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.content[:200]!r}"
    assert response.json()["code"] == code, what
    assert not leaks(response), what


def test_it_refuses_every_operation_without_the_right_credentials(device):
    client = Client(enforce_csrf_checks=True)
    for n, (path, method, op) in enumerate(openapi_operations()):
        needed = declared_scopes(op)
        what = f"{method.upper()} {path}"
        assert_refused(request(client, method, path), 401, "not_authenticated", f"{what}, no credentials")
        assert_refused(request(client, method, path, **bearer("garbage")), 401, "token_invalid", what)
        scoped = make_api_user(f"scoped-{n}", *needed)
        expired = bearer(access_for(scoped, expired=True))
        assert_refused(request(client, method, path, **expired), 401, "token_expired", f"{what}, expired")
        pair = token_pair(client, scoped.username)
        assert (
            client.post("/api/auth/token/revoke", {"refresh": pair["refresh"]}, "application/json").status_code == 200
        )
        revoked = bearer(pair["access"])
        assert_refused(request(client, method, path, **revoked), 401, "token_revoked", f"{what}, revoked")
        wrong = make_api_user(f"wrong-{n}", *(SCOPES - needed))
        wrong_token = bearer(access_for(wrong))
        assert_refused(request(client, method, path, **wrong_token), 403, "insufficient_scope", what)
        session = Client()  # CSRF passed: the scope alone is what refuses (CSRF: the next test)
        session.login(username=wrong.username, password=PASSWORD)
        assert_refused(request(session, method, path), 403, "insufficient_scope", f"{what}, session")


def test_it_refuses_session_writes_without_csrf(device):
    writes = [(path, method, op) for path, method, op in openapi_operations() if method in UNSAFE]
    assert writes
    for n, (path, method, op) in enumerate(writes):
        make_api_user(f"csrf-{n}", *declared_scopes(op))
        session = Client(enforce_csrf_checks=True)
        session.login(username=f"csrf-{n}", password=PASSWORD)
        assert_refused(request(session, method, path), 403, "csrf_failed", f"{method.upper()} {path}")


def test_it_lets_the_right_scope_through_by_token_and_by_session(device):
    """The matrix is not vacuous: with the scope, every operation answers past authentication."""
    for n, (path, method, op) in enumerate(openapi_operations()):
        for scope in declared_scopes(op):
            user = make_api_user(f"ok-{scope}-{n}", scope)
            by_token = request(Client(), method, path, **bearer(access_for(user)))
            assert by_token.status_code not in (401, 403), f"{method.upper()} {path} with {scope}"
            session = Client()  # CSRF is checked above; here only the scope matters
            session.login(username=user.username, password=PASSWORD)
            assert request(session, method, path).status_code not in (401, 403)
