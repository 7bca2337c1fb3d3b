"""The push gateway: per request exactly — authenticate the source, one INSERT into events_raw, answer.

No parsing (beyond reading the proof out of the envelope), no geometry, no lookups but the source's own row.
A 200 is only ever sent after the INSERT committed; a database outage answers 503 so the sender retries.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import structlog
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from events.models import SourceKind
from events.netaddr import client_addr
from events.ratelimit import push_limiter

log = structlog.get_logger(__name__)

IOTHUB_ACK = {"code": 0, "msg": "success"}
TSP_ACK = {"code": 0, "message": "success"}
HMAC_ACK = {"ok": True}
# Request headers worth keeping beside a body (never cookies or credentials).
KEPT_HEADERS = (
    "HTTP_USER_AGENT",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_REQUEST_ID",
    "HTTP_X_FLEET_TIMESTAMP",
    "CONTENT_LENGTH",
)


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    kind: str
    secret: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    enabled: bool


class _SourceCache:
    """Sources by name, cached per process for PUSH_SOURCE_CACHE_S: most pushes then cost one INSERT only.

    A disabled source or a rotated secret takes effect within that many seconds.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Source | None]] = {}

    def get(self, name: str) -> Source | None:
        hit = self._entries.get(name)
        now = time.monotonic()
        if hit and now - hit[0] < settings.PUSH_SOURCE_CACHE_S:
            return hit[1]
        source = self._load(name)
        self._entries[name] = (now, source)
        return source

    def clear(self) -> None:
        self._entries.clear()

    @staticmethod
    def _load(name: str) -> Source | None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id, name, kind, secret, allowed_cidrs, enabled FROM events_push_sources WHERE name = %s",
                [name],
            )
            row = cursor.fetchone()
        if row is None:
            return None
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in row[4] or ())
        return Source(id=row[0], name=row[1], kind=row[2], secret=row[3], networks=networks, enabled=row[5])


sources = _SourceCache()


# Refusals of names that are no source are counted under this one label, not under the name the sender chose:
# otherwise every random name would add a row per minute to events_push_rejections. Source names are slugs,
# so no source can be called this.
UNKNOWN_SOURCE_LABEL = "(unknown)"


class Refused(Exception):
    def __init__(self, status: int, reason: str, message: str, *, known_source: bool = True) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.known_source = known_source


def _remote_addr(request: HttpRequest) -> str | None:
    """The sender's address: the socket's, or (PUSH_TRUST_X_FORWARDED_FOR) the hop our own proxy appended to
    X-Forwarded-For — as many hops from the right as API_TRUSTED_PROXIES says stand in front of us, at least
    one. Never the leftmost hop: the sender writes that one itself."""
    proxies = max(1, settings.API_TRUSTED_PROXIES) if settings.PUSH_TRUST_X_FORWARDED_FOR else 0
    return client_addr(request, trusted_proxies=proxies)


def _body(request: HttpRequest) -> bytes:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > settings.PUSH_MAX_BODY_BYTES:
        raise Refused(413, "too_large", f"body over {settings.PUSH_MAX_BODY_BYTES} bytes")
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise Refused(413, "too_large", f"body over {settings.PUSH_MAX_BODY_BYTES} bytes") from exc
    if len(body) > settings.PUSH_MAX_BODY_BYTES:
        raise Refused(413, "too_large", f"body over {settings.PUSH_MAX_BODY_BYTES} bytes")
    return body


def _form_field(body: bytes, name: str) -> str:
    """One field of a form-encoded body, or "" (a body that isn't a form has no such field).

    Only that field is decoded: unquoting a whole IoT Hub batch to read its token cost more than the INSERT.
    """
    prefix = name.encode("ascii") + b"="
    for part in body.split(b"&"):
        if part.startswith(prefix):
            try:
                return unquote_plus(part[len(prefix) :].decode("ascii"), errors="strict")
            except (UnicodeDecodeError, ValueError):
                return ""
    return ""


def _source(name: str, kind: str) -> Source:
    source = sources.get(name)
    if source is None or source.kind != kind:
        raise Refused(401, "unknown_source", "unknown source", known_source=source is not None)
    if not source.enabled:
        raise Refused(401, "disabled", "source disabled")
    return source


