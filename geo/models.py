"""Geometry, roads, routing and geocoding: the routing request log the route-latency SLO reads, and the road graph
(`manage.py load_osm`; docs/architecture.md, "Roads")."""

from __future__ import annotations

from django.contrib.gis.db import models as gis
from django.db import models

from domain.models import Account


class RouteRequest(models.Model):
    """One call of the routing endpoint: when, how long, whether a route was found (the route_p95_ms SLO)."""

    requested_at = models.DateTimeField()
    duration_ms = models.FloatField()
    ok = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "geo_route_requests"
        indexes = [models.Index(fields=["requested_at"], name="geo_route_requests_time")]

    def __str__(self) -> str:
        return f"route {self.duration_ms:.0f} ms @ {self.requested_at:%Y-%m-%d %H:%M:%S}"


class Way(models.Model):
    """One edge of the road graph: a piece of an OSM way between two vertices, in pgRouting's shape.

    cost and reverse_cost are seconds at speed_kmh; reverse_cost is -1 when the segment is one-way (it then runs
    source → target: a backward-only way is stored reversed). x1, y1, x2, y2 are its end points (lon, lat) for
    pgr_aStar. The whole table is replaced by each load (staged, then swapped in one short transaction): never
    hang a view, a foreign key or a trigger on it.
    """

    id = models.BigAutoField(primary_key=True)
    osm_id = models.BigIntegerField(help_text="The OSM way this segment is a piece of")
    source = models.BigIntegerField(help_text="geo_ways_vertices.id at the start")
    target = models.BigIntegerField(help_text="geo_ways_vertices.id at the end")
    geom = gis.LineStringField(srid=4326)
    length_m = models.FloatField(help_text="Geodesic length (metres)")
    cost = models.FloatField(help_text="Seconds source → target")
    reverse_cost = models.FloatField(help_text="Seconds target → source; -1: one-way")
    highway = models.CharField(max_length=32)
    maxspeed_kmh = models.FloatField(null=True, blank=True, help_text="OSM maxspeed in km/h; null: none usable")
    speed_kmh = models.FloatField(help_text="The speed of the costs: maxspeed, else the class default")
    oneway = models.BooleanField()
    name = models.TextField(blank=True, default="")
    routable = models.BooleanField(
        db_default=False, help_text="In the graph's largest strongly connected part: routes may start and end here"
    )
    x1 = models.FloatField()
    y1 = models.FloatField()
    x2 = models.FloatField()
    y2 = models.FloatField()

    class Meta:
        db_table = "geo_ways"
        indexes = [
            models.Index(fields=["source"], name="geo_ways_source"),
            models.Index(fields=["target"], name="geo_ways_target"),
            models.Index(fields=["osm_id"], name="geo_ways_osm_id"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.highway} ({self.source} → {self.target}, {self.length_m:.0f} m)"


class WayVertex(models.Model):
    """A vertex of the road graph: an OSM node where ways meet or end."""

    id = models.BigAutoField(primary_key=True)
    osm_node_id = models.BigIntegerField(unique=True)
    geom = gis.PointField(srid=4326)

    class Meta:
        db_table = "geo_ways_vertices"

    def __str__(self) -> str:
        return f"vertex {self.id} (node {self.osm_node_id})"


class MatchPending(models.Model):
    """Work-list of the map-matching projector: position fixes (inserted, updated or deleted in events_parsed) whose
    device windows have not been matched again yet. Filled by geo's own deferred trigger on events_parsed
    (geo/sql/match_pending.sql) and drained with SKIP LOCKED in the projector's transaction, like the state
    projectors' work-list; the delete of these rows is the checkpoint."""

    id = models.BigAutoField(primary_key=True)
    parsed_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    device_id = models.BigIntegerField(null=True)
    attempts = models.IntegerField(db_default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    # Parked: failed PROJECT_MAX_ATTEMPTS times alone; never claimed again until re-queued.
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, db_default="")

    class Meta:
        db_table = "geo_match_pending"
        verbose_name = "map-matching work-list row"
        indexes = [
            models.Index(fields=["attempts", "id"], name="geo_match_pending_claim"),
            # Fresh rows in device-time order: the claim of settled fixes (worklist.match_claim).
            models.Index(
                fields=["occurred_at", "id"], name="geo_match_pending_settled", condition=models.Q(attempts=0)
            ),
            models.Index(
                fields=["failed_at"], name="geo_match_pending_parked", condition=models.Q(failed_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"match ← parsed #{self.parsed_id}"


class SegmentObservation(models.Model):
    """One traversal of a road segment by a device, from map matching (geo/matching/): the segment, the direction,
    when (the middle of the traversal, device time), the length covered and its speed, and the confidence of the
    match (the mean posterior probability of the matched fixes that bound it). `complete`: driven from
    one end of the segment to the other; `in_band`: counted in the segment's speed band (complete, confident,
    plausible) — kept so that re-matching a window takes out exactly what it put in."""

    id = models.BigAutoField(primary_key=True)
    segment_id = models.BigIntegerField(help_text="geo_ways.id")
    osm_id = models.BigIntegerField(help_text="The OSM way of the segment")
    device_id = models.BigIntegerField()
    observed_at = models.DateTimeField()
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField()
    direction = models.CharField(
        max_length=8, choices=[("forward", "source → target"), ("backward", "target → source")]
    )
    length_m = models.FloatField()
    speed_kmh = models.FloatField(null=True, blank=True)
    confidence = models.FloatField()
    complete = models.BooleanField()
    in_band = models.BooleanField()

    class Meta:
        db_table = "geo_segment_observations"
        indexes = [
            models.Index(fields=["device_id", "observed_at"], name="geo_observations_device_time"),
            models.Index(fields=["segment_id", "observed_at"], name="geo_observations_segment_time"),
        ]

    def __str__(self) -> str:
        return f"segment {self.segment_id} {self.direction} @ {self.observed_at:%Y-%m-%d %H:%M:%S}"


class SegmentSpeedBand(models.Model):
    """Observed speed of one road segment in one hour of one weekday (local time, DISPLAY_TIME_ZONE): the mean of
    the map-matched traversal speeds (geo_segment_observations) that fell in it. Maintained incrementally by the
    map-matching projector (an upsert of sums per batch, never a full refresh); routing costs a segment at
    `mean_kmh` when `samples` reaches the route_speed_min_samples threshold row."""

    segment_id = models.BigIntegerField(help_text="geo_ways.id")
    dow = models.SmallIntegerField(help_text="ISO day of the week, 1 = Monday … 7 = Sunday")
    hour = models.SmallIntegerField(help_text="Hour of the day, 0 to 23")
    speed_sum = models.FloatField(default=0.0, help_text="Sum of the samples' km/h (the mean is sum / samples)")
    samples = models.IntegerField(default=0)
    mean_kmh = models.FloatField(null=True, blank=True)
    last_observed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "geo_segment_speed_band"
        constraints = [
            models.UniqueConstraint(fields=["segment_id", "dow", "hour"], name="geo_speed_band_key"),
            models.CheckConstraint(condition=models.Q(dow__gte=1, dow__lte=7), name="geo_speed_band_dow"),
            models.CheckConstraint(condition=models.Q(hour__gte=0, hour__lte=23), name="geo_speed_band_hour"),
        ]

    def __str__(self) -> str:
        return f"segment {self.segment_id} day {self.dow} {self.hour:02d}h: {self.mean_kmh} km/h ({self.samples})"


class Address(models.Model):
    """A reverse-geocoded address of a rounded coordinate (GEOCODE_ROUND_DECIMALS decimals of a degree: 4 is about
    11 m): the cache the geocoder (geo/geocoding.py, the one writer) fills and the API reads. `provider` says who
    answered — nominatim, mapbox, or roads (our own road graph, offline: replaced by an online answer when one can
    be had)."""

    decimals = models.SmallIntegerField()
    lat_key = models.IntegerField(help_text="round(lat * 10^decimals)")
    lng_key = models.IntegerField(help_text="round(lng * 10^decimals)")
    address = models.TextField(blank=True, help_text="Empty: no address is known there")
    provider = models.CharField(
        max_length=16, choices=[("nominatim", "Nominatim"), ("mapbox", "Mapbox"), ("roads", "Own road graph")]
    )
    geocoded_at = models.DateTimeField()

    class Meta:
        db_table = "geo_addresses"
        verbose_name_plural = "addresses"
        constraints = [models.UniqueConstraint(fields=["decimals", "lat_key", "lng_key"], name="geo_address_key")]
        indexes = [
            models.Index(fields=["provider"], name="geo_addresses_offline", condition=models.Q(provider="roads")),
            # The addresses geocoded since a live view's cursor (geo.enrich.AddressChanges).
            models.Index(fields=["geocoded_at"], name="geo_addresses_geocoded_at"),
        ]

    def __str__(self) -> str:
        return self.address or "(no address)"


class PoiKind(models.TextChoices):
    HQ = "hq", "Headquarters"
    DEPOT = "depot", "Depot"
    CUSTOMER = "customer", "Customer"


class Poi(models.Model):
    """A place of an account the maps show and dispatch uses: its headquarters, its depots, its customers. Edited
    in the admin (a map widget); the nearest depot is named in the dispatch view (geo/enrich.py)."""

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=PoiKind.choices)
    point = gis.PointField(srid=4326)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="pois")
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "geo_pois"
        verbose_name = "point of interest"
        verbose_name_plural = "points of interest"
        ordering = ["account__name", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "kind", "name"], name="geo_poi_name")]
        indexes = [models.Index(fields=["kind"], name="geo_pois_kind")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.account})"


class GraphLoad(models.Model):
    """One load of the road graph: the file it came from and what it gave. The latest row is the graph in use."""

    file_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    file_bytes = models.BigIntegerField()
    loaded_at = models.DateTimeField()
    ways = models.IntegerField(help_text="OSM ways kept")
    segments = models.IntegerField()
    vertices = models.IntegerField()
    length_km = models.FloatField(help_text="Total length of the segments")
    seconds = models.FloatField(help_text="How long the load took")

    class Meta:
        db_table = "geo_graph_loads"
        ordering = ["-loaded_at"]
        get_latest_by = "loaded_at"

    def __str__(self) -> str:
        return f"{self.file_name} @ {self.loaded_at:%Y-%m-%d %H:%M} ({self.segments} segments)"
