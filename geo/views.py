"""Plain Django views of the geo layer (the API's operations are in geo/api.py). Who may call them is decided where
they are mounted (fleet/urls.py wraps them in the API's scope check)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.http import require_safe

from geo.tiles import BadTile, road_tile, tile_address

MVT_CONTENT_TYPE = "application/vnd.mapbox-vector-tile"


@require_safe
def road_tile_view(request: HttpRequest, z: str, x: str, y: str) -> HttpResponse:
    """GET /tiles/roads/{z}/{x}/{y}.pbf: the road graph as a Mapbox vector tile (layer `roads`), empty where there
    are no roads; 400 for z/x/y that name no tile; 304 when the client's copy is of the graph in use."""
    try:
        zi, xi, yi = tile_address(z, x, y)
    except BadTile as exc:
        return JsonResponse({"detail": str(exc), "code": "bad_tile"}, status=400)
    tile, etag = road_tile(zi, xi, yi)
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(tile, content_type=MVT_CONTENT_TYPE)
    response["ETag"] = etag
    patch_cache_control(response, private=True, max_age=settings.ROAD_TILE_MAX_AGE_S)
    patch_vary_headers(response, ("Authorization", "Cookie"))
    return response
