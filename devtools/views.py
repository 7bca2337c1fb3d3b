"""The ceiling `bench_ingest` measures the push view against: the same INSERT with no authentication at all."""

from __future__ import annotations

from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from events.gateway import IOTHUB_ACK, push_insert, sources


@csrf_exempt
@require_POST
def bench_bare_insert(request: HttpRequest, source: str) -> HttpResponse:
    """Mounted when BENCH_BARE_VIEW is set (devtools/urls.py); never where the image runs."""
    try:
        bench_source = sources.get(source)  # the one the benchmark created; None for any other name
        push_insert(bench_source, "pushgps", request, request.body)  # type: ignore[arg-type]  # None: a 500, bench only
    except DatabaseError:
        return JsonResponse({"error": "storage unavailable, retry"}, status=503)
    return JsonResponse(IOTHUB_ACK)
