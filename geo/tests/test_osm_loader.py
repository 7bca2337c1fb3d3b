"""The OSM road loader (`manage.py load_osm`): the Monaco extract the repository ships, and a hand-written network
(t_junction.osm, drawn in its header) whose every segment is known."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, connections, transaction
from django.test import override_settings

from geo.models import GraphLoad, Way
from geo.osm import maxspeed_kmh
from geo.selectors import road_graph_current_load, road_graph_exists
from geo.tasks import osm_load

MONACO = Path(__file__).resolve().parents[1] / "data" / "monaco.osm.pbf"
T_JUNCTION = Path(__file__).resolve().parent / "t_junction.osm"

# Measured on the vendored extract (geo/data/README.md) with the rules of geo/osm.py, then pinned.
MONACO_WAYS = 1701
MONACO_SEGMENTS = 2728
MONACO_VERTICES = 2266
MONACO_KM = 345.012
MONACO_LOOPS = 13
# Far apart on the graph: vertices on the western (7.349 °E) and eastern (7.490 °E) edges of the extract.
WEST_NODE = 791017936
EAST_NODE = 2350673270

EDGES_SQL = "SELECT id, source, target, cost, reverse_cost FROM geo_ways"
ASTAR_EDGES_SQL = "SELECT id, source, target, cost, reverse_cost, x1, y1, x2, y2 FROM geo_ways"


def load(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("load_osm", str(path), *args, verbosity=0, stdout=out)
    return out.getvalue()


def fetch(sql: str, params: list[Any] | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def one(sql: str, params: list[Any] | None = None) -> tuple:
    rows = fetch(sql, params)
    assert len(rows) == 1, rows
    return rows[0]


def vertex_of(osm_node_id: int) -> int:
    return one("SELECT id FROM geo_ways_vertices WHERE osm_node_id = %s", [osm_node_id])[0]


def route(source: int, target: int) -> tuple[float, list[int]]:
    """pgr_dijkstra on the directed graph: the route's seconds and its edges."""
    rows = fetch(
        "SELECT edge, agg_cost FROM pgr_dijkstra(%s, %s, %s, directed => true) ORDER BY seq",
        [EDGES_SQL, source, target],
    )
    assert rows, f"no route from {source} to {target}"
    return rows[-1][1], [edge for edge, _ in rows if edge != -1]


def segments_by_osm_nodes() -> dict[tuple[int, int, int], Way]:
    """(way osm_id, source OSM node, target OSM node) → segment."""
    nodes = dict(fetch("SELECT id, osm_node_id FROM geo_ways_vertices"))
    return {(w.osm_id, nodes[w.source], nodes[w.target]): w for w in Way.objects.all()}


# --- Monaco -----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_loads_monaco_into_the_counts_a_user_can_check():
    printed = load(MONACO)
    assert (Way.objects.count(), one("SELECT count(*) FROM geo_ways_vertices")[0]) == (MONACO_SEGMENTS, MONACO_VERTICES)
    assert one("SELECT sum(length_m) / 1000 FROM geo_ways")[0] == pytest.approx(MONACO_KM, abs=0.01)
    assert one("SELECT count(DISTINCT osm_id) FROM geo_ways")[0] == MONACO_WAYS
    assert f"{MONACO_WAYS:,} ways kept, {MONACO_SEGMENTS:,} segments, {MONACO_VERTICES:,} vertices" in printed
    assert f"{MONACO_KM:,.1f} km of road" in printed


@pytest.mark.django_db
def test_it_keeps_boulevard_albert_1er_as_a_named_primary_road():
    load(MONACO)
    boulevard = Way.objects.filter(name="Boulevard Albert 1er")
    assert boulevard.count() == 8
    assert set(boulevard.values_list("highway", flat=True)) == {"primary"}
    assert set(boulevard.values_list("osm_id", flat=True)) == {4226740, 161882794, 166399479}
    assert set(Way.objects.filter(name="Avenue Princesse Grace").values_list("highway", flat=True)) == {
        "primary",
        "primary_link",
    }


