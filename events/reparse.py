"""Re-parse chosen raw rows by their keys: what the admin's "re-parse selected" runs, inline or as a job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from events.services import ReparseOutcome, raw_events_reparse, raw_rows_fetch


def raw_rows_reparse(*, raw_ids: Sequence[int], received_at: Sequence[datetime | str]) -> ReparseOutcome:
    """Re-parse the raw rows with these ids and received_at values (ISO 8601 texts are read too: job arguments
    are JSON). Rows that no longer match both are skipped."""
    received = [t if isinstance(t, datetime) else datetime.fromisoformat(t) for t in received_at]
    return raw_events_reparse(rows=raw_rows_fetch(ids=raw_ids, received=received))
