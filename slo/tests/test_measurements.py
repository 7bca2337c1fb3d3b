"""SLO metrics measured on constructed data with a known answer; status follows the current threshold; a
breach opens one alert until recovery, told once to each transport."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from devtools.testing.fakes import fake_smtp_server, fake_webhook_server
from events.models import ContractCheck, SourceKind
from geo.models import RouteRequest
from slo.models import SloAlert, SloMeasurement, SloTarget
from slo.registry import measure
from slo.selectors import slo_status
from slo.services import slo_measure_all

WINDOW = timedelta(minutes=5)


@pytest.fixture
def now():
    # A Tuesday at 10:00 in Nairobi: inside business hours.
    return datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _quiet_transports(settings):
    settings.SLO_ALERT_EMAILS = []
    settings.SLO_ALERT_WEBHOOK_URL = ""


def _raw(received_at, parsed_after_s: float | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_raw (received_at, source_kind, push_kind, body, status, parsed_at)"
            " VALUES (%s, %s, 'pushgps', '', %s, %s)",
            [
                received_at,
                SourceKind.CSV,
                "pending" if parsed_after_s is None else "parsed",
                None if parsed_after_s is None else received_at + timedelta(seconds=parsed_after_s),
            ],
        )


def test_it_measures_parser_lag_p95_from_the_raw_log(db, now):
    for second in range(1, 21):  # lags 1..20 s
        _raw(now - timedelta(minutes=2), second)
    _raw(now - timedelta(minutes=9), 500)  # outside the window
    measured = measure("parser_lag_p95_sec", now=now, window=WINDOW)
    assert measured.sample_size == 20
    assert measured.value == pytest.approx(19.05)  # percentile_cont over 1..20


def test_it_counts_a_row_still_waiting_at_its_age(db, now):
    _raw(now - timedelta(seconds=90), None)
    measured = measure("parser_lag_p95_sec", now=now, window=WINDOW)
    assert measured.value == pytest.approx(90)
    assert measured.detail == {"pending": 1}


def test_it_measures_route_latency_p95(db, now):
    RouteRequest.objects.bulk_create(
        RouteRequest(requested_at=now - timedelta(seconds=10), duration_ms=ms) for ms in range(1, 101)
    )
    assert measure("route_p95_ms", now=now, window=WINDOW).value == pytest.approx(95.0, abs=0.1)


def test_it_measures_contract_drift_in_days_since_the_last_good_check(db, now):
    assert measure("contract_drift_days", now=now, window=WINDOW).value is None
    ContractCheck.objects.create(checked_at=now - timedelta(days=3), method="jimi.device.location.get", ok=True)
    ContractCheck.objects.create(checked_at=now - timedelta(days=1), method="jimi.device.location.get", ok=False)
    assert measure("contract_drift_days", now=now, window=WINDOW).value == pytest.approx(3.0)


def test_it_flips_the_status_when_a_threshold_is_updated(db, now):
    for second in range(1, 21):
        _raw(now - timedelta(minutes=1), second)
    slo_measure_all(now=now)
    assert _state(now, "parser_lag_p95_sec") == "met"
    with connection.cursor() as cursor:
        cursor.execute("UPDATE slo_targets SET threshold = 10 WHERE metric = 'parser_lag_p95_sec'")
    assert _state(now, "parser_lag_p95_sec") == "breached"


def _state(now, metric):
    return next(m for m in slo_status(now=now)["metrics"] if m["metric"] == metric)["state"]


def test_it_opens_one_alert_per_breach_and_closes_it_on_recovery(db, now):
    _raw(now - timedelta(minutes=1), 45)  # lag 45 s > 30 s
    slo_measure_all(now=now)
    slo_measure_all(now=now + timedelta(minutes=1))
    alert = SloAlert.objects.get(metric="parser_lag_p95_sec")
    assert alert.closed_at is None
    assert SloMeasurement.objects.filter(metric="parser_lag_p95_sec", met=False).count() == 2
    later = now + timedelta(minutes=10)
    _raw(later - timedelta(minutes=1), 2)
    slo_measure_all(now=later)
    alert.refresh_from_db()
    assert alert.closed_at == later
    status = next(m for m in slo_status(now=later)["metrics"] if m["metric"] == "parser_lag_p95_sec")
    assert (status["state"], status["since"]) == ("met", later)
    _raw(later + timedelta(minutes=4), 99)
    slo_measure_all(now=later + timedelta(minutes=5))
    assert SloAlert.objects.filter(metric="parser_lag_p95_sec").count() == 2


def test_it_ignores_breaches_of_business_hours_targets_at_night(db, now):
    night = now + timedelta(hours=14)  # 00:00 in Nairobi
    SloTarget.objects.filter(metric="parser_lag_p95_sec").update(business_hours_only=True)
    _raw(night - timedelta(minutes=1), 45)
    slo_measure_all(now=night)
    assert SloMeasurement.objects.get(metric="parser_lag_p95_sec").met is None
    assert not SloAlert.objects.exists()


def test_it_reports_a_burn_rate_over_the_window(db, now):
    for minute in range(5):
        at = now + timedelta(minutes=minute) - timedelta(seconds=30)
        for _ in range(1 if minute < 2 else 50):  # two slow minutes, then enough fast rows to bring p95 down
            _raw(at, 45 if minute < 2 else 1)
        slo_measure_all(now=now + timedelta(minutes=minute))
    status = next(
        m for m in slo_status(now=now + timedelta(minutes=4))["metrics"] if m["metric"] == "parser_lag_p95_sec"
    )
    # 2 breached minutes of 5 against a 5 % budget.
    assert status["burn_rate"] == pytest.approx(0.4 / 0.05)


def test_it_tells_email_and_webhook_once_each_on_open_and_close(db, now, settings):
    with fake_smtp_server() as (smtp_port, mailbox), fake_webhook_server() as (url, hooks):
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp_port
        settings.SLO_ALERT_EMAILS = ["duty@example.com"]
        settings.SLO_ALERT_WEBHOOK_URL, settings.SLO_ALERT_WEBHOOK_SECRET = url, "hook-secret"
        _raw(now - timedelta(minutes=1), 45)
        slo_measure_all(now=now)
        slo_measure_all(now=now + timedelta(minutes=1))
        assert len(mailbox.messages) == 1
        assert "parser_lag_p95_sec breached" in mailbox.messages[0]["data"]
        assert mailbox.messages[0]["to"] == ["duty@example.com"]
        assert [json.loads(r["body"])["event"] for r in hooks.requests] == ["open"]
        request = hooks.requests[0]
        stamp = request["headers"]["X-Fleet-Timestamp"]
        expected = hmac.new(b"hook-secret", stamp.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
        assert request["headers"]["X-Fleet-Signature"] == f"sha256={expected}"
        later = now + timedelta(minutes=10)
        _raw(later - timedelta(minutes=1), 1)
        slo_measure_all(now=later)
        assert len(mailbox.messages) == 2
        assert "recovered" in mailbox.messages[1]["data"]
        assert [json.loads(r["body"])["event"] for r in hooks.requests] == ["open", "close"]


def test_it_retries_a_webhook_that_failed(db, now, settings):
    with fake_webhook_server() as (url, hooks):
        settings.SLO_ALERT_WEBHOOK_URL = url
        hooks.status = 500
        _raw(now - timedelta(minutes=1), 45)
        slo_measure_all(now=now)
        assert "webhook:open" not in SloAlert.objects.get().notified
        hooks.status = 200
        slo_measure_all(now=now + timedelta(minutes=1))
        assert "webhook:open" in SloAlert.objects.get().notified
        assert len(hooks.requests) == 2