@pytest.mark.django_db
def test_it_keeps_no_footway_path_steps_or_track():
    load(MONACO)
    assert set(Way.objects.values_list("highway", flat=True).distinct()) == {
        "motorway", "motorway_link", "primary", "primary_link", "secondary", "secondary_link", "tertiary",
        "tertiary_link", "unclassified", "residential", "living_street", "service", "road",
    }  # fmt: skip


@pytest.mark.django_db
def test_it_ends_every_segment_on_the_points_of_its_two_vertices():
    load(MONACO)
    unjoined, bad_loops, loops, unused_vertices = one(
        """
        SELECT count(*) FILTER (WHERE s.id IS NULL OR t.id IS NULL
                                   OR NOT ST_Equals(ST_StartPoint(w.geom), s.geom)
                                   OR NOT ST_Equals(ST_EndPoint(w.geom), t.geom)),
               count(*) FILTER (WHERE w.source = w.target AND NOT ST_IsClosed(w.geom)),
               count(*) FILTER (WHERE w.source = w.target),
               (SELECT count(*) FROM geo_ways_vertices v
                 WHERE NOT EXISTS (SELECT 1 FROM geo_ways x WHERE v.id IN (x.source, x.target)))
          FROM geo_ways w
          LEFT JOIN geo_ways_vertices s ON s.id = w.source
          LEFT JOIN geo_ways_vertices t ON t.id = w.target
        """
    )
    assert (unjoined, bad_loops, unused_vertices) == (0, 0, 0)
    assert loops == MONACO_LOOPS  # closed ways met by no other road: a loop from their one vertex back to it
    assert (
        one("SELECT count(*) FROM geo_ways WHERE x1 <> ST_X(ST_StartPoint(geom)) OR y2 <> ST_Y(ST_EndPoint(geom))")[0]
        == 0
    )


@pytest.mark.django_db
def test_it_makes_boulevard_albert_1er_one_way_and_avenue_de_la_costa_two_way():
    load(MONACO)
    boulevard = Way.objects.filter(name="Boulevard Albert 1er")
    assert all(w.oneway and w.reverse_cost == -1 and w.cost > 0 for w in boulevard)
    costa = Way.objects.filter(osm_id=176674530)
    assert costa.count() == 3
    assert all(not w.oneway and w.cost > 0 and w.reverse_cost == w.cost for w in costa)


@pytest.mark.django_db
def test_it_finds_a_route_across_the_extract_with_dijkstra_and_a_star():
    load(MONACO)
    west, east = vertex_of(WEST_NODE), vertex_of(EAST_NODE)
    seconds, edges = route(west, east)
    metres = one("SELECT sum(length_m) FROM geo_ways WHERE id = ANY(%s)", [edges])[0]
    straight = one(
        "SELECT ST_Distance(a.geom::geography, b.geom::geography) FROM geo_ways_vertices a, geo_ways_vertices b"
        " WHERE a.id = %s AND b.id = %s",
        [west, east],
    )[0]
    assert straight > 11_000  # the two ends of the extract
    assert straight < metres < 2 * straight
    assert 10 * 60 < seconds < 30 * 60
    a_star = fetch("SELECT node, agg_cost FROM pgr_aStar(%s, %s, %s) ORDER BY seq", [ASTAR_EDGES_SQL, west, east])
    assert (a_star[0][0], a_star[-1][0]) == (west, east)
    assert a_star[-1][1] == pytest.approx(seconds, rel=0.05)


@pytest.mark.django_db
def test_it_routes_against_a_one_way_the_long_way_round():
    load(MONACO)
    segment = Way.objects.filter(name="Boulevard Albert 1er").order_by("-length_m").first()
    along, edges_along = route(segment.source, segment.target)
    against, edges_against = route(segment.target, segment.source)
    assert edges_along == [segment.id]
    assert along == pytest.approx(segment.cost)
    assert segment.id not in edges_against
    assert against > 5 * along