def _check_network(source: Source, addr: str | None) -> None:
    if not source.networks:
        return
    try:
        ip = ipaddress.ip_address(addr or "")
    except ValueError as exc:
        raise Refused(401, "network", "sender address not allowed") from exc
    if not any(ip in net for net in source.networks):
        raise Refused(401, "network", "sender address not allowed")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _check_hmac(source: Source, request: HttpRequest, body: bytes) -> None:
    stamp = request.META.get("HTTP_X_FLEET_TIMESTAMP", "")
    signature = request.META.get("HTTP_X_FLEET_SIGNATURE", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > settings.PUSH_HMAC_MAX_SKEW_S:
        raise Refused(401, "stale_timestamp", "X-Fleet-Timestamp missing or outside the accepted window")
    expected = hmac.new(source.secret.encode("utf-8"), stamp.encode("ascii") + b"." + body, hashlib.sha256)
    if not _same(signature, "sha256=" + expected.hexdigest()):
        raise Refused(401, "bad_signature", "bad X-Fleet-Signature")


def _headers(request: HttpRequest) -> str:
    kept = {k.removeprefix("HTTP_").lower(): request.META[k] for k in KEPT_HEADERS if k in request.META}
    return json.dumps(kept)


def push_insert(source: Source, push_kind: str, request: HttpRequest, body: bytes) -> None:
    # One statement in autocommit: committed (and the deferred wake-up trigger run) before we answer.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_raw (source_id, source_kind, push_kind, remote_addr, headers, content_type, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                source.id,
                source.kind,
                push_kind[:64],
                _remote_addr(request),
                _headers(request),
                request.META.get("CONTENT_TYPE", "")[:200],
                body,
            ],
        )


def _count_rejection(source_name: str, reason: str, *, known_source: bool = True) -> None:
    """Count a 401 in events_push_rejections: per known source, reason and minute; every unknown name shares
    UNKNOWN_SOURCE_LABEL, so the table grows with our sources, not with what senders make up."""
    if not known_source:
        source_name = UNKNOWN_SOURCE_LABEL
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO events_push_rejections (source_name, minute, reason, count)"
                " VALUES (%s, date_trunc('minute', now()), %s, 1)"
                " ON CONFLICT (source_name, minute, reason) DO UPDATE SET count = events_push_rejections.count + 1",
                [source_name[:64], reason],
            )
    except DatabaseError:
        log.warning("push.rejection_not_counted", source=source_name, reason=reason)


def _receive(request: HttpRequest, *, source_name: str, kind: str, push_kind: str, ack: dict[str, Any]) -> HttpResponse:
    try:
        body = _body(request)
        source = _source(source_name, kind)
        _check_network(source, _remote_addr(request))
        if kind == SourceKind.JIMI_IOTHUB and not _same(_form_field(body, "token"), source.secret):
            raise Refused(401, "bad_token", "bad token")
        if kind == SourceKind.JIMI_TSP:
            push_kind = _form_field(body, "msgType") or "unknown"
        if kind == SourceKind.HMAC:
            _check_hmac(source, request, body)
        if (limited := push_limiter.check(source.name)) is not None:
            return limited
        push_insert(source, push_kind, request, body)
    except Refused as refused:
        log.info("push.refused", source=source_name, reason=refused.reason, status=refused.status)
        if refused.status == 401:
            _count_rejection(source_name, refused.reason, known_source=refused.known_source)
        return JsonResponse({"error": refused.message}, status=refused.status)
    except DatabaseError as exc:
        log.error("push.database_unavailable", source=source_name, error=str(exc).strip()[:200])
        return JsonResponse({"error": "storage unavailable, retry"}, status=503)
    return JsonResponse(ack)


@csrf_exempt
@require_POST
def push_iothub(request: HttpRequest, source: str, path: str) -> HttpResponse:
    """Jimi IoT Hub: form fields `token` + `data_list`; `path` is the hub's push path (pushgps, pushalarm…)."""
    return _receive(request, source_name=source, kind=SourceKind.JIMI_IOTHUB, push_kind=path, ack=IOTHUB_ACK)


@csrf_exempt
@require_POST
def push_tsp(request: HttpRequest, source: str, key: str) -> HttpResponse:
    """TrackSolid Pro: form fields `msgType` + `data`. TSP sends no proof, so the URL key is the secret."""
    try:
        known = sources.get(source)
    except DatabaseError:
        return JsonResponse({"error": "storage unavailable, retry"}, status=503)
    if known is None or not _same(key, known.secret):
        _count_rejection(source, "bad_key", known_source=known is not None)
        return JsonResponse({"error": "unknown source or key"}, status=401)
    return _receive(request, source_name=source, kind=SourceKind.JIMI_TSP, push_kind="", ack=TSP_ACK)


@csrf_exempt
@require_POST
def push_hmac(request: HttpRequest, source: str) -> HttpResponse:
    """Our own senders: a JSON body signed with X-Fleet-Timestamp + X-Fleet-Signature (HMAC-SHA256)."""
    return _receive(request, source_name=source, kind=SourceKind.HMAC, push_kind="hmac", ack=HMAC_ACK)
