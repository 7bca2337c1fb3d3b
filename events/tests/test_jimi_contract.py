"""The contract check: every method we depend on, called on the sandbox, validated against the pinned strict models;
a drift (unknown, missing, re-typed field) is named, stored, opens an alert and feeds contract_drift_days."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from events.jimi.contract import CONTRACTS, drifts
from events.jimi.services import CONTRACT_ALERT, contract_check_run
from events.models import ContractCheck
from slo.models import SloAlert
from slo.registry import measure


def _run(*args):
    out = StringIO()
    call_command("contract_check", *args, stdout=out)
    return out.getvalue()


def test_it_finds_every_method_of_the_sandbox_matching_the_pinned_contract(jimi_sandbox, jimi_account):
    output = _run()
    assert f"all {len(CONTRACTS)} methods match the pinned contract" in output
    checks = ContractCheck.objects.all()
    assert sorted(checks.values_list("method", flat=True)) == sorted(CONTRACTS)
    assert all(c.ok and c.account == jimi_account for c in checks)
    assert len({c.checked_at for c in checks}) == 1  # one run
    assert not checks.filter(detail__contains="envelope only")  # every method answered rows to check
    called = {c["method"] for c in jimi_sandbox.calls()}
    assert set(CONTRACTS) <= called
    assert not SloAlert.objects.filter(metric=CONTRACT_ALERT).exists()


def test_it_catches_and_names_a_renamed_field_and_opens_an_alert(jimi_sandbox, jimi_account):
    earlier = timezone.now() - timedelta(days=2)
    contract_check_run(now=earlier)
    jimi_sandbox.rename_field("jimi.device.alarm.list", "alertTypeId", "alertId")
    out = StringIO()
    with pytest.raises(CommandError, match=r"contract drift in 1 of 11 methods: jimi\.device\.alarm\.list"):
        call_command("contract_check", stdout=out)
    printed = out.getvalue()
    assert "DRIFT jimi.device.alarm.list" in printed
    assert "result[0].alertId: unknown field (string)" in printed
    assert "result[0].alertTypeId: missing field" in printed

    check = ContractCheck.objects.get(method="jimi.device.alarm.list", ok=False)
    assert "alertId: unknown field" in check.detail
    assert "alertTypeId: missing field" in check.detail
    alert = SloAlert.objects.get(metric=CONTRACT_ALERT, closed_at__isnull=True)
    assert alert.opened_value == 1.0
    measured = measure("contract_drift_days", now=timezone.now(), window=timedelta(days=1))
    assert measured.value == pytest.approx(2.0, abs=0.01)  # since the last run where every method matched
    assert measured.value > 1  # the SLO (at most a day) is breached

    jimi_sandbox.renames.clear()
    assert "all 11 methods match" in _run()
    alert.refresh_from_db()
    assert alert.closed_at is not None
    assert measure("contract_drift_days", now=timezone.now(), window=timedelta(days=1)).value == pytest.approx(
        0, abs=0.01
    )


def test_it_reports_unknown_missing_and_retyped_fields(jimi_sandbox, jimi_account):
    def drift(document):
        row = document["result"][0]
        row["lat"] = str(row["lat"])
        del row["gpsTime"]
        row["batteryTemperature"] = 31
        return document

    jimi_sandbox.row_hook["jimi.user.device.location.list"] = drift
    results = {r.method: r for r in contract_check_run()}
    assert results["jimi.user.device.location.list"].drifts == [
        "result[0].batteryTemperature: unknown field (integer)",
        "result[0].gpsTime: missing field",
        "result[0].lat: re-typed field (pinned number, got string)",
    ]
    assert sum(not r.ok for r in results.values()) == 1


def test_it_reports_a_method_that_fails_as_drift(jimi_sandbox, jimi_account):
    jimi_sandbox.fail_next("1001", method="jimi.device.obd.fault", message="unknown method")
    results = {r.method: r for r in contract_check_run()}
    assert not results["jimi.device.obd.fault"].ok
    assert "call failed" in results["jimi.device.obd.fault"].detail
    assert "1001" in results["jimi.device.obd.fault"].detail


def test_it_says_which_account_is_missing(db, settings):
    settings.JIMI_CONTRACT_ACCOUNT = "Nobody"
    with pytest.raises(CommandError, match="no account named 'Nobody'"):
        _run()


def test_it_never_quotes_a_token_in_a_drift():
    document = {"code": 0, "message": "ok", "data": None,
                "result": {"appKey": "k", "account": "a", "accessToken": 123456789, "expiresIn": 60,
                           "refreshToken": "secret-refresh", "time": "t", "sessionKey": "secret-session"}}  # fmt: skip
    found = drifts("jimi.oauth.token.get", document)
    assert found == ["result.accessToken: re-typed field (pinned string, got integer)",
                     "result.sessionKey: unknown field (string)"]  # fmt: skip
    assert "123456789" not in str(found)
    assert "secret" not in str(found)