@pytest.mark.django_db
def test_it_gives_the_same_graph_when_the_same_file_is_loaded_twice():
    digest = (
        "SELECT md5(string_agg(concat_ws('|', id, osm_id, source, target, cost, reverse_cost, ST_AsEWKT(geom)), ','"
        " ORDER BY id)) FROM geo_ways"
    )
    vertices = (
        "SELECT md5(string_agg(concat_ws('|', id, osm_node_id, ST_AsEWKT(geom)), ',' ORDER BY id))"
        " FROM geo_ways_vertices"
    )
    load(MONACO)
    first = (one(digest), one(vertices), Way.objects.count())
    load(MONACO)
    assert (one(digest), one(vertices), Way.objects.count()) == first
    assert list(GraphLoad.objects.order_by().values_list("segments", "vertices", "sha256").distinct()) == [
        (MONACO_SEGMENTS, MONACO_VERTICES, hashlib.sha256(MONACO.read_bytes()).hexdigest())
    ]
    assert GraphLoad.objects.count() == 2


@pytest.mark.django_db
def test_it_records_each_load_so_the_app_knows_the_graph_and_its_file():
    assert not road_graph_exists()
    assert road_graph_current_load() is None
    load(T_JUNCTION)
    load(MONACO)
    assert road_graph_exists()
    current = road_graph_current_load()
    assert (current.file_name, current.sha256, current.file_bytes) == (
        "monaco.osm.pbf", hashlib.sha256(MONACO.read_bytes()).hexdigest(), MONACO.stat().st_size,
    )  # fmt: skip
    assert (current.ways, current.segments, current.vertices) == (MONACO_WAYS, MONACO_SEGMENTS, MONACO_VERTICES)
    assert current.length_km == pytest.approx(MONACO_KM, abs=0.01)
    assert current.seconds > 0
    assert GraphLoad.objects.count() == 2


@pytest.mark.django_db
def test_it_loads_only_when_no_graph_exists_with_if_empty():
    assert "3 ways kept" in load(T_JUNCTION, "--if-empty")
    assert load(MONACO, "--if-empty") == ""
    assert Way.objects.count() == 4
    assert GraphLoad.objects.count() == 1


@pytest.mark.django_db
def test_it_keeps_the_table_and_index_names_django_knows_after_a_swap():
    names = """SELECT tablename, indexname FROM pg_indexes
                WHERE schemaname = current_schema() AND tablename IN ('geo_ways', 'geo_ways_vertices')"""
    before = set(fetch(names))
    load(T_JUNCTION)
    load(MONACO)
    assert set(fetch(names)) == before
    assert {("geo_ways", "geo_ways_source"), ("geo_ways_vertices", "geo_ways_vertices_pkey")} <= before
    assert one("SELECT count(*) FROM pg_class WHERE relnamespace = 'geo_staging'::regnamespace")[0] == 0
    assert one("SELECT pg_get_serial_sequence('geo_ways', 'id')")[0].endswith("geo_ways_id_seq")
    # A row Django writes gets the next id after the loaded ones.
    way = Way.objects.first()
    way.pk = None
    way.save()
    assert way.pk == MONACO_SEGMENTS + 1


@pytest.mark.django_db
def test_it_refuses_a_missing_file_and_a_file_without_roads(tmp_path):
    load(T_JUNCTION)
    with pytest.raises(CommandError, match="no such file"):
        load(tmp_path / "nowhere.osm.pbf")
    empty = tmp_path / "footways.osm"
    empty.write_text(
        T_JUNCTION.read_text().replace('v="residential"', 'v="footway"').replace('v="tertiary"', 'v="path"')
    )
    with pytest.raises(CommandError, match="no drivable road"):
        load(empty)
    assert Way.objects.count() == 4  # the graph in use stays


# --- The hand-written network --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_splits_ways_at_the_t_junction_and_only_there():
    load(T_JUNCTION)
    assert set(segments_by_osm_nodes()) == {(100, 1, 2), (100, 2, 3), (101, 2, 5), (104, 7, 3)}
    assert {v for (v,) in fetch("SELECT osm_node_id FROM geo_ways_vertices")} == {1, 2, 3, 5, 7}
    side = segments_by_osm_nodes()[(101, 2, 5)]
    assert len(side.geom.coords) == 3  # node 4 is a point of the segment, not a vertex: only a footway meets it


