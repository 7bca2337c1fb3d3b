"""Local fakes of the reverse geocoders, speaking their real HTTP APIs: Nominatim's `/reverse` (format=jsonv2) and
Mapbox's v6 `/search/geocode/v6/reverse`. Each serves the places it is given (the nearest within 200 m of the
asked point, else the provider's "nothing here" answer), records every request (path, query, headers, time), and
can be switched to answer an error status, like a provider that is down."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

NEAR_M = 200.0


@dataclass
class Place:
    lat: float
    lng: float
    road: str
    house_number: str = ""
    suburb: str = ""
    city: str = "Monaco"
    postcode: str = "98000"
    country: str = "Monaco"
    country_code: str = "mc"


@dataclass
class GeocoderLog:
    places: list[Place] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # anything else: answered with that status and an error body


def _metres(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    dy = (lat2 - lat1) * 111_195.0
    dx = (lng2 - lng1) * 111_195.0 * math.cos(math.radians(lat1))
    return math.hypot(dx, dy)


def _nearest(log: GeocoderLog, lat: float, lng: float) -> Place | None:
    near = [(p, _metres(lat, lng, p.lat, p.lng)) for p in log.places]
    near = [(p, d) for p, d in near if d <= NEAR_M]
    return min(near, key=lambda pd: pd[1])[0] if near else None


def nominatim_answer(place: Place | None, lat: float, lng: float) -> dict[str, Any]:
    """Nominatim's jsonv2 reverse answer, in its real shape."""
    if place is None:
        return {"error": "Unable to geocode"}
    address = {"house_number": place.house_number, "road": place.road, "suburb": place.suburb, "city": place.city,
               "postcode": place.postcode, "country": place.country, "country_code": place.country_code}  # fmt: skip
    address = {k: v for k, v in address.items() if v}
    display = ", ".join(v for k, v in address.items() if k not in ("country_code",))
    return {
        "place_id": 115232043,
        "licence": "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright",
        "osm_type": "way",
        "osm_id": 4226735,
        "lat": f"{place.lat:.7f}",
        "lon": f"{place.lng:.7f}",
        "category": "highway",
        "type": "primary",
        "place_rank": 26,
        "importance": 0.05330159272359013,
        "addresstype": "road",
        "name": place.road,
        "display_name": display,
        "address": address,
        "boundingbox": [f"{lat - 0.001:.7f}", f"{lat + 0.001:.7f}", f"{lng - 0.001:.7f}", f"{lng + 0.001:.7f}"],
    }


def mapbox_answer(place: Place | None, lat: float, lng: float) -> dict[str, Any]:
    """Mapbox's v6 reverse answer (a FeatureCollection), in its real shape."""
    features = []
    if place is not None:
        name = " ".join(p for p in (place.house_number, place.road) if p)
        formatted = f"{place.postcode} {place.city}, {place.country}"
        features.append(
            {
                "type": "Feature",
                "id": "dXJuOm1ieGFkcjpmYWtl",
                "geometry": {"type": "Point", "coordinates": [place.lng, place.lat]},
                "properties": {
                    "mapbox_id": "dXJuOm1ieGFkcjpmYWtl",
                    "feature_type": "address",
                    "full_address": f"{name}, {formatted}",
                    "name": name,
                    "name_preferred": name,
                    "place_formatted": formatted,
                    "coordinates": {"longitude": place.lng, "latitude": place.lat, "accuracy": "rooftop"},
                    "context": {"country": {"name": place.country, "country_code": place.country_code.upper()}},
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "attribution": "NOTICE: © 2026 Mapbox and its suppliers. All rights reserved.",
    }


@contextmanager
def _serve(log: GeocoderLog, path: str, answer: Any, lat_key: str, lng_key: str) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            log.requests.append(
                {"path": url.path, "query": query, "headers": dict(self.headers), "at": time.monotonic()}
            )
            if url.path != path:
                body, status = {"error": "not found"}, 404
            elif log.status != 200:
                body, status = {"error": "Service Unavailable"}, log.status
            else:
                lat, lng = float(query[lat_key]), float(query[lng_key])
                body, status = answer(_nearest(log, lat, lng), lat, lng), 200
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def fake_nominatim(places: list[Place] | None = None) -> Iterator[tuple[str, GeocoderLog]]:
    """A Nominatim server on a free port: (its base URL, its log)."""
    log = GeocoderLog(places=list(places or []))
    with _serve(log, "/reverse", nominatim_answer, "lat", "lon") as url:
        yield url, log


@contextmanager
def fake_mapbox(places: list[Place] | None = None) -> Iterator[tuple[str, GeocoderLog]]:
    """A Mapbox geocoding server on a free port: (its base URL, its log)."""
    log = GeocoderLog(places=list(places or []))
    with _serve(log, "/search/geocode/v6/reverse", mapbox_answer, "latitude", "longitude") as url:
        yield url, log
