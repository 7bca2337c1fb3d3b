"""Business identity: Jimi accounts, vehicles, devices and their lifecycle, drivers, cost centres, cities.

Lifecycle (what ops did to a device) is stored and enforced by the database; operational state (moving,
parked, offline…) is derived from fixes at read time and never stored here.
"""

from __future__ import annotations

from typing import Any

import pghistory
import pgtrigger
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateTimeRangeField, RangeOperators
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from domain.plates import normalize_plate

IMEI_VALIDATOR = RegexValidator(r"^\d{14,17}$", "An IMEI is 14 to 17 digits.")


class JimiNode(models.TextChoices):
    """TrackSolid Pro Open API nodes; an account only works against its own node."""

    HK = "hk", "TSP Asia (hk-open.tracksolidpro.com)"
    EU = "eu", "TSP EU (eu-open.tracksolidpro.com)"
    US = "us", "TSP US (us-open.tracksolidpro.com)"
    TS = "ts", "Legacy TrackSolid (open.10000track.com)"


@pghistory.track()
class Account(models.Model):
    """A Jimi sub-account. Every device, and every event, belongs to exactly one."""

    name = models.CharField(max_length=100, unique=True)
    jimi_account = models.CharField("Jimi account id", max_length=100, blank=True)
    api_node = models.CharField("API node", max_length=8, choices=JimiNode.choices, default=JimiNode.HK)
    credential_ref = models.CharField(
        "credential reference",
        max_length=200,
        blank=True,
        help_text="Name of the secret holding the app key/secret (an environment variable), never the secret.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "domain_accounts"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@pghistory.track()
class CostCentre(models.Model):
    name = models.CharField(max_length=100, unique=True)
    code = models.CharField(max_length=32, blank=True)

    class Meta:
        db_table = "domain_cost_centres"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


@pghistory.track()
class AssignedCity(models.Model):
    name = models.CharField(max_length=100, unique=True)
    country_code = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2, e.g. KE, UG")

    class Meta:
        db_table = "domain_assigned_cities"
        ordering = ["name"]
        verbose_name_plural = "assigned cities"

    def __str__(self) -> str:
        return self.name


@pghistory.track()
class Vehicle(models.Model):
    """A vehicle, identified by its plate, stored normalised (see domain.plates.normalize_plate)."""

    plate = models.CharField(max_length=16, unique=True)
    model = models.CharField(max_length=100, blank=True)
    depot = models.CharField(max_length=100, blank=True)
    cost_centre = models.ForeignKey(CostCentre, null=True, blank=True, on_delete=models.SET_NULL)
    assigned_city = models.ForeignKey(AssignedCity, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "domain_vehicles"
        ordering = ["plate"]
        constraints = [
            # The one normal form: upper-case letters and digits only (what normalize_plate returns).
            models.CheckConstraint(condition=Q(plate__regex=r"^[A-Z0-9]+$"), name="vehicle_plate_normalised"),
        ]

    def __str__(self) -> str:
        return self.plate

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.plate = normalize_plate(self.plate)
        super().save(*args, **kwargs)


class Lifecycle(models.TextChoices):
    PROVISIONED = "provisioned", "Provisioned"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


# The allowed lifecycle transitions; the database refuses every other one (trigger below).
LIFECYCLE_TRANSITIONS: tuple[tuple[str, str], ...] = (
    (Lifecycle.PROVISIONED, Lifecycle.ACTIVE),
    (Lifecycle.ACTIVE, Lifecycle.SUSPENDED),
    (Lifecycle.SUSPENDED, Lifecycle.ACTIVE),
    (Lifecycle.SUSPENDED, Lifecycle.DECOMMISSIONED),
)


@pghistory.track()
class Device(models.Model):
    """A tracker. Its lifecycle moves only along LIFECYCLE_TRANSITIONS, enforced by a database trigger."""

    imei = models.CharField("IMEI", max_length=17, unique=True, validators=[IMEI_VALIDATOR])
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="devices")
    vehicle = models.ForeignKey(Vehicle, null=True, blank=True, on_delete=models.SET_NULL, related_name="devices")
    name = models.CharField(max_length=100, blank=True, help_text="Jimi deviceName")
    model = models.CharField(max_length=50, blank=True, help_text="e.g. VL802, JC450Pro")
    sim_number = models.CharField("SIM number", max_length=32, blank=True)
    iccid = models.CharField("ICCID", max_length=22, blank=True)
    lifecycle = models.CharField(max_length=16, choices=Lifecycle.choices, default=Lifecycle.PROVISIONED)
    lifecycle_changed_at = models.DateTimeField(auto_now_add=True)
    lifecycle_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "domain_devices"
        ordering = ["imei"]
        constraints = [
            models.CheckConstraint(condition=Q(imei__regex=r"^\d{14,17}$"), name="device_imei_digits"),
        ]
        triggers = [
            pgtrigger.FSM(
                name="device_lifecycle_fsm",
                field="lifecycle",
                transitions=[(str(a), str(b)) for a, b in LIFECYCLE_TRANSITIONS],
            ),
            # The database stamps the time of every lifecycle change, whoever issues it.
            pgtrigger.Trigger(
                name="device_lifecycle_stamp",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__lifecycle__df=pgtrigger.F("new__lifecycle")),
                func="NEW.lifecycle_changed_at = now(); RETURN NEW;",
            ),
        ]

    def __str__(self) -> str:
        return self.imei


@pghistory.track()
class Driver(models.Model):
    name = models.CharField(max_length=200)
    phone = models.CharField(max_length=32, blank=True)
    licence_number = models.CharField(max_length=50, blank=True)
    hr_id = models.CharField("HR id", max_length=50, unique=True, null=True, blank=True)
    active = models.BooleanField(default=True)
    hr_synced_at = models.DateTimeField(
        "HR roster of", null=True, blank=True, editable=False,
        help_text="The extraction time of the HR roster that last set this driver (an older one changes nothing)",
    )  # fmt: skip

    class Meta:
        db_table = "domain_drivers"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AssignmentSource(models.TextChoices):
    MANUAL = "manual", "Manual (a clerk)"
    HR = "hr", "HR roster"


@pghistory.track()
class DriverAssignment(models.Model):
    """A driver on a vehicle for a time range. Neither a vehicle nor a driver is ever double-booked.

    `source`: who made it. The HR roster replaces what it made itself (domain.services.roster_record_apply) and
    never touches a clerk's assignment."""

    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="assignments")
    vehicle = models.ForeignKey(Vehicle, on_delete=models.CASCADE, related_name="assignments")
    period = DateTimeRangeField(help_text="[start, end); an open end means until further notice")
    note = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=8, choices=AssignmentSource.choices, default=AssignmentSource.MANUAL)

    class Meta:
        db_table = "domain_driver_assignments"
        ordering = ["-period"]
        constraints = [
            ExclusionConstraint(
                name="driver_assignment_vehicle_no_overlap",
                expressions=[("vehicle", RangeOperators.EQUAL), ("period", RangeOperators.OVERLAPS)],
                violation_error_message="This vehicle already has a driver for an overlapping period.",
            ),
            ExclusionConstraint(
                name="driver_assignment_driver_no_overlap",
                expressions=[("driver", RangeOperators.EQUAL), ("period", RangeOperators.OVERLAPS)],
                violation_error_message="This driver is already assigned to a vehicle for an overlapping period.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.driver} on {self.vehicle}"
