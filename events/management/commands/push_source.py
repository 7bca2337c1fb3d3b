"""Register a push source (create or update) and print the URL to give the sender."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

from domain.models import Account
from events.models import PUSH_KINDS, PushSource, SourceKind


def push_url(source: PushSource) -> str:
    base: str = settings.PUBLIC_BASE_URL.rstrip("/")
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
        parser.add_argument(
            "--create-account", action="store_true", help="create the --account when no account has that name yet"
        )
        parser.add_argument("--cidr", action="append", default=None, help="allowed sender network (repeatable)")
        parser.add_argument("--disable", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            with transaction.atomic():  # a refused source leaves no account created for it either
                self._register(opts)
        except ValidationError as exc:
            fields = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            raise CommandError("; ".join(f"{f or 'source'}: {m}" for f, ms in fields.items() for m in ms)) from exc

    def _register(self, opts: dict[str, Any]) -> None:
        source = PushSource.objects.filter(name=opts["name"]).first() or PushSource(name=opts["name"])
        source.kind = opts["kind"]
        if opts["create_account"] and not opts["account"]:
            raise CommandError("--create-account needs --account NAME (the account to create)")
        if opts["account"]:
            source.account = self._account(opts["account"], create=opts["create_account"])
        elif not source.account_id:  # a new source has none yet (django-stubs types the column, never null)
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

    def _account(self, name: str, *, create: bool) -> Account:
        account = Account.objects.filter(name=name).first()
        if account is not None:
            return account
        if not create:
            raise CommandError(
                f"no account named {name!r} ({_existing_accounts()}); add --create-account to create it in this step"
            )
        account = Account(name=name)
        account.full_clean()
        account.save()
        self.stdout.write(f"created account {account.name!r}")
        return account

    @staticmethod
    def _default_account() -> Account:
        accounts = list(Account.objects.all()[:2])
        if len(accounts) != 1:
            raise CommandError(
                f"--account is required (unknown devices must fall under an account; {_existing_accounts()});"
                " with --create-account a new one is created"
            )
        return accounts[0]


def _existing_accounts(shown: int = 20) -> str:
    names = list(Account.objects.order_by("name").values_list("name", flat=True)[: shown + 1])
    if not names:
        return "there are no accounts yet"
    more = ", …" if len(names) > shown else ""
    return "existing accounts: " + ", ".join(repr(n) for n in names[:shown]) + more
