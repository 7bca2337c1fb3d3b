"""Register a push source (create or update) and print the URL to give the sender."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from domain.models import Account
from events.models import PUSH_KINDS, PushSource, SourceKind


def push_url(source: PushSource) -> str:
    base = settings.PUBLIC_BASE_URL.rstrip("/")
    if source.kind == SourceKind.JIMI_IOTHUB:
        # The hub appends its own path per message type (pushgps, pushalarm, …) to this base.
        return base + reverse("push:iothub", args=[source.name, "PATH"]).removesuffix("/PATH")
    if source.kind == SourceKind.JIMI_TSP:
        return base + reverse("push:tsp", args=[source.name, source.secret])
    return base + reverse("push:hmac", args=[source.name])


class Command(BaseCommand):
    help = "Create or update a push source and print the URL to give its sender."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name")
        parser.add_argument("--kind", required=True, choices=[str(k) for k in PUSH_KINDS])
        parser.add_argument("--secret", help="token / URL key / HMAC key; generated when omitted on create")
        parser.add_argument("--account", help="account (by name) that unknown devices fall under")
        parser.add_argument("--cidr", action="append", default=None, help="allowed sender network (repeatable)")
        parser.add_argument("--disable", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        source = PushSource.objects.filter(name=opts["name"]).first() or PushSource(name=opts["name"])
        source.kind = opts["kind"]
        if opts["account"]:
            try:
                source.account = Account.objects.get(name=opts["account"])
            except Account.DoesNotExist as exc:
                raise CommandError(f"no account named {opts['account']!r}") from exc
        elif source.account_id is None:
            source.account = self._default_account()
        if opts["secret"]:
            source.secret = opts["secret"]
        elif not source.secret:
            source.secret = secrets.token_urlsafe(24)
            self.stdout.write(f"generated secret: {source.secret}")
        if opts["cidr"] is not None:
            source.allowed_cidrs = opts["cidr"]
        source.enabled = not opts["disable"]
        created = source.pk is None
        source.full_clean()
        source.save()
        self.stdout.write(f"{'created' if created else 'updated'} {source}")
        self.stdout.write(f"push URL: {push_url(source)}")
        if source.kind == SourceKind.JIMI_IOTHUB:
            self.stdout.write("hub token: the secret above (sent as the `token` form field)")

    @staticmethod
    def _default_account() -> Account:
        accounts = list(Account.objects.all()[:2])
        if len(accounts) != 1:
            raise CommandError("--account is required (unknown devices must fall under an account)")
        return accounts[0]
