"""Writes of the slo layer: the minute's measurements, and breach alerts opened and closed with them."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from slo.alerts import alert_transports
from slo.models import SloAlert, SloMeasurement, SloTarget, TargetKind
from slo.registry import Measurement, measure

log = structlog.get_logger(__name__)


def in_business_hours(moment: datetime) -> bool:
    local = moment.astimezone(ZoneInfo(settings.DISPLAY_TIME_ZONE))
    start, end = settings.SLO_BUSINESS_HOURS
    return local.weekday() in settings.SLO_BUSINESS_DAYS and start <= local.hour < end


def _verdict(target: SloTarget, measured: Measurement, now: datetime) -> bool | None:
    if measured.value is None:
        return None
    if target.business_hours_only and not in_business_hours(now):
        return None
    return target.is_met(measured.value)


def slo_measure_all(*, now: datetime | None = None) -> list[SloMeasurement]:
    """Measure every SLO target that has a registered metric function; open or close its alert."""
    now = now or timezone.now()
    written: list[SloMeasurement] = []
    for target in SloTarget.objects.filter(kind=TargetKind.SLO):
        window = target.window or settings.SLO_DEFAULT_WINDOW
        try:
            measured = measure(target.metric, now=now, window=window)
        except Exception:  # one broken metric must not stop the others being measured
            log.exception("slo.measure_failed", metric=target.metric)
            continue
        if measured is None:
            continue
        met = _verdict(target, measured, now)
        written.append(
            SloMeasurement.objects.create(
                metric=target.metric, measured_at=now, value=measured.value, sample_size=measured.sample_size,
                threshold=target.threshold, met=met, detail=measured.detail,
            )
        )  # fmt: skip
        slo_alert_update(target=target, met=met, value=measured.value, now=now)
    slo_alerts_notify(now=now)
    return written


def slo_alert_update(*, target: SloTarget, met: bool | None, value: float | None, now: datetime) -> None:
    """A breach opens one alert until recovery; no data changes nothing."""
    if met is None:
        return
    open_alert = SloAlert.objects.filter(metric=target.metric, closed_at__isnull=True).first()
    if met and open_alert:
        open_alert.closed_at, open_alert.last_value = now, value
        open_alert.save(update_fields=["closed_at", "last_value"])
        log.info("slo.recovered", metric=target.metric, value=value)
    elif not met and open_alert:
        open_alert.last_value = value
        open_alert.save(update_fields=["last_value"])
    elif not met:
        try:
            with transaction.atomic():
                SloAlert.objects.create(
                    metric=target.metric, opened_at=now, threshold=target.threshold, opened_value=value,
                    last_value=value,
                )  # fmt: skip
        except IntegrityError:
            return  # another measurer opened it at the same moment: the constraint keeps one
        log.warning("slo.breached", metric=target.metric, value=value, threshold=target.threshold)


def _pending(alert: SloAlert) -> list[str]:
    events = ["open"] + (["close"] if alert.closed_at else [])
    return [e for e in events if any(f"{t.name}:{e}" not in alert.notified for t in alert_transports())]


def slo_alerts_notify(*, now: datetime) -> None:
    """Tell every transport about each open and close once; a failed send is retried next minute."""
    since = now - settings.SLO_ALERT_RETRY_FOR
    for alert in SloAlert.objects.filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since)):
        for event in _pending(alert):
            for transport in alert_transports():
                key = f"{transport.name}:{event}"
                if key in alert.notified:
                    continue
                try:
                    transport.send(alert=alert, event=event)
                except Exception as exc:
                    log.warning("slo.notify_failed", metric=alert.metric, transport=transport.name, error=str(exc))
                    continue
                alert.notified[key] = timezone.now().isoformat()
                alert.save(update_fields=["notified"])


def slo_partitions_ensure(*, months_ahead: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT fleet_partitions_ensure('slo_measurements', 'measured_at', false, 0, %s)", [months_ahead]
        )
        return [r[0] for r in cursor.fetchall()]


def slo_alert_raise(*, metric: str, value: float | None, threshold: float, now: datetime) -> bool:
    """Open the alert `metric` for a breach found outside the minute's measurements (the daily Jimi contract check);
    one stays open until slo_alert_clear. True when this call opened it."""
    open_alert = SloAlert.objects.filter(metric=metric, closed_at__isnull=True).first()
    if open_alert is not None:
        open_alert.last_value = value
        open_alert.save(update_fields=["last_value"])
        return False
    try:
        with transaction.atomic():
            SloAlert.objects.create(
                metric=metric, opened_at=now, threshold=threshold, opened_value=value, last_value=value
            )
    except IntegrityError:
        return False  # opened at the same moment elsewhere: the constraint keeps one
    log.warning("slo.breached", metric=metric, value=value, threshold=threshold)
    return True


def slo_alert_clear(*, metric: str, value: float | None, now: datetime) -> bool:
    """Close the open alert `metric`, if any (the transports are told at the next minute). True when one was open."""
    closed = SloAlert.objects.filter(metric=metric, closed_at__isnull=True).update(closed_at=now, last_value=value)
    if closed:
        log.info("slo.recovered", metric=metric, value=value)
    return bool(closed)
