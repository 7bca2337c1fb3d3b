"""Contracts of the ops write API (ops/api.py): `XxxIn` what a client sends, `XxxOut` what it gets back."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from ninja import Field, Schema
from pydantic import StringConstraints

from ops.models import ServiceLog, Ticket, TicketCategory, TicketComment, TicketPriority, TicketStatus
from state.dashboards.schemas import FleetMoment

# Free text from a client: bounded, and never a NUL (PostgreSQL text cannot hold one; it would be a 500).
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000, pattern=r"^[^\x00]*$")]
Body = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000, pattern=r"^[^\x00]*$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Plate = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32, pattern=r"^[^\x00]*$")]
Username = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150, pattern=r"^[^\x00]*$")]
ImeiText = Annotated[str, StringConstraints(pattern=r"^\d{14,17}$")]
Km = Annotated[float, Field(ge=0, le=10_000_000)]


class ActionOut(Schema):
    """An ops action appended to the log: it is projected within the worker's wake-up (a replay keeps it)."""

    raw_id: int = Field(..., description="The events_raw row the action was written as")
    detail: str


class AcknowledgeIn(Schema):
    note: Note = ""


class TicketIn(Schema):
    title: Title
    category: TicketCategory = TicketCategory.OTHER
    priority: TicketPriority = TicketPriority.NORMAL
    description: Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")] = ""
    plate: Plate | None = Field(None, description="The vehicle, any spacing or case")
    imei: ImeiText | None = Field(None, description="The device")
    driver_id: int | None = None
    alarm_id: int | None = Field(None, description="The alarm (its parsed event id, as the alarms list shows it)")
    assignee: Username | None = Field(None, description="Username of the person to work on it")
    due_at: FleetMoment | None = None


class TicketUpdateIn(Schema):
    """Only the fields given change. `status` moves the ticket (the database refuses a move the workflow does not
    allow: 409); `note` is added to the comment thread with it."""

    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")] | None = None
    priority: TicketPriority | None = None
    assignee: Username | None = Field(None, description="Username; an empty string unassigns")
    due_at: FleetMoment | None = None
    status: TicketStatus | None = None
    note: Note = ""


class CommentIn(Schema):
    body: Body


class CommentOut(Schema):
    id: int
    author: str | None
    body: str
    created_at: datetime

    @staticmethod
    def resolve_author(comment: TicketComment) -> str | None:
        return comment.author.get_username() if comment.author else None


class TicketOut(Schema):
    id: int
    title: str
    description: str
    category: TicketCategory
    priority: TicketPriority
    status: TicketStatus
    plate: str | None
    imei: str | None
    driver: str | None
    alarm_id: int | None
    alarm_type: str
    assignee: str | None
    due_at: datetime | None
    opened_at: datetime
    sla_due_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    allowed_moves: list[TicketStatus]
    comments: list[CommentOut]

    @staticmethod
    def resolve_plate(ticket: Ticket) -> str | None:
        return ticket.vehicle.plate if ticket.vehicle else None

    @staticmethod
    def resolve_imei(ticket: Ticket) -> str | None:
        return ticket.device.imei if ticket.device else None

    @staticmethod
    def resolve_driver(ticket: Ticket) -> str | None:
        return ticket.driver.name if ticket.driver else None

    @staticmethod
    def resolve_alarm_id(ticket: Ticket) -> int | None:
        return ticket.alarm_parsed_id

    @staticmethod
    def resolve_assignee(ticket: Ticket) -> str | None:
        return ticket.assignee.get_username() if ticket.assignee else None

    @staticmethod
    def resolve_allowed_moves(ticket: Ticket) -> list[str]:
        from ops.services import ticket_allowed_from

        return ticket_allowed_from(ticket.status)

    @staticmethod
    def resolve_comments(ticket: Ticket) -> list[TicketComment]:
        return list(ticket.comments.select_related("author"))


class OdometerIn(Schema):
    odometer_km: Km
    read_at: FleetMoment | None = Field(None, description="When the odometer showed it (default: now)")
    source: Literal["reading", "correction"] = "reading"
    note: Note = ""


class ServiceIn(Schema):
    service_date: date
    work_done: Body
    odometer_km: Km | None = None
    cost: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "KES"
    next_due_km: Km | None = None
    next_due_date: date | None = None


class ServiceOut(Schema):
    id: int
    plate: str
    service_date: date
    odometer_km: float | None
    work_done: str
    cost: Decimal | None
    currency: str
    next_due_km: float | None
    next_due_date: date | None

    @staticmethod
    def resolve_plate(entry: ServiceLog) -> str:
        return entry.vehicle.plate
