"""Writes on the domain: device lifecycle, driver assignments, the HR roster, bulk device import.

The database is the authority on every rule here (the lifecycle FSM trigger, the assignment exclusion
constraints, the IMEI check); these services turn its refusals into exceptions a clerk can act on.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pghistory
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, transaction
from django.db.backends.postgresql.psycopg_any import DateTimeTZRange
from django.db.models import Q

from domain.models import (
    IMEI_VALIDATOR,
    LIFECYCLE_TRANSITIONS,
    Account,
    AssignmentSource,
    Device,
    Driver,
    DriverAssignment,
    Lifecycle,
    Vehicle,
)
from domain.plates import normalize_plate

# SQLSTATE of a plpgsql RAISE EXCEPTION, which is how the pgtrigger FSM trigger refuses a transition.
# psycopg 3 raises errors.RaiseException (a ProgrammingError), re-raised by Django as db.utils.ProgrammingError;
# we match the SQLSTATE rather than the class, which differs between psycopg 2 and 3.
RAISE_EXCEPTION_SQLSTATE = "P0001"


class DomainError(Exception):
    """A write the domain refuses, with a message meant for the person who asked for it."""


class LifecycleTransitionError(DomainError):
    pass


class AssignmentOverlapError(DomainError):
    pass


class DeviceImportError(DomainError):
    """The file as a whole cannot be read (not CSV, missing columns); row problems go in the report."""


# --- Device lifecycle ------------------------------------------------------------------------------------


def _history_context(user: Any, reason: str) -> dict[str, Any]:
    """pghistory context metadata; without a user we keep the one HistoryMiddleware put there."""
    return {"reason": reason} | ({"user": user.pk} if user is not None else {})


def lifecycle_allowed_from(state: str) -> list[str]:
    """The states a device in `state` may move to (LIFECYCLE_TRANSITIONS, which the DB trigger enforces)."""
    return [str(new) for old, new in LIFECYCLE_TRANSITIONS if old == state]


def _transition_refused(device: Device, to: str) -> LifecycleTransitionError:
    allowed = ", ".join(lifecycle_allowed_from(device.lifecycle)) or "nothing (final state)"
    return LifecycleTransitionError(
        f"IMEI {device.imei}: cannot go from {device.lifecycle} to {to}; allowed from {device.lifecycle}: {allowed}"
    )


def device_transition(*, device: Device, to: str, reason: str, user: Any = None) -> Device:
    """Move `device` to lifecycle `to`, recording who and why in the history context.

    The FSM trigger on domain_devices decides, against the row as it is in the database (so a stale
    `device` cannot sneak through); a same-state "transition" is refused here because it would only
    overwrite the reason of the real one.
    """
    reason = (reason or "").strip()
    if not reason:
        raise LifecycleTransitionError(f"IMEI {device.imei}: a reason is required to change the lifecycle")
    if to not in Lifecycle.values:
        raise LifecycleTransitionError(f"IMEI {device.imei}: {to!r} is not a lifecycle state")
    with pghistory.context(**_history_context(user, reason)):
        try:
            with transaction.atomic():
                updated = (
                    Device.objects.filter(pk=device.pk)
                    .exclude(lifecycle=to)
                    .update(lifecycle=to, lifecycle_reason=reason)
                )
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != RAISE_EXCEPTION_SQLSTATE:
                raise
            device.refresh_from_db()
            raise _transition_refused(device, to) from exc
    device.refresh_from_db()
    if not updated:
        raise LifecycleTransitionError(f"IMEI {device.imei}: already {device.lifecycle}")
    return device


# --- Driver assignments ----------------------------------------------------------------------------------


def _describe_period(assignment: DriverAssignment) -> str:
    period = assignment.period
    end = f"until {period.upper:%Y-%m-%d %H:%M}" if period.upper else "until further notice"
    return f"from {period.lower:%Y-%m-%d %H:%M} {end}"


def _overlap_error(*, vehicle: Vehicle, driver: Driver, period: DateTimeTZRange) -> AssignmentOverlapError:
    clash = DriverAssignment.objects.filter(period__overlap=period, vehicle=vehicle).select_related("driver").first()
    if clash is not None:
        return AssignmentOverlapError(
            f"{vehicle.plate} already has {clash.driver} {_describe_period(clash)}; end that assignment first"
        )
    clash = DriverAssignment.objects.filter(period__overlap=period, driver=driver).select_related("vehicle").first()
    where = f"on {clash.vehicle.plate} {_describe_period(clash)}" if clash else "for an overlapping period"
    return AssignmentOverlapError(f"{driver} is already assigned {where}; end that assignment first")


def vehicle_assign_driver(
    *,
    vehicle: Vehicle,
    driver: Driver,
    start: datetime,
    end: datetime | None = None,
    note: str = "",
    source: str = AssignmentSource.MANUAL,
) -> DriverAssignment:
    """Put `driver` on `vehicle` for [start, end); an open end means until further notice.

    The two exclusion constraints refuse any overlap, for the vehicle and for the driver, even between
    two clerks booking at the same moment; we only name the clash.
    """
    if end is not None and end <= start:
        raise ValueError(f"an assignment must end after it starts ({start:%Y-%m-%d %H:%M})")
    period = DateTimeTZRange(start, end, "[)")
    try:
        with transaction.atomic():
            return DriverAssignment.objects.create(
                vehicle=vehicle, driver=driver, period=period, note=note, source=source
            )
    except IntegrityError as exc:
        raise _overlap_error(vehicle=vehicle, driver=driver, period=period) from exc


# --- The HR roster ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterRecord:
    """One driver row of an HR roster (events: kind driver_record), as of `extracted_at`."""

    hr_id: str
    name: str
    extracted_at: datetime
    phone: str | None = None
    licence_number: str | None = None
    active: bool = True
    vehicle_plate: str | None = None
    assigned_from: datetime | None = None
    assigned_until: datetime | None = None


def roster_record_apply(record: RosterRecord) -> list[str]:
    """Apply one roster row to the domain; returns what it did, in words (empty: nothing to change).

    - The driver is found by HR id (created when new) and takes the row's name, phone, licence and active flag —
      unless a roster extracted later already set it (`Driver.hr_synced_at`): an older roster arriving late, or a
      replay going through the log in order, changes nothing the newer one set. Absence from a roster changes
      nothing (rosters may be partial); HR deactivates a driver with `active: false`.
    - With a vehicle plate, the driver is on that vehicle for [assigned_from (else extracted_at), assigned_until).
      The roster owns the assignments it made (`source = hr`) and no others: an HR assignment of this driver or this
      vehicle that overlaps and starts earlier is ended at the new start, one that starts at or after it is replaced;
      a clerk's assignment in the way is left alone and the roster's is refused (AssignmentOverlapError). An unknown
      plate is refused: vehicles are not created from HR data.
    """
    done: list[str] = []
    driver = Driver.objects.filter(hr_id=record.hr_id).first()
    if driver is not None and driver.hr_synced_at is not None and record.extracted_at < driver.hr_synced_at:
        return done
    fields = {"name": record.name, "phone": record.phone or "", "licence_number": record.licence_number or "",
              "active": record.active}  # fmt: skip
    with pghistory.context(reason=f"HR roster of {record.extracted_at:%Y-%m-%d %H:%M}"):
        with transaction.atomic():
            if driver is None:
                driver = Driver.objects.create(hr_id=record.hr_id, hr_synced_at=record.extracted_at, **fields)
                done.append(f"driver {record.hr_id} created")
            else:
                changed = [key for key, value in fields.items() if getattr(driver, key) != value]
                for key in changed:
                    setattr(driver, key, fields[key])
                if changed:
                    done.append(f"driver {record.hr_id}: {', '.join(changed)}")
                driver.hr_synced_at = record.extracted_at
                driver.save(update_fields=[*changed, "hr_synced_at"])
        if record.vehicle_plate:  # its own transaction: a refused assignment keeps the driver's update
            with transaction.atomic():
                done += _roster_assignment(driver, record)
    return done


def _roster_assignment(driver: Driver, record: RosterRecord) -> list[str]:
    try:
        plate = normalize_plate(record.vehicle_plate or "")
    except ValueError as exc:
        raise DomainError(f"HR {record.hr_id}: {record.vehicle_plate!r} is not a number plate") from exc
    vehicle = Vehicle.objects.filter(plate=plate).first()
    if vehicle is None:
        raise DomainError(f"HR {record.hr_id}: no vehicle {plate} (vehicles are not created from HR data)")
    start = record.assigned_from or record.extracted_at
    end = record.assigned_until
    if end is not None and end <= start:
        raise DomainError(f"HR {record.hr_id}: assigned_until is not after assigned_from")
    period = DateTimeTZRange(start, end, "[)")
    if DriverAssignment.objects.filter(driver=driver, vehicle=vehicle, period=period).exists():
        return []
    done = []
    theirs = DriverAssignment.objects.filter(
        Q(driver=driver) | Q(vehicle=vehicle), source=AssignmentSource.HR, period__overlap=period
    ).select_related("driver", "vehicle")
    for old in theirs:
        if old.period.lower < start:
            old.period = DateTimeTZRange(old.period.lower, start, "[)")
            old.save(update_fields=["period"])
            done.append(f"{old.driver} off {old.vehicle} from {start:%Y-%m-%d}")
        else:
            old.delete()
            done.append(f"{old.driver} on {old.vehicle} replaced")
    vehicle_assign_driver(vehicle=vehicle, driver=driver, start=start, end=end, note="HR roster",
                          source=AssignmentSource.HR)  # fmt: skip
    done.append(f"{driver} on {vehicle} from {start:%Y-%m-%d}")
    return done


# --- Bulk device import ----------------------------------------------------------------------------------

IMPORT_REQUIRED_COLUMNS = ("imei", "model", "account")
# Optional columns; a blank cell never clears what the device already has.
IMPORT_OPTIONAL_COLUMNS = ("plate", "sim_number", "iccid", "name")


class RowAction:
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    ERROR = "error"


@dataclass
class ImportRow:
    line: int
    imei: str
    action: str = RowAction.UNCHANGED
    messages: list[str] = field(default_factory=list)

    @property
    def is_error(self) -> bool:
        return self.action == RowAction.ERROR


@dataclass
class ImportReport:
    dry_run: bool
    rows: list[ImportRow] = field(default_factory=list)

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action)

    @property
    def counts(self) -> dict[str, int]:
        actions = (RowAction.CREATE, RowAction.UPDATE, RowAction.UNCHANGED, RowAction.ERROR)
        return {action: self.count(action) for action in actions}

    @property
    def has_errors(self) -> bool:
        return self.count(RowAction.ERROR) > 0


def devices_import_csv(*, file_text: str, dry_run: bool, user: Any = None) -> ImportReport:
    """Create and update devices from a CSV with header `imei,model,account[,plate,sim_number,iccid,name]`.

    Semantics (what the admin preview promises):
    - an unknown IMEI is created (lifecycle provisioned); a known IMEI is updated with the non-blank
      cells of its row, or reported unchanged; the lifecycle is never touched by an import;
    - a plate is normalised and its vehicle created when unknown; a blank plate leaves the vehicle alone;
    - a row is refused (action "error", nothing written for it) for a bad IMEI, an unknown account, a
      plate that is not one, an IMEI that appears on more than one line of the file (we cannot tell which
      line is right), a known device under another account (moving accounts moves its event history, not
      an import's business) or a decommissioned device;
    - valid rows are written, error rows skipped and listed; each row in its own savepoint, so a row the
      database refuses cannot take the others with it;
    - a dry run does exactly the same work inside a transaction that is rolled back, so the preview is
      what a commit of the same file will do (barring concurrent edits).
    """
    rows = _read_import_rows(file_text)
    report = ImportReport(dry_run=dry_run)
    importer = _DeviceImporter(rows)
    with pghistory.context(**_history_context(user, "CSV import")), transaction.atomic():
        for line, cells in rows:
            report.rows.append(importer.import_row(line, cells))
        if dry_run:
            transaction.set_rollback(True)
    return report


def _read_import_rows(file_text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, cells by lower-cased column) for every non-blank data row; header problems raise."""
    reader = csv.reader(io.StringIO(file_text.lstrip("\ufeff")))  # Excel prefixes UTF-8 files with a BOM.
    header = [column.strip().lower() for column in next(reader, [])]
    missing = [column for column in IMPORT_REQUIRED_COLUMNS if column not in header]
    if missing:
        raise DeviceImportError(
            f"the header must name the columns {', '.join(IMPORT_REQUIRED_COLUMNS)}"
            f" (optional: {', '.join(IMPORT_OPTIONAL_COLUMNS)}); missing: {', '.join(missing)}"
        )
    rows = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue  # spreadsheets export trailing empty rows
        cells = {column: (values[i].strip() if i < len(values) else "") for i, column in enumerate(header)}
        rows.append((reader.line_num, cells))
    return rows


class _DeviceImporter:
    """Validates and applies one row at a time, with the lookups shared across the file."""

    def __init__(self, rows: list[tuple[int, dict[str, str]]]) -> None:
        accounts = list(Account.objects.all())
        # Clerks type "nairobi" for "Nairobi"; an exact name still wins over a case-insensitive one.
        self.accounts = {account.name.casefold(): account for account in accounts}
        self.accounts.update({account.name: account for account in accounts})
        lines_by_imei: dict[str, list[int]] = {}
        for line, cells in rows:
            lines_by_imei.setdefault(cells.get("imei", ""), []).append(line)
        self.duplicates = {imei: lines for imei, lines in lines_by_imei.items() if imei and len(lines) > 1}

    def import_row(self, line: int, cells: dict[str, str]) -> ImportRow:
        row = ImportRow(line=line, imei=cells.get("imei", ""))
        account, plate = self._validate(row, cells)
        if row.messages:
            row.action = RowAction.ERROR
            return row
        assert account is not None  # an unknown account is one of the messages above
        try:
            with transaction.atomic():
                self._apply(row, cells, account, plate)
        except (ValidationError, IntegrityError) as exc:
            row.action = RowAction.ERROR
            row.messages = _error_messages(exc)
        return row

    def _validate(self, row: ImportRow, cells: dict[str, str]) -> tuple[Account | None, str]:
        try:
            IMEI_VALIDATOR(row.imei)
        except ValidationError:
            row.messages.append(f"IMEI {row.imei!r} is not 14 to 17 digits")
        if row.imei in self.duplicates:
            lines = ", ".join(str(n) for n in self.duplicates[row.imei])
            row.messages.append(f"IMEI {row.imei} is on lines {lines} of this file; keep one")
        name = cells.get("account", "")
        account = self.accounts.get(name) or self.accounts.get(name.casefold())
        if account is None:
            row.messages.append(f"unknown account {name!r}")
        plate = cells.get("plate", "")
        if plate:
            try:
                plate = normalize_plate(plate)
            except ValueError:
                row.messages.append(f"{plate!r} is not a number plate")
        return account, plate

    def _apply(self, row: ImportRow, cells: dict[str, str], account: Account, plate: str) -> None:
        device = Device.objects.select_related("account").filter(imei=row.imei).first()
        if device is not None and device.account_id != account.pk:
            raise ValidationError(f"already registered under account {device.account}; not moved")
        if device is not None and device.lifecycle == Lifecycle.DECOMMISSIONED:
            raise ValidationError("decommissioned; a decommissioned device is not updated")
        changes: dict[str, Any] = {
            key: cells[key] for key in ("model", "sim_number", "iccid", "name") if cells.get(key)
        }
        if plate:
            vehicle, created = Vehicle.objects.get_or_create(plate=plate)
            if created:
                row.messages.append(f"new vehicle {plate}")
            changes["vehicle"] = vehicle
        if device is None:
            device = Device(imei=row.imei, account=account, **changes)
            device.full_clean(validate_unique=False, validate_constraints=False)
            device.save()
            row.action = RowAction.CREATE
            return
        changed = [key for key, value in changes.items() if getattr(device, key) != value]
        if not changed:
            return
        row.messages.insert(0, "changed: " + ", ".join(changed))
        for key in changed:
            setattr(device, key, changes[key])
        device.full_clean(validate_unique=False, validate_constraints=False)
        # Only the imported fields: a whole-row save could write back a lifecycle changed meanwhile.
        device.save(update_fields=changed)
        row.action = RowAction.UPDATE


def _error_messages(exc: ValidationError | IntegrityError) -> list[str]:
    if isinstance(exc, IntegrityError):
        return [f"refused by the database: {exc}".strip()]
    if hasattr(exc, "error_dict"):
        return [f"{name}: {message}" for name, messages in exc.message_dict.items() for message in messages]
    return list(exc.messages)
