"""The immutable log: what arrived (events_raw), what it means (events_parsed), and who may send it.

events_raw is the source of truth. Its body columns are read-only and its rows can't be deleted or truncated,
in the database; only the parse-status columns change. Both log tables are range-partitioned by month
(see events/sql/partitions.sql); retention detaches a partition, it never deletes.
"""

from __future__ import annotations

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.db import models

from domain.models import Account, Device


class SourceKind(models.TextChoices):
    JIMI_IOTHUB = "jimi-iothub", "Jimi IoT Hub push (token + data_list)"
    JIMI_TSP = "jimi-tsp", "TrackSolid Pro push (msgType + data)"
    HMAC = "hmac", "Own sender, HMAC-signed JSON"
    # Not push sources: rows written by our own commands and polls go through the same log.
    CSV = "csv", "CSV import"
    JIMI_POLL = "jimi-poll", "Jimi Open API poll"
    OPS = "ops", "Ops action (an acknowledgement, an odometer reading, a driver assignment)"


PUSH_KINDS = (SourceKind.JIMI_IOTHUB, SourceKind.JIMI_TSP, SourceKind.HMAC)


class PushSource(models.Model):
    """Who may write to the log, and with which proof. Unknown devices fall under its account."""

    name = models.SlugField(max_length=64, unique=True, help_text="Appears in the push URL")
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, help_text="Devices first seen through this source are provisioned here"
    )
    secret = models.CharField(
        max_length=200, help_text="IoT Hub: the hub's token. TSP: the URL key. HMAC: the signing key."
    )
    allowed_cidrs = ArrayField(
        models.CharField(max_length=49),
        default=list,
        blank=True,
        help_text="Optional allow-list of sender networks, e.g. 47.88.0.0/16. Empty = any address.",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "events_push_sources"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class RawStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PARSED = "parsed", "Parsed"
    PARTIAL = "partial", "Parsed, some items failed"
    FAILED = "failed", "Failed"


# Columns a parse may update; every other column of events_raw is read-only in the database.
RAW_STATUS_FIELDS = ["status", "parser_version", "parsed_at", "parsed_count", "error"]


class RawEvent(models.Model):
    """One request (or one poll response, or one imported file chunk), verbatim.

    The table is partitioned by received_at, so its real primary key is (id, received_at); Django sees id.
    """

    id = models.BigAutoField(primary_key=True)
    received_at = models.DateTimeField(db_default=models.Func(function="now"))
    source = models.ForeignKey(PushSource, null=True, on_delete=models.PROTECT, db_constraint=False)
    source_kind = models.CharField(max_length=16, choices=SourceKind.choices)
    push_kind = models.CharField(max_length=64, help_text="IoT Hub push path, TSP msgType, poll method…")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField()
    status = models.CharField(max_length=8, choices=RawStatus.choices, default=RawStatus.PENDING)
    parser_version = models.CharField(max_length=64, blank=True)
    parsed_at = models.DateTimeField(null=True, blank=True)
    parsed_count = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "events_raw"
        managed = True
        # Viewing the log is not enough to re-run the parsers over it (admin "re-parse", superusers implicitly).
        permissions = [("reparse_rawevent", "Can re-parse raw events with the current parsers")]
        indexes = [
            # The admin's and reparse's filters: a source's rows of a kind, newest first.
            models.Index(fields=["source_kind", "push_kind", "received_at"], name="events_raw_kind_time"),
            # Failed / partial rows are few; reparse --status failed and the admin filter find them directly.
            models.Index(
                fields=["received_at"],
                name="events_raw_unhealthy",
                condition=models.Q(status__in=["failed", "partial"]),
            ),
        ]
        triggers = [
            pgtrigger.Protect(name="events_raw_no_delete", operation=pgtrigger.Delete),
            pgtrigger.ReadOnly(name="events_raw_body_read_only", exclude=RAW_STATUS_FIELDS),
            # Statement-level: a row-level protect does not stop TRUNCATE. Partitions get the same guard
            # when they are created (fleet_partition_month), because statement triggers are not inherited.
            pgtrigger.Trigger(
                name="events_raw_no_truncate",
                when=pgtrigger.Before,
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                func="PERFORM fleet_refuse_truncate(TG_TABLE_NAME); RETURN NULL;",
            ),
            # Wake the parser. Deferred to commit and acting once per transaction, so the job and its NOTIFY exist only
            # once the rows are visible; see events/sql/wake.sql for the race it closes (and docs/architecture.md).
            pgtrigger.Trigger(
                name="events_raw_wake_parser",
                when=pgtrigger.After,
                operation=pgtrigger.Insert,
                timing=pgtrigger.Deferred,
                func=(
                    "INSERT INTO events_raw_pending (raw_id, received_at) VALUES (NEW.id, NEW.received_at);"
                    "PERFORM fleet_wake_once('parse', 'events.parse_pending');"
                    "RETURN NULL;"
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"raw #{self.id} {self.source_kind}/{self.push_kind}"


class RawPending(models.Model):
    """Work-list of raw rows not yet parsed: the drain costs O(batch), never a scan of the log."""

    raw_id = models.BigIntegerField(primary_key=True)
    received_at = models.DateTimeField()

    class Meta:
        db_table = "events_raw_pending"

    def __str__(self) -> str:
        return f"pending raw #{self.raw_id}"


class ParsedEvent(models.Model):
    """A typed event. One raw row gives N of these; the same event pushed twice gives one (dedup_key).

    Partitioned by occurred_at (device time): the dedup key includes it, so the unique constraint can too.
    """

    id = models.BigAutoField(primary_key=True)
    raw_id = models.BigIntegerField()
    raw_received_at = models.DateTimeField()
    kind = models.CharField(max_length=24)
    account = models.ForeignKey(Account, on_delete=models.PROTECT)
    device = models.ForeignKey(Device, null=True, on_delete=models.PROTECT)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    parser_version = models.CharField(max_length=64)
    payload = models.JSONField()
    dedup_key = models.CharField(max_length=64)

    class Meta:
        db_table = "events_parsed"
        constraints = [
            models.UniqueConstraint(fields=["dedup_key", "occurred_at"], name="events_parsed_dedup"),
        ]
        indexes = [
            # Which events came from a raw row (reparse replaces them).
            models.Index(fields=["raw_id"], name="events_parsed_raw"),
            # A device's timeline (history, replay --device).
            models.Index(fields=["device", "occurred_at"], name="events_parsed_device_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.id}"


class PushRejection(models.Model):
    """Refused pushes per source and minute (bad credentials, disabled, not allowed): counted, never stored."""

    source_name = models.CharField(max_length=64)
    minute = models.DateTimeField()
    reason = models.CharField(max_length=32)
    count = models.IntegerField(default=0)

    class Meta:
        db_table = "events_push_rejections"
        constraints = [
            models.UniqueConstraint(fields=["source_name", "minute", "reason"], name="events_push_rejections_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source_name} {self.reason} x{self.count} @ {self.minute:%H:%M}"


class ContractCheck(models.Model):
    """One run of the daily contract check: did Jimi's responses still match our parser models?"""

    checked_at = models.DateTimeField()
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.SET_NULL)
    method = models.CharField(max_length=100, help_text="API method or push kind checked")
    ok = models.BooleanField()
    detail = models.TextField(blank=True)

    class Meta:
        db_table = "events_contract_checks"
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["ok", "checked_at"], name="events_contract_checks_ok_time")]

    def __str__(self) -> str:
        return f"{self.method} {'ok' if self.ok else 'DRIFT'} @ {self.checked_at:%Y-%m-%d %H:%M}"


class JimiCursor(models.Model):
    """How far each Open API poll of an account has got (events/jimi/services.py). A poll writes its responses to
    events_raw and moves its cursor in one transaction, so a restart resumes where the last committed poll ended:
    no window polled twice, none skipped. `key` is the IMEI for per-device polls (track backfill), else ''."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE)
    stream = models.CharField(max_length=32, help_text="locations, devices, trips, parking, mileage, alarms, obd…")
    key = models.CharField(max_length=17, blank=True, default="")
    position = models.DateTimeField(null=True, blank=True, help_text="Polled up to here (exclusive)")
    polled_at = models.DateTimeField(null=True, blank=True, help_text="Last poll that succeeded")
    calls = models.BigIntegerField(default=0, help_text="Calls that succeeded")
    error = models.TextField(blank=True, help_text="Why the last poll failed; empty once one succeeds")
    error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_jimi_cursors"
        ordering = ["account", "stream", "key"]
        constraints = [models.UniqueConstraint(fields=["account", "stream", "key"], name="events_jimi_cursors_key")]

    def __str__(self) -> str:
        return f"{self.stream}{f' {self.key}' if self.key else ''} of account {self.account_id}"