@pytest.mark.django_db
def test_it_cuts_a_way_where_a_clipped_file_lacks_its_node(tmp_path):
    clipped = tmp_path / "clipped.osm"
    node_1 = '<node id="1" version="1" lat="-1.3000000" lon="36.8000000"/>'
    clipped.write_text(T_JUNCTION.read_text().replace(node_1, ""))
    printed = load(clipped)
    assert set(segments_by_osm_nodes()) == {(100, 2, 3), (101, 2, 5), (104, 7, 3)}
    assert "1 way nodes had no location in the file" in printed


@pytest.mark.django_db
def test_it_drops_the_footway_and_the_private_drive():
    load(T_JUNCTION)
    assert not Way.objects.filter(osm_id__in=[102, 103]).exists()
    assert not fetch("SELECT 1 FROM geo_ways_vertices WHERE osm_node_id IN (6, 8)")


@pytest.mark.django_db
def test_it_reads_30_mph_as_48_km_h_and_costs_main_street_at_that_speed():
    load(T_JUNCTION)
    for key in [(100, 1, 2), (100, 2, 3)]:
        main = segments_by_osm_nodes()[key]
        assert (main.name, main.highway, main.maxspeed_kmh, main.oneway) == ("Main Street", "residential", 48.28, False)
        assert main.length_m == pytest.approx(111.29, abs=0.01)  # 0.001° of longitude at 1.3° S, on the ellipsoid
        assert main.cost == pytest.approx(main.length_m / (48.28 / 3.6))
        assert main.reverse_cost == main.cost


@pytest.mark.django_db
def test_it_makes_the_oneway_forward_only_at_its_class_speed():
    load(T_JUNCTION)
    side = segments_by_osm_nodes()[(101, 2, 5)]
    assert (side.name, side.oneway, side.maxspeed_kmh, side.reverse_cost) == ("Side Street", True, None, -1)
    assert side.speed_kmh == settings.ROAD_CLASS_SPEEDS_KMH["tertiary"]
    assert side.cost == pytest.approx(side.length_m / (side.speed_kmh / 3.6))
    assert route(vertex_of(2), vertex_of(5))[1] == [side.id]
    assert not fetch("SELECT 1 FROM pgr_dijkstra(%s, %s, %s)", [EDGES_SQL, vertex_of(5), vertex_of(2)])


@pytest.mark.django_db
def test_it_turns_a_backward_oneway_round_so_it_runs_source_to_target():
    load(T_JUNCTION)
    lane = segments_by_osm_nodes()[(104, 7, 3)]
    assert (lane.oneway, lane.reverse_cost) == (True, -1)
    assert lane.geom.coords[0] == pytest.approx((36.803, -1.3))
    assert (lane.x1, lane.x2) == pytest.approx((36.803, 36.802))


@pytest.mark.django_db
def test_it_reads_osm_and_osm_gz_alike(tmp_path):
    rows = (
        "SELECT osm_id, name, highway, maxspeed_kmh, oneway, cost, reverse_cost, ST_AsEWKT(geom) FROM geo_ways"
        " ORDER BY id"
    )
    load(T_JUNCTION)
    plain = fetch(rows)
    packed = tmp_path / "t_junction.osm.gz"
    with T_JUNCTION.open("rb") as source, gzip.open(packed, "wb") as target:
        shutil.copyfileobj(source, target)
    load(packed)
    assert fetch(rows) == plain
    assert len(plain) == 4
    assert road_graph_current_load().file_name == "t_junction.osm.gz"


def test_it_reads_maxspeed_values_to_km_h():
    zones = settings.ROAD_ZONE_SPEEDS_KMH
    assert maxspeed_kmh("50", zones) == 50
    assert maxspeed_kmh("50 km/h", zones) == 50
    assert maxspeed_kmh("30 mph", zones) == 48.28
    assert maxspeed_kmh("20mph", zones) == 32.19
    assert maxspeed_kmh("10 knots", zones) == 18.52
    assert maxspeed_kmh("FR:urban", zones) == zones["urban"] == 50
    assert maxspeed_kmh("FR:rural", zones) == zones["rural"]
    assert maxspeed_kmh("DE:zone30", zones) == 30
    assert maxspeed_kmh("DE:zone:30", zones) == 30
    assert maxspeed_kmh("walk", zones) == zones["walk"]
    assert maxspeed_kmh("de:rural", {**zones, "de:rural": 100.0}) == 100
    for unknown in ("none", "signals", "variable", "50;30", "fast", "0", "FR:moon", "", None):
        assert maxspeed_kmh(unknown, zones) is None, unknown


