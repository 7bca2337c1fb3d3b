"""Breach notifications. Transports are pluggable (settings.SLO_ALERT_TRANSPORTS): Django e-mail and a
JSON webhook ship here; each gets `open` and `close` messages once per alert."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from typing import Any, Protocol

from django.conf import settings
from django.core.mail import send_mail
from django.utils.module_loading import import_string

from slo.models import SloAlert


class AlertTransport(Protocol):
    name: str

    def send(self, *, alert: SloAlert, event: str) -> None: ...


def alert_message(*, alert: SloAlert, event: str) -> dict[str, Any]:
    return {
        "event": event,  # "open" or "close"
        "metric": alert.metric,
        "threshold": alert.threshold,
        "value": alert.last_value,
        "opened_at": alert.opened_at.isoformat(),
        "closed_at": alert.closed_at.isoformat() if alert.closed_at else None,
    }


class EmailTransport:
    name = "email"

    def send(self, *, alert: SloAlert, event: str) -> None:
        if not settings.SLO_ALERT_EMAILS:
            return
        verb = "breached" if event == "open" else "recovered"
        body = json.dumps(alert_message(alert=alert, event=event), indent=2)
        send_mail(
            subject=f"[Fleet SLO] {alert.metric} {verb}",
            message=body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=settings.SLO_ALERT_EMAILS,
        )


class WebhookTransport:
    """POSTs the message as JSON, signed like our own push senders (X-Fleet-Timestamp, X-Fleet-Signature)."""

    name = "webhook"

    def send(self, *, alert: SloAlert, event: str) -> None:
        if not settings.SLO_ALERT_WEBHOOK_URL:
            return
        body = json.dumps(alert_message(alert=alert, event=event)).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Fleet-Timestamp": stamp}
        if settings.SLO_ALERT_WEBHOOK_SECRET:
            digest = hmac.new(settings.SLO_ALERT_WEBHOOK_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256)
            headers["X-Fleet-Signature"] = "sha256=" + digest.hexdigest()
        request = urllib.request.Request(settings.SLO_ALERT_WEBHOOK_URL, data=body, headers=headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=settings.SLO_ALERT_WEBHOOK_TIMEOUT_S) as response:  # noqa: S310
            response.read()


def alert_transports() -> list[AlertTransport]:
    return [import_string(path)() for path in settings.SLO_ALERT_TRANSPORTS]
