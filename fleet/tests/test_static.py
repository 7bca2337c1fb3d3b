"""The gateway serves the static files itself (WhiteNoise), with DEBUG off as in every deployment.

A real gateway role is started and asked over HTTP for the admin's stylesheet under its hashed name, the name the
admin pages link to. Without static serving the admin is unstyled and its autocomplete JavaScript missing.
"""

from __future__ import annotations

import re
from typing import cast
from unittest import mock

import pytest
import requests
from django.conf import settings
from django.contrib.staticfiles.storage import ManifestStaticFilesStorage, staticfiles_storage
from django.core.handlers.wsgi import WSGIHandler
from django.templatetags.static import static
from whitenoise.middleware import WhiteNoiseMiddleware

from fleet.wsgi import PushWSGIHandler

YEAR_S = 365 * 24 * 3600


@pytest.fixture
def base_css() -> str:
    """The URL path of admin/css/base.css under its hashed name (needs `manage.py collectstatic`, run by bootstrap).

    pytest-django runs tests with DEBUG off, where `static()` answers the manifest's hashed name."""
    assert not settings.DEBUG
    url = static("admin/css/base.css")
    assert re.fullmatch(r"/static/admin/css/base\.[0-9a-f]{12}\.css", url), url
    return url


@pytest.fixture
def gateway(db, role_process):
    gateway = role_process("gateway", env={"DEBUG": "false", "GATEWAY_WORKERS": "1"})
    gateway.wait_http("/health/gateway")
    return gateway


def test_the_gateway_serves_the_admin_css_hashed_compressed_and_cached_for_long(gateway, base_css) -> None:
    response = requests.get(gateway.base_url + base_css, headers={"Accept-Encoding": "gzip"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert response.headers.get("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in response.headers.get("Vary", "")
    cache = response.headers["Cache-Control"]
    max_age = int(re.search(r"max-age=(\d+)", cache).group(1))
    assert max_age >= YEAR_S
    assert "immutable" in cache
    manifest = cast(ManifestStaticFilesStorage, staticfiles_storage)  # WhiteNoise's manifest storage (STORAGES)
    with staticfiles_storage.open(manifest.stored_name("admin/css/base.css")) as source:
        assert response.content == source.read()

    plain = requests.get(gateway.base_url + base_css, headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.status_code == 200
    assert "Content-Encoding" not in plain.headers
    assert plain.content == response.content


def test_the_admin_login_page_links_the_served_names(gateway, base_css) -> None:
    page = requests.get(gateway.base_url + "/admin/login/", timeout=10)
    assert page.status_code == 200
    assert f'href="{base_css}"' in page.text
    for path in re.findall(r'(?:href|src)="(/static/[^"]+)"', page.text):
        assert requests.get(gateway.base_url + path, timeout=10).status_code == 200, path


def test_an_unhashed_name_is_served_but_cached_briefly(gateway) -> None:
    response = requests.get(gateway.base_url + "/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    max_age = int(re.search(r"max-age=(\d+)", response.headers["Cache-Control"]).group(1))
    assert max_age < 3600


def test_static_serving_stays_off_the_push_path() -> None:
    middleware = settings.MIDDLEWARE
    whitenoise = "whitenoise.middleware.WhiteNoiseMiddleware"
    assert middleware.index(whitenoise) == middleware.index("django.middleware.security.SecurityMiddleware") + 1
    assert not [m for m in settings.PUSH_MIDDLEWARE if "whitenoise" in m.lower()]
    built = []
    original_init = WhiteNoiseMiddleware.__init__

    def counting_init(self: WhiteNoiseMiddleware, *args: object, **kwargs: object) -> None:
        built.append(self)
        original_init(self, *args, **kwargs)

    with mock.patch.object(WhiteNoiseMiddleware, "__init__", counting_init):
        PushWSGIHandler()
        assert built == []
        WSGIHandler()
        assert len(built) == 1
