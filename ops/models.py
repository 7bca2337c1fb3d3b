"""Operations workflow: cost rates, tickets (with comments), the service log and the dispatch log.

Every table here is ops' own record of what people did, written by ops.services (its single writer) and kept
whole by django-pghistory. What ops does to *derived* state — an alarm acknowledgement, an odometer reading or
correction, a manual driver assignment — is not here: it is an event appended to the log (ops/events.py) and
projected like any other, so a replay keeps it (docs/architecture.md, "Ops actions go through the log").
"""

from __future__ import annotations

import pghistory
import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import F, Q

from domain.models import CostCentre, Device, Driver, Vehicle


class CostRate(models.Model):
    """What a kilometre costs a cost centre from a date on (fuel, wear, lease…); the latest rate in force
    at a trip's start applies."""

    cost_centre = models.ForeignKey(CostCentre, on_delete=models.CASCADE, related_name="cost_rates")
    valid_from = models.DateField()
    per_km = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="KES")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "ops_cost_rates"
        ordering = ["cost_centre", "-valid_from"]
        constraints = [
            models.UniqueConstraint(fields=["cost_centre", "valid_from"], name="ops_cost_rates_one_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.cost_centre}: {self.per_km} {self.currency}/km from {self.valid_from}"


# --- Tickets ---------------------------------------------------------------------------------------------------


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    WAITING = "waiting", "Waiting"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


# The allowed status moves; the database refuses every other one (the FSM trigger on ops_tickets).
TICKET_TRANSITIONS: tuple[tuple[str, str], ...] = (
    (TicketStatus.OPEN, TicketStatus.IN_PROGRESS),
    (TicketStatus.OPEN, TicketStatus.RESOLVED),  # a false alarm, or fixed at once
    (TicketStatus.IN_PROGRESS, TicketStatus.WAITING),  # on a part, a garage, the driver…
    (TicketStatus.WAITING, TicketStatus.IN_PROGRESS),
    (TicketStatus.IN_PROGRESS, TicketStatus.RESOLVED),
    (TicketStatus.WAITING, TicketStatus.RESOLVED),
    (TicketStatus.RESOLVED, TicketStatus.IN_PROGRESS),  # re-opened: the fix did not hold
    (TicketStatus.RESOLVED, TicketStatus.CLOSED),
)
# Until resolved a ticket is "open" in the wide sense: automations update it rather than open another.
TICKET_OPEN_STATUSES: tuple[str, ...] = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING)


class TicketCategory(models.TextChoices):
    ALARM = "alarm", "Alarm"
    MAINTENANCE = "maintenance", "Maintenance"
    DEVICE_CHECK = "device_check", "Device check"
    INCIDENT = "incident", "Incident"
    OTHER = "other", "Other"


class TicketPriority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


# The SLA clock, kept by the database whoever writes: every status change is stamped; time spent `waiting` (on
# someone outside ops) is added to the SLA deadline when the ticket leaves that status; resolving and closing are
# stamped, and re-opening a resolved ticket clears its resolution time.
TICKET_CLOCK_FUNC = """
NEW.status_changed_at := now();
IF OLD.status = 'waiting' AND NEW.sla_due_at IS NOT NULL THEN
    NEW.sla_due_at := NEW.sla_due_at + (now() - OLD.status_changed_at);
END IF;
IF NEW.status = 'resolved' THEN
    NEW.resolved_at := now();
ELSIF NEW.status <> 'closed' THEN
    NEW.resolved_at := NULL;
END IF;
IF NEW.status = 'closed' THEN
    NEW.closed_at := now();
END IF;
RETURN NEW;
"""


@pghistory.track()
class Ticket(models.Model):
    """A piece of ops work about a vehicle, a device or an alarm, moving open → in progress ⇄ waiting → resolved →
    closed (TICKET_TRANSITIONS, enforced by a database trigger) against an SLA deadline.

    `auto_key` names what an automation opened the ticket for ("alarm:<vehicle>:<type>", "maintenance:<vehicle>",
    "device_check:<device>"): at most one ticket per key is open at a time (a partial unique index), so two workers
    racing on the same alarm update one ticket instead of opening two.
    """

    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=16, choices=TicketCategory.choices, default=TicketCategory.OTHER)
    priority = models.CharField(max_length=8, choices=TicketPriority.choices, default=TicketPriority.NORMAL)
    status = models.CharField(max_length=16, choices=TicketStatus.choices, default=TicketStatus.OPEN)
    vehicle = models.ForeignKey(Vehicle, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    driver = models.ForeignKey(Driver, null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets")
    # The alarm (a state_alarms row) by its parsed event: no foreign key, since a replay rebuilds that table.
    alarm_parsed_id = models.BigIntegerField("alarm event", null=True, blank=True)
    alarm_type = models.CharField(max_length=64, blank=True, help_text="The alarm's normalised name")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField("due", null=True, blank=True, help_text="When ops promised it (optional)")
    opened_at = models.DateTimeField(db_default=models.Func(function="now"))
    status_changed_at = models.DateTimeField(db_default=models.Func(function="now"))
    sla_due_at = models.DateTimeField(
        "SLA deadline", null=True, blank=True, help_text="Set from the priority when opened; waiting time is added"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    auto_key = models.CharField(max_length=100, null=True, blank=True, editable=False)
    occurrences = models.PositiveIntegerField(default=1, help_text="Automations: how often the cause was seen")
    last_seen_at = models.DateTimeField(null=True, blank=True, help_text="Automations: the cause last seen")

    class Meta:
        db_table = "ops_tickets"
        ordering = ["-opened_at", "-id"]
        indexes = [
            # The clerks' working list: open tickets by deadline; and a vehicle's tickets.
            models.Index(fields=["status", "sla_due_at"], name="ops_tickets_status_sla"),
            models.Index(fields=["vehicle", "opened_at"], name="ops_tickets_vehicle_time"),
            models.Index(fields=["alarm_parsed_id"], name="ops_tickets_alarm"),
            # Automations: what the tickets of a key (open or not) have seen.
            models.Index(fields=["auto_key", "last_seen_at"], name="ops_tickets_auto_seen"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["auto_key"],
                condition=Q(status__in=TICKET_OPEN_STATUSES),
                name="ops_tickets_one_open_per_key",
            ),
        ]
        triggers = [
            pgtrigger.FSM(
                name="ops_ticket_status_fsm",
                field="status",
                transitions=[(str(a), str(b)) for a, b in TICKET_TRANSITIONS],
            ),
            pgtrigger.Trigger(
                name="ops_ticket_clock",
                when=pgtrigger.Before,
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__status__df=pgtrigger.F("new__status")),
                func=TICKET_CLOCK_FUNC,
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


@pghistory.track()
class TicketComment(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    body = models.TextField()
    created_at = models.DateTimeField(db_default=models.Func(function="now"))

    class Meta:
        db_table = "ops_ticket_comments"
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment on #{self.ticket_id} by {self.author or 'automation'}"


# --- Service log and dispatch log ---------------------------------------------------------------------------------


@pghistory.track()
class ServiceLog(models.Model):
    """A service done on a vehicle, and when the next one is due: by odometer, by date, or both (whichever comes
    first). The vehicle's latest entry decides what is due (ops.selectors.maintenance_due)."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="service_logs")
    service_date = models.DateField()
    odometer_km = models.FloatField("odometer (km)", null=True, blank=True)
    work_done = models.TextField()
    cost = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, default="KES")
    next_due_km = models.FloatField("next due at (km)", null=True, blank=True)
    next_due_date = models.DateField("next due on", null=True, blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=models.Func(function="now"))

    class Meta:
        db_table = "ops_service_logs"
        ordering = ["-service_date", "-id"]
        indexes = [models.Index(fields=["vehicle", "service_date"], name="ops_service_logs_vehicle_date")]
        constraints = [
            models.CheckConstraint(condition=Q(cost__isnull=True) | Q(cost__gte=0), name="ops_service_cost_positive"),
            models.CheckConstraint(
                condition=Q(odometer_km__isnull=True) | Q(odometer_km__gte=0), name="ops_service_odometer_positive"
            ),
            models.CheckConstraint(
                condition=Q(next_due_km__isnull=True)
                | Q(odometer_km__isnull=True)
                | Q(next_due_km__gt=F("odometer_km")),
                name="ops_service_next_due_km_ahead",
            ),
            models.CheckConstraint(
                condition=Q(next_due_date__isnull=True) | Q(next_due_date__gt=F("service_date")),
                name="ops_service_next_due_date_ahead",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vehicle} serviced {self.service_date}"


@pghistory.track()
class DispatchLog(models.Model):
    """A vehicle sent somewhere with a driver: planned times, then the actual ones as they happen."""

    vehicle = models.ForeignKey(Vehicle, on_delete=models.PROTECT, related_name="dispatches")
    driver = models.ForeignKey(Driver, null=True, blank=True, on_delete=models.SET_NULL, related_name="dispatches")
    destination = models.CharField(max_length=300)
    planned_departure = models.DateTimeField()
    planned_arrival = models.DateTimeField(null=True, blank=True)
    actual_departure = models.DateTimeField(null=True, blank=True)
    actual_arrival = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(db_default=models.Func(function="now"))

    class Meta:
        db_table = "ops_dispatch_logs"
        ordering = ["-planned_departure", "-id"]
        indexes = [models.Index(fields=["vehicle", "planned_departure"], name="ops_dispatch_vehicle_time")]
        constraints = [
            models.CheckConstraint(
                condition=Q(planned_arrival__isnull=True) | Q(planned_arrival__gt=F("planned_departure")),
                name="ops_dispatch_planned_order",
            ),
            models.CheckConstraint(
                condition=Q(actual_arrival__isnull=True)
                | (Q(actual_departure__isnull=False) & Q(actual_arrival__gt=F("actual_departure"))),
                name="ops_dispatch_actual_order",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vehicle} → {self.destination} {self.planned_departure:%Y-%m-%d %H:%M}"
