"""Reading an OpenStreetMap extract into a drivable road graph: the tag rules and the split. No database here.

The reader is pyosmium (the bindings of libosmium, OSM's reference C++ library): it reads `.osm.pbf`, `.osm` and
`.osm.gz` (the format follows the file name) and fills in the location of every node of a way. Only ways with a
`highway` tag reach Python; nodes are handled in C++.

The rules (docs/architecture.md, "Roads"):

- Drivable: `highway` in DRIVABLE_HIGHWAYS. `service` is kept whatever its `service=` value (driveways and parking
  aisles are where a vehicle starts and stops, and map matching needs them), except `service=emergency_access`.
  Tracks, footways, paths, cycleways, steps, pedestrian areas, bridleways, construction and proposed roads are not
  drivable. `area=yes` (a square drawn as a polygon) is not a road.
- Access: the most specific of `motorcar`, `motor_vehicle`, `vehicle`, `access` that is present decides; one of
  NO_ACCESS drops the way (`access=no` + `motor_vehicle=yes` is kept: a road closed to all but motor traffic).
- One-way: `oneway` = yes/1/true is forward only, -1/reverse backward only, no/false/0 two-way; with no `oneway`
  tag, `highway=motorway` and `junction=roundabout|circular` are forward only. `oneway=reversible` (direction
  changes by the hour) is dropped: it cannot be routed without its timetable; `alternating` is two-way.
  A backward-only way is stored reversed, so a one-way segment always runs source → target.
- maxspeed: "50" and "50 km/h" are km/h; "30 mph" and "10 knots" are converted; a zone value ("FR:urban",
  "DE:zone30", "walk") is looked up in the zone table (settings.ROAD_ZONE_SPEEDS_KMH: the whole value, then the
  part after the colon) or read from its number ("zone30", "zone:30"); "none", "signals", "variable", several values
  ("50;30") and anything else are unknown (None), and the class default speed applies.
- Split: a way is cut at each node that two or more kept ways use (a node a way passes twice counts twice) and at
  its own end nodes; a node whose location is missing from the file (a clipped extract) cuts the way too, and the
  pieces on either side stand alone.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

DRIVABLE_HIGHWAYS = frozenset(
    {
        "motorway", "motorway_link", "trunk", "trunk_link", "primary", "primary_link", "secondary", "secondary_link",
        "tertiary", "tertiary_link", "unclassified", "residential", "living_street", "service", "road",
    }
)  # fmt: skip
EXCLUDED_SERVICES = frozenset({"emergency_access"})
ACCESS_KEYS = ("motorcar", "motor_vehicle", "vehicle", "access")  # most specific first
NO_ACCESS = frozenset({"no", "private", "agricultural", "forestry", "emergency", "military", "psv", "bus"})
ONEWAY_FORWARD = frozenset({"yes", "1", "true"})
ONEWAY_BACKWARD = frozenset({"-1", "reverse"})
ONEWAY_TWO_WAY = frozenset({"no", "0", "false", "alternating"})
IMPLIED_ONEWAY_HIGHWAYS = frozenset({"motorway"})
IMPLIED_ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})
UNROUTABLE_ONEWAY = frozenset({"reversible"})

KMH_PER_UNIT = {"": 1.0, "km/h": 1.0, "kmh": 1.0, "kph": 1.0, "mph": 1.609344, "knots": 1.852}
_SPEED = re.compile(r"^(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?$")
_ZONE = re.compile(r"^(?:[a-z]{2}(?:-[a-z0-9]+)?:)?zone[: ]?(\d+(?:\.\d+)?)$")
_COUNTRY_ZONE = re.compile(r"^[a-z]{2}(?:-[a-z0-9]+)?:(.+)$")


class Direction(Enum):
    BOTH = "both"
    FORWARD = "forward"
    BACKWARD = "backward"


def is_drivable(tags: Mapping[str, str]) -> bool:
    """Whether a way with these tags is a road a vehicle of the fleet may drive on (the module's rules)."""
    if tags.get("highway") not in DRIVABLE_HIGHWAYS or tags.get("area") == "yes":
        return False
    if tags.get("highway") == "service" and tags.get("service") in EXCLUDED_SERVICES:
        return False
    if tags.get("oneway") in UNROUTABLE_ONEWAY:
        return False
    for key in ACCESS_KEYS:
        if key in tags:
            return tags[key] not in NO_ACCESS
    return True


def direction(tags: Mapping[str, str]) -> Direction:
    value = tags.get("oneway")
    if value in ONEWAY_FORWARD:
        return Direction.FORWARD
    if value in ONEWAY_BACKWARD:
        return Direction.BACKWARD
    if value in ONEWAY_TWO_WAY:
        return Direction.BOTH
    if tags.get("highway") in IMPLIED_ONEWAY_HIGHWAYS or tags.get("junction") in IMPLIED_ONEWAY_JUNCTIONS:
        return Direction.FORWARD
    return Direction.BOTH


def maxspeed_kmh(value: str | None, zones: Mapping[str, float]) -> float | None:
    """An OSM maxspeed value in km/h, or None when it says no number we can use (see the module's rules)."""
    if not value:
        return None
    text = value.strip().lower()
    kmh: float | None = None
    if number := _SPEED.match(text):
        kmh = float(number.group(1)) * KMH_PER_UNIT[number.group(2) or ""]
    elif zone := _ZONE.match(text):
        kmh = float(zone.group(1))
    elif text in zones:
        kmh = zones[text]
    elif (country := _COUNTRY_ZONE.match(text)) and country.group(1) in zones:
        kmh = zones[country.group(1)]
    if kmh is None or kmh <= 0:
        return None
    return round(kmh, 2)


@dataclass(frozen=True)
class Segment:
    """A piece of one way between two graph vertices, in its legal direction when the way is one-way."""

    osm_id: int
    seq: int  # the piece's place in its way
    nodes: array[int]  # OSM node ids, first and last are vertices
    coords: array[float]  # lon, lat per node
    highway: str
    maxspeed_kmh: float | None
    oneway: bool
    name: str


@dataclass
class RoadGraph:
    """The split graph of an extract: segments, and the location of each vertex (an OSM node id)."""

    ways: int
    segments: list[Segment]
    vertices: dict[int, tuple[float, float]]
    missing_locations: int


@dataclass(frozen=True)
class _Way:
    osm_id: int
    nodes: array[int]
    coords: array[float]
    tags: dict[str, str]


def _read_ways(path: Path, progress: Callable[[int], None]) -> Iterator[tuple[_Way, int]]:
    """Every drivable way of the file with its node locations, and how many of its nodes had none."""
    import osmium  # imported here: a process that never reads a file (bin/run's check) never loads it

    processor = (
        osmium.FileProcessor(str(path), osmium.osm.NODE | osmium.osm.WAY)
        .with_locations()
        .with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        .with_filter(osmium.filter.KeyFilter("highway"))
    )
    seen = 0
    for way in processor:
        if not isinstance(way, osmium.osm.Way):  # the filters let ways alone through
            continue
        seen += 1
        if seen % 1000 == 0:
            progress(1000)
        tags = {tag.k: tag.v for tag in way.tags}
        if not is_drivable(tags):
            continue
        nodes: array[int] = array("q")
        coords: array[float] = array("d")
        missing = 0
        for node in way.nodes:
            nodes.append(node.ref)
            if node.location.valid():
                coords.extend((node.location.lon, node.location.lat))
            else:
                coords.extend((math.nan, math.nan))
                missing += 1
        yield _Way(osm_id=way.id, nodes=nodes, coords=coords, tags=tags), missing
    progress(seen % 1000)


def _runs(way: _Way) -> Iterator[tuple[array[int], array[float]]]:
    """The way's runs of located nodes (a node without a location cuts it), consecutive repeats dropped."""
    nodes: array[int] = array("q")
    coords: array[float] = array("d")
    for i, ref in enumerate(way.nodes):
        lon, lat = way.coords[2 * i], way.coords[2 * i + 1]
        if math.isnan(lon):  # no location in the file
            if len(nodes) > 1:
                yield nodes, coords
            nodes, coords = array("q"), array("d")
            continue
        if nodes and nodes[-1] == ref:
            continue
        nodes.append(ref)
        coords.extend((lon, lat))
    if len(nodes) > 1:
        yield nodes, coords


def read_road_graph(
    path: Path, *, zones: Mapping[str, float], progress: Callable[[int], None] = lambda n: None
) -> RoadGraph:
    """Read the drivable ways of an extract and split them at intersections (`progress` gets highway ways read)."""
    runs: list[tuple[_Way, array[int], array[float]]] = []
    missing = 0
    ways: set[int] = set()
    for way, way_missing in _read_ways(path, progress):
        missing += way_missing
        for nodes, coords in _runs(way):
            runs.append((way, nodes, coords))
            ways.add(way.osm_id)
    uses: Counter[int] = Counter()
    for _, nodes, _ in runs:
        uses.update(nodes)

    segments: list[Segment] = []
    vertices: dict[int, tuple[float, float]] = {}
    runs.sort(key=lambda run: run[0].osm_id)  # stable: a way's runs keep their order
    seq_of: Counter[int] = Counter()
    for way, nodes, coords in runs:
        tags = way.tags
        way_direction = direction(tags)
        speed = maxspeed_kmh(tags.get("maxspeed"), zones)
        start = 0
        last = len(nodes) - 1
        for i in range(1, last + 1):
            if i != last and uses[nodes[i]] < 2:  # a node of one way only is no intersection
                continue
            piece_nodes = nodes[start : i + 1]
            piece_coords = coords[2 * start : 2 * i + 2]
            if way_direction is Direction.BACKWARD:
                piece_nodes, piece_coords = _reversed(piece_nodes, piece_coords)
            for end in (0, len(piece_nodes) - 1):
                vertices.setdefault(piece_nodes[end], (piece_coords[2 * end], piece_coords[2 * end + 1]))
            segments.append(
                Segment(
                    osm_id=way.osm_id,
                    seq=seq_of[way.osm_id],
                    nodes=piece_nodes,
                    coords=piece_coords,
                    highway=tags["highway"],
                    maxspeed_kmh=speed,
                    oneway=way_direction is not Direction.BOTH,
                    name=tags.get("name", ""),
                )
            )
            seq_of[way.osm_id] += 1
            start = i
    return RoadGraph(ways=len(ways), segments=segments, vertices=vertices, missing_locations=missing)


def _reversed(nodes: array[int], coords: array[float]) -> tuple[array[int], array[float]]:
    flipped: array[float] = array("d")
    for i in range(len(nodes) - 1, -1, -1):
        flipped.extend((coords[2 * i], coords[2 * i + 1]))
    return array("q", reversed(nodes)), flipped


def linestring_ewkt(coords: array[float]) -> str:
    points = ", ".join(f"{coords[i]!r} {coords[i + 1]!r}" for i in range(0, len(coords), 2))
    return f"SRID=4326;LINESTRING({points})"


def point_ewkt(lon: float, lat: float) -> str:
    return f"SRID=4326;POINT({lon!r} {lat!r})"
