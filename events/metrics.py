"""The SLO metrics whose data the events layer owns (registered with slo.registry at start-up)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection

from slo.registry import Measurement, register_metric


@register_metric("parser_lag_p95_sec")
def parser_lag_p95(*, now: datetime, window: timedelta) -> Measurement:
    """p95 of received → parsed over raw rows received in the window; a row still waiting counts its age."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM"
            "        coalesce(parsed_at, %(now)s) - received_at)), count(*),"
            "       count(*) FILTER (WHERE status = 'pending')"
            "  FROM events_raw WHERE received_at > %(since)s AND received_at <= %(now)s",
            {"now": now, "since": now - window},
        )
        p95, count, pending = cursor.fetchone()
    return Measurement(
        value=None if p95 is None else round(float(p95), 3), sample_size=count, detail={"pending": pending}
    )


@register_metric("contract_drift_days")
def contract_drift_days(*, now: datetime, window: timedelta) -> Measurement:
    """Days since the last contract check run in which every method matched (a run: the rows of one checked_at);
    no check yet is no data, and while no run ever matched it counts from the first run."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max(checked_at) FILTER (WHERE ok), max(checked_at), min(checked_at), count(*)"
            "  FROM (SELECT checked_at, bool_and(ok) AS ok FROM events_contract_checks WHERE checked_at <= %s"
            "         GROUP BY checked_at) runs",
            [now],
        )
        last_ok, last_any, first, runs = cursor.fetchone()
    if last_any is None:
        return Measurement(value=None)
    since = last_ok or first
    return Measurement(
        value=round((now - since).total_seconds() / 86400, 3),
        sample_size=runs,
        detail={"last_ok": last_ok.isoformat() if last_ok else None, "last_check": last_any.isoformat()},
    )
