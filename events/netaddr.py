"""The one reader of a request's client address, for the push gateway's allow-lists and fleet's rate limits.

Behind proxies we run, each proxy *appends* the address it saw to X-Forwarded-For; whatever the client put in
the header itself comes first. So the client is the hop `trusted_proxies` places from the right end, never
the leftmost (which anyone can write). With no trusted proxy the header is ignored and the socket's address
(REMOTE_ADDR) is the client.
"""

from __future__ import annotations

import ipaddress

from django.http import HttpRequest


def client_addr(request: HttpRequest, *, trusted_proxies: int) -> str | None:
    """The client's IP address as text, or None when there is no usable one.

    `trusted_proxies` is how many proxies of ours stand in front of this process (0: trust no header). A hop
    that is not an IP address gives None rather than something a caller might match against a network.
    """
    if trusted_proxies > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return _ip(hops[-min(trusted_proxies, len(hops))])
    return _ip(request.META.get("REMOTE_ADDR") or "")


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
