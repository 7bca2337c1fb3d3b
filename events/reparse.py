"""Re-parse chosen raw rows by their keys: what the admin's "re-parse selected" runs, inline or as a job.

The rows go through the same service as the parse path and `manage.py reparse` (raw_rows_parse, replacing
their events), in one transaction, and leave the work-list so a running worker does not parse them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import structlog
from django.db import connection, transaction

from events.services import ParseOutcome, raw_rows_fetch, raw_rows_parse

log = structlog.get_logger(__name__)


def raw_rows_reparse(*, raw_ids: Sequence[int], received_at: Sequence[datetime | str]) -> ParseOutcome:
    """Re-run the current parsers over the raw rows with these ids and received_at values (ISO 8601 texts are
    read too: job arguments are JSON). Rows that no longer match both are skipped."""
    received = [t if isinstance(t, datetime) else datetime.fromisoformat(t) for t in received_at]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM events_raw_pending WHERE raw_id = ANY(%s)", [list(raw_ids)])
        outcome = raw_rows_parse(raw_rows_fetch(ids=raw_ids, received=received), replace=True)
    log.info("parse.reparsed", rows=outcome.rows, events=outcome.events, failed=outcome.failed)
    return outcome
