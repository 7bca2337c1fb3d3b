"""gzip for the API's JSON answers, negotiated by Accept-Encoding (docs/architecture.md, "The live view on the wire").

Django's GZipMiddleware, scoped: it compresses every response of the full stack, including the HTML pages and the
admin, which carry the CSRF token next to what a request reflects (query strings, form values, search boxes) — the
pages BREACH attacks — and WhiteNoise's static files, which are compressed once at collectstatic (`.gz` beside each
file) and served with Content-Encoding already (this one comes after WhiteNoise's in MIDDLEWARE: WhiteNoise answers
static files itself, and they never reach it). This one compresses only:

- responses to /api/ (except /api/auth/: the token endpoints answer with fresh tokens, the one secret the API
  puts in a body),
- of a JSON type, not streamed, at least API_GZIP_MIN_BYTES long, not encoded already,
- when Accept-Encoding accepts gzip (q-values honoured: `gzip;q=0` refuses it, `*` accepts it).

The JSON it compresses holds fleet data, no secret: no session id, no CSRF token, no API token. A view answer
reflects its `filters` only as the vehicles they select (a length any response shows, compressed or not) and a
`since` cursor, which is bound to its user and useless to anyone else. Every answer in scope, compressed or not,
says `Vary: Accept-Encoding`; a strong ETag becomes weak (the bytes differ, the representation does not).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers

API_PREFIX = "/api/"
EXCLUDED_PREFIXES = ("/api/auth/",)


def accepts_gzip(header: str) -> bool:
    """Does an Accept-Encoding value accept gzip? (RFC 9110 §12.5.3: an explicit coding's q-value wins over `*`)"""
    star: float | None = None
    for part in header.split(","):
        coding, _, parameters = part.partition(";")
        coding = coding.strip().lower()
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if coding in ("gzip", "x-gzip"):
            return quality > 0
        if coding == "*":
            star = quality
    return star is not None and star > 0


def in_scope(request: HttpRequest) -> bool:
    path = request.path_info
    return path.startswith(API_PREFIX) and not path.startswith(EXCLUDED_PREFIXES)


def _is_json(response: HttpResponse) -> bool:
    kind = response.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return kind == "application/json" or kind.endswith("+json")


class ApiCompressionMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not in_scope(request):
            return response
        if response.status_code == 304:  # the 200 it stands for varies so
            patch_vary_headers(response, ("Accept-Encoding",))
            return response
        if response.streaming or not _is_json(response) or response.has_header("Content-Encoding"):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        content = response.content
        if len(content) < settings.API_GZIP_MIN_BYTES or not accepts_gzip(request.headers.get("Accept-Encoding", "")):
            return response
        compressed = gzip.compress(content, compresslevel=settings.API_GZIP_LEVEL, mtime=0)
        if len(compressed) >= len(content):
            return response
        response.content = compressed
        response["Content-Length"] = str(len(compressed))
        response["Content-Encoding"] = "gzip"
        etag = response.get("ETag", "")
        if etag.startswith('"'):
            response["ETag"] = "W/" + etag
        return response
