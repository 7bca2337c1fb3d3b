"""GET /api/slo/status: every SLO's value, target, met or breached, since when, burn rate. Its scope is
declared where fleet/api.py mounts this router (read:fleet)."""

from typing import Any

from django.http import HttpRequest
from ninja import Router

from slo.schemas import SloStatusOut
from slo.selectors import slo_status

router = Router(tags=["slo"])


@router.get("/status", response=SloStatusOut, summary="Current status of every SLO")
def status(request: HttpRequest) -> dict[str, Any]:
    return slo_status()
