"""Check Jimi's Open API against the pinned contract now (the daily task does the same): exit 0 when every method's
answer matches, 1 naming each drift."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from domain.models import Account
from events.jimi.credentials import CredentialsMissing
from events.jimi.errors import JimiError
from events.jimi.services import ContractAccountMissing, contract_check_run


class Command(BaseCommand):
    help = (
        "Call every Open API method the platform depends on as the contract account (JIMI_CONTRACT_ACCOUNT, or"
        " --account) at JIMI_API_URL or the account's node, validate each answer against the pinned models and store"
        " the results (events_contract_checks). Exit 0 when all match, 1 with the drifts named."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--account", help="the account (by name) to check as; default JIMI_CONTRACT_ACCOUNT")

    def handle(self, *args: Any, **opts: Any) -> None:
        account = None
        if opts["account"]:
            account = Account.objects.filter(name=opts["account"]).first()
            if account is None:
                raise CommandError(f"no account named {opts['account']!r}")
        try:
            results = contract_check_run(account=account)
        except (ContractAccountMissing, CredentialsMissing, JimiError) as exc:
            raise CommandError(str(exc)) from exc
        width = max(len(r.method) for r in results)
        for result in results:
            mark = "ok   " if result.ok else "DRIFT"
            lines = result.detail.splitlines() or [""]
            self.stdout.write(f"{mark} {result.method:<{width}}  {lines[0]}")
            for line in lines[1:]:
                self.stdout.write(f"      {'':<{width}}  {line}")
        drifting = [r.method for r in results if not r.ok]
        if drifting:
            raise CommandError(f"contract drift in {len(drifting)} of {len(results)} methods: {', '.join(drifting)}")
        self.stdout.write(f"all {len(results)} methods match the pinned contract")