# --- The monthly task -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_loads_the_configured_extract_when_the_monthly_task_runs():
    assert osm_load.queue == "cron"
    with override_settings(OSM_EXTRACT_PATH=""):
        osm_load(timestamp=0)
    assert not road_graph_exists()
    with override_settings(OSM_EXTRACT_PATH=str(T_JUNCTION)):
        osm_load(timestamp=0)
    assert road_graph_current_load().file_name == "t_junction.osm"
    assert Way.objects.count() == 4


# --- Readers during a reload ------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_never_shows_a_reader_half_a_graph_during_a_reload():
    """A reader polls the graph from its own connection while the graph is swapped back and forth: every answer is the
    whole small graph or the whole Monaco graph (segments, vertices, and vertices pgRouting reaches), never a mix."""
    load(T_JUNCTION)
    small, monaco = (4, 5, 5), (MONACO_SEGMENTS, MONACO_VERTICES, MONACO_VERTICES)
    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        conn = connections["default"]
        try:
            with conn.cursor() as cursor:
                while not stop.is_set():
                    cursor.execute(
                        "SELECT (SELECT count(*) FROM geo_ways), (SELECT count(*) FROM geo_ways_vertices),"
                        " (SELECT count(*) FROM pgr_connectedComponents(%s))",
                        [EDGES_SQL],
                    )
                    seen.append(cursor.fetchone())
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    def reader_has_read(more_than: int) -> None:
        while len(seen) <= more_than and thread.is_alive():
            time.sleep(0.01)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        reader_has_read(0)
        for path in (MONACO, T_JUNCTION, MONACO, T_JUNCTION, MONACO):
            load(path)
        reader_has_read(len(seen))
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert set(seen) <= {small, monaco}, set(seen) - {small, monaco}
    assert (seen[0], seen[-1]) == (small, monaco)
    assert len(seen) > 10


def hold_the_graph(release: threading.Event, holding: threading.Event) -> threading.Thread:
    """A reader in another connection that keeps geo_ways open (a transaction that read it) until `release`."""

    def reader() -> None:
        conn = connections["default"]
        try:
            with transaction.atomic(using="default"), conn.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM geo_ways")
                holding.set()
                release.wait(timeout=30)
        finally:
            conn.close()

    thread = threading.Thread(target=reader)
    thread.start()
    holding.wait(timeout=10)
    return thread


@pytest.mark.django_db(transaction=True)
@override_settings(ROAD_GRAPH_SWAP_LOCK_TIMEOUT_S=0.2, ROAD_GRAPH_SWAP_ATTEMPTS=2)
def test_it_gives_up_the_swap_behind_a_reader_that_never_finishes_and_keeps_the_graph_in_use():
    load(T_JUNCTION)
    release, holding = threading.Event(), threading.Event()
    thread = hold_the_graph(release, holding)
    try:
        with pytest.raises(OperationalError, match="lock timeout"):
            load(MONACO)
    finally:
        release.set()
        thread.join()
    assert Way.objects.count() == 4
    assert road_graph_current_load().file_name == "t_junction.osm"
    assert one("SELECT count(*) FROM pg_class WHERE relnamespace = 'geo_staging'::regnamespace")[0] == 0


@pytest.mark.django_db(transaction=True)
@override_settings(ROAD_GRAPH_SWAP_LOCK_TIMEOUT_S=0.2, ROAD_GRAPH_SWAP_ATTEMPTS=10)
def test_it_swaps_once_a_long_reader_is_done():
    load(T_JUNCTION)
    release, holding = threading.Event(), threading.Event()
    thread = hold_the_graph(release, holding)
    threading.Timer(0.5, release.set).start()
    try:
        load(MONACO)
    finally:
        release.set()
        thread.join()
    assert Way.objects.count() == MONACO_SEGMENTS
