"""Print a stable digest of every state table: replay must reproduce it exactly."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from state.selectors import state_digest_total, state_digests


class Command(BaseCommand):
    help = (
        "sha256 per state table and a total: rows by natural identity (IMEI, plate, dedup key), without surrogate"
        " ids, arrival or processing times; equal in any copy fed the same events."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        digests = state_digests()
        for table, (rows, digest) in digests.items():
            self.stdout.write(f"{table:32} {rows:>10} {digest}")
        self.stdout.write(f"{'total':32} {'':>10} {state_digest_total(digests)}")
