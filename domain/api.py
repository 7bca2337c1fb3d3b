"""The domain's API routers. Scopes are declared where fleet/api.py mounts them (the domain cannot import fleet):

- `router`: reads of business identity (mounted with read:fleet);
- `admin_router`: lifecycle transitions and provisioning (mounted with admin:fleet).

In a handler, `request.auth` is the caller (fleet.auth.Principal: `.user`, `.scopes`).
"""

# No `from __future__ import annotations`: ninja reads these signatures through @paginate's wrapper, whose
# module cannot resolve string annotations.

from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest
from ninja import Path, Query, Router, Schema, Status
from ninja.pagination import LimitOffsetPagination, paginate
from pydantic import Field

from domain.models import Device
from domain.plates import plate_fragment
from domain.schemas import DeviceFiltersIn, DeviceOut, ErrorOut, ImeiText, LifecycleIn
from domain.services import LifecycleTransitionError, device_transition

router = Router(tags=["fleet"])
admin_router = Router(tags=["fleet admin"])

DEVICE_PAGE_MAX = 500


class DevicePage(LimitOffsetPagination):
    class Input(Schema):
        limit: int = Field(100, ge=1, le=DEVICE_PAGE_MAX)
        # Bounded: PostgreSQL's OFFSET is a bigint, and nobody pages a device list past ten million.
        offset: int = Field(0, ge=0, le=10_000_000)


def _devices_filtered(filters: DeviceFiltersIn) -> QuerySet[Device]:
    query = Q()
    if filters.account:
        query &= Q(account__name__iexact=filters.account)
    if filters.lifecycle:
        query &= Q(lifecycle=filters.lifecycle)
    if filters.imei:
        query &= Q(imei__startswith=filters.imei)
    if filters.plate:
        # Plates are stored normalised: the fragment is normalised by the same rule.
        query &= Q(vehicle__plate__contains=plate_fragment(filters.plate))
    if filters.has_vehicle is not None:
        query &= Q(vehicle__isnull=not filters.has_vehicle)
    if filters.cost_centre:
        query &= Q(vehicle__cost_centre__name__iexact=filters.cost_centre)
    if filters.assigned_city:
        query &= Q(vehicle__assigned_city__name__iexact=filters.assigned_city)
    related = ("account", "vehicle__cost_centre", "vehicle__assigned_city")
    return Device.objects.filter(query).select_related(*related).order_by("imei")


@router.get("/devices", response=list[DeviceOut], summary="Devices, filtered and paginated")
@paginate(DevicePage)
def device_list(request: HttpRequest, filters: Query[DeviceFiltersIn]) -> Any:
    """Every device with its IMEI, account, vehicle plate and lifecycle, ordered by IMEI."""
    return _devices_filtered(filters)


@admin_router.post(
    "/devices/{imei}/lifecycle",
    response={200: DeviceOut, 404: ErrorOut, 409: ErrorOut},
    summary="Move a device along its lifecycle",
)
def device_lifecycle_change(request: HttpRequest, imei: Path[ImeiText], payload: LifecycleIn) -> Any:
    """provisioned → active ⇄ suspended → decommissioned; the database refuses every other move (409)."""
    device = Device.objects.select_related("account", "vehicle").filter(imei=imei).first()
    if device is None:
        return Status(404, {"detail": f"no device with IMEI {imei}", "code": "not_found"})
    user = request.auth.user  # type: ignore[attr-defined]  # ninja sets request.auth on authentication
    try:
        device = device_transition(device=device, to=payload.to, reason=payload.reason, user=user)
    except LifecycleTransitionError as exc:
        return Status(409, {"detail": str(exc), "code": "lifecycle_refused"})
    return Status(200, device)
