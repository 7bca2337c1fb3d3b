"""Automations: watched alarms open or update one ticket per vehicle and type until it is resolved, maintenance due
opens one ticket, a silent device one "device check" ticket — and never a duplicate, even when two workers run into
each other (the partial unique index decides)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from domain.models import Account, Device, Lifecycle
from domain.services import device_transition
from domain.tests.factories import make_vehicle
from events.models import PushSource, SourceKind
from ops import automations
from ops.automations import (
    alarm_tickets_sync,
    automations_run,
    device_check_tickets_sync,
    maintenance_tickets_sync,
)
from ops.models import ServiceLog, Ticket
from ops.services import ticket_transition
from ops.tests.pipeline import immediate, push_alarm, run
from state.tests.drives import Ev, feed

KDA, KDB = "861210600000311", "861210600000312"


def setup_fleet(account: Account) -> PushSource:
    kda, kdb = make_vehicle("KDA 311A"), make_vehicle("KDB 312B")
    Device.objects.create(imei=KDA, account=account, vehicle=kda)
    Device.objects.create(imei=KDB, account=account, vehicle=kdb)
    return PushSource.objects.create(name="hub", kind=SourceKind.JIMI_IOTHUB, account=account, secret="hub-secret-9")


def tickets() -> list[tuple[str | None, str, int, str]]:
    return list(Ticket.objects.order_by("auto_key").values_list("auto_key", "priority", "occurrences", "status"))


@pytest.fixture
def hub(db, account) -> PushSource:
    immediate()
    return setup_fleet(account)


def ago(minutes: float) -> datetime:
    return timezone.now().replace(microsecond=0) - timedelta(minutes=minutes)


@pytest.mark.django_db
def test_it_opens_one_ticket_per_vehicle_and_type_and_updates_it_until_resolved(hub):
    kda, kdb = Device.objects.get(imei=KDA).vehicle_id, Device.objects.get(imei=KDB).vehicle_id
    for imei, code, minutes in ((KDA, "1", 30), (KDA, "1", 20), (KDA, "2", 25), (KDB, "1", 10), (KDA, "3", 5)):
        push_alarm(hub, imei=imei, code=code, at=ago(minutes))  # SOS twice, power cut, SOS, vibration (not watched)
    push_alarm(hub, imei=KDA, code="1", at=ago(15), cleared=True)  # the SOS ending: not an alarm to act on
    push_alarm(hub, imei=KDB, code="44", at=ago(60 * 30))  # a collision older than alarm_ticket_max_age_s
    run()

    assert alarm_tickets_sync() == {"opened": 3, "updated": 0}
    assert tickets() == [
        (f"alarm:{kda}:power_cut", "high", 1, "open"),
        (f"alarm:{kda}:sos", "urgent", 2, "open"),
        (f"alarm:{kdb}:sos", "urgent", 1, "open"),
    ]
    sos = Ticket.objects.get(auto_key=f"alarm:{kda}:sos")
    assert (sos.title, sos.alarm_type, sos.category, sos.device.imei) == ("SOS on KDA311A", "sos_alert", "alarm", KDA)
    assert sos.sla_due_at is not None
    assert sos.sla_due_at - sos.opened_at == timedelta(hours=4)
    assert alarm_tickets_sync() == {"opened": 0, "updated": 0}  # nothing new: nothing changes

    push_alarm(hub, imei=KDA, code="1", at=ago(2))
    run()
    assert alarm_tickets_sync() == {"opened": 0, "updated": 1}
    sos.refresh_from_db()
    assert (sos.occurrences, sos.last_seen_at) == (3, ago(2))

    ticket_transition(ticket=sos, to="resolved")
    assert alarm_tickets_sync() == {"opened": 0, "updated": 0}  # the alarms it saw do not open another
    push_alarm(hub, imei=KDA, code="1", at=ago(1))
    run()
    assert alarm_tickets_sync() == {"opened": 1, "updated": 0}  # a new SOS after the resolution: a new ticket
    assert Ticket.objects.filter(auto_key=f"alarm:{kda}:sos").count() == 2


@pytest.mark.django_db
def test_it_queues_the_alarm_job_when_the_projector_folds_an_alarm(hub):
    push_alarm(hub, imei=KDA, code="1", at=ago(1))
    run()
    with connection.cursor() as cursor:
        cursor.execute("SELECT queue_name, status FROM procrastinate_jobs WHERE task_name = 'ops.alarm_tickets'")
        assert cursor.fetchall() == [("cron", "todo")]


@pytest.mark.django_db
def test_it_opens_one_maintenance_ticket_per_due_service_plan(hub):
    vehicle, other = Device.objects.get(imei=KDA).vehicle, Device.objects.get(imei=KDB).vehicle
    assert vehicle is not None
    assert other is not None
    today = timezone.localdate()
    first = ServiceLog.objects.create(vehicle=vehicle, service_date=today - timedelta(days=170), work_done="Oil",
                                      next_due_date=today + timedelta(days=3))  # fmt: skip
    ServiceLog.objects.create(vehicle=other, service_date=today - timedelta(days=1),
                              work_done="Oil", next_due_date=today + timedelta(days=180))  # fmt: skip

    assert maintenance_tickets_sync() == 1
    assert maintenance_tickets_sync() == 0
    ticket = Ticket.objects.get()
    assert (ticket.auto_key, ticket.category, ticket.title) == (
        f"maintenance:{vehicle.pk}:{first.pk}", "maintenance", "Service due on KDA311A",
    )  # fmt: skip
    ticket_transition(ticket=ticket, to="resolved")
    assert maintenance_tickets_sync() == 0  # resolved for this plan: not opened again
    ServiceLog.objects.create(
        vehicle=vehicle, service_date=today, work_done="Oil", next_due_date=today + timedelta(days=2)
    )
    assert maintenance_tickets_sync() == 1  # a new plan, due soon again


@pytest.mark.django_db
def test_it_opens_one_device_check_ticket_per_silence(hub, account):
    silent, reporting = Device.objects.get(imei=KDA), Device.objects.get(imei=KDB)
    for device in (silent, reporting):
        device_transition(device=device, to=Lifecycle.ACTIVE, reason="fitted")
    now = timezone.now()
    beats = [Ev("heartbeat", silent.pk, now - timedelta(days=3), {"power_level": 5}),
             Ev("heartbeat", reporting.pk, now - timedelta(minutes=5), {"power_level": 6})]  # fmt: skip
    feed(beats, account_id=account.id)

    assert device_check_tickets_sync(now=now) == 1
    assert device_check_tickets_sync(now=now) == 0
    ticket = Ticket.objects.get()
    assert (ticket.auto_key, ticket.category, ticket.device_id) == (
        f"device_check:{silent.pk}",
        "device_check",
        silent.pk,
    )
    ticket_transition(ticket=ticket, to="resolved")
    assert device_check_tickets_sync(now=now) == 0  # the same silence, resolved by ops: left alone
    feed([Ev("heartbeat", silent.pk, now, {"power_level": 5})], account_id=account.id)  # it reports again…
    assert device_check_tickets_sync(now=now + timedelta(days=3)) == 2  # …and both fall silent: one each
    assert Ticket.objects.filter(auto_key=f"device_check:{silent.pk}").count() == 2


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_ticket_when_two_workers_race_on_the_same_alarms(monkeypatch):
    """Both workers read the same new alarms before either writes; the first inserts and holds its transaction open
    until the second's insert is seen waiting on it; the second then finds the ticket saw as much and changes
    nothing. Without the partial unique index there would be two tickets."""
    hub = setup_fleet(Account.objects.create(name="Race"))
    push_alarm(hub, imei=KDA, code="1", at=ago(3))
    push_alarm(hub, imei=KDA, code="1", at=ago(2))
    run()
    both_read = threading.Barrier(2, timeout=20)
    first_wrote = threading.Event()
    real_groups, real_upsert = automations.alarm_ticket_groups, automations.alarm_ticket_upsert

    def groups(**kwargs):
        found = real_groups(**kwargs)
        both_read.wait()
        return found

    def upsert(group):
        if threading.current_thread().name == "second":
            assert first_wrote.wait(20)
            return real_upsert(group)  # waits on the first's uncommitted row
        result = real_upsert(group)
        first_wrote.set()
        deadline = time.monotonic() + 20
        with connection.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0]:
                    break
                assert time.monotonic() < deadline, "the second worker never waited on the first's row"
                time.sleep(0.05)
        return result

    monkeypatch.setattr(automations, "alarm_ticket_groups", groups)
    monkeypatch.setattr(automations, "alarm_ticket_upsert", upsert)
    results: dict[str, object] = {}

    def worker() -> None:
        try:
            results[threading.current_thread().name] = alarm_tickets_sync()
        except Exception as exc:  # reported below, on the test's thread
            results[threading.current_thread().name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, name=name) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert results == {"first": {"opened": 1, "updated": 0}, "second": {"opened": 0, "updated": 0}}
    assert [(str(key).split(":")[-1], occurrences) for key, _, occurrences, _ in tickets()] == [("sos", 2)]


@pytest.mark.django_db(transaction=True)
def test_it_opens_no_duplicate_when_every_automation_runs_in_two_workers_at_once():
    account = Account.objects.create(name="Race")
    hub = setup_fleet(account)
    today = timezone.localdate()
    for imei in (KDA, KDB):
        vehicle = Device.objects.get(imei=imei).vehicle
        assert vehicle is not None
        ServiceLog.objects.create(vehicle=vehicle, service_date=date(2026, 1, 1), work_done="Oil",
                                  next_due_date=today)  # fmt: skip
        for minutes in (4, 3, 2):
            push_alarm(hub, imei=imei, code="44", at=ago(minutes))  # collisions
    for imei in ("861210600000313", "861210600000314"):  # active, never heard from
        device = Device.objects.create(imei=imei, account=account)
        device_transition(device=device, to=Lifecycle.ACTIVE, reason="fitted")
        Device.objects.filter(pk=device.pk).update(lifecycle_changed_at=datetime(2026, 1, 1, tzinfo=UTC))
    run()
    start = threading.Barrier(4, timeout=20)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(3):
                start.wait()  # every round, the four start together
                automations_run()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, name=f"w{i}") for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    keys = [str(key) for key, *_ in tickets()]
    assert len(keys) == len(set(keys)) == 6  # two collision, two maintenance and two device-check tickets
    assert {occurrences for key, _, occurrences, _ in tickets() if str(key).startswith("alarm:")} == {3}
