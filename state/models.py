"""Derived state: every table here is written by exactly one projector (state/projectors/) and rebuilt by replay.

Nothing here is a source of truth. Truncate a table, run `manage.py replay`, and `manage.py state_hash` prints the
same digest. Operational state (moving, parked, offline…) is not stored at all: state.selectors derives it at
read time from the latest fix and heartbeat.

Owners (fleet/tests/test_single_writer.py enforces them):
    state_projection_pending, state_projector_checkpoints   state.projectors.runner
    state_position_history                                  state.projectors.history
    state_live_positions                                    state.projectors.live
    state_trips, state_parking_events                       state.projectors.trips
    state_alarms … state_lbs_readings, state_odometer_readings state.projectors.readings
    state_devices                                           state.projectors.devices
"""

from __future__ import annotations

from django.contrib.gis.db import models as gis
from django.db import models

from state.geometry import WGS84_SRID


class Projector(models.TextChoices):
    POSITIONS = "positions", "Positions: history (verdicts), live positions"
    READINGS = "readings", "Readings: alarms (and their acknowledgements), heartbeats, device events, OBD, fuel, …"
    DRIVERS = "drivers", "Drivers: manual driver assignments (and the HR roster) → domain drivers and assignments"
    TRIPS = "trips", "Trips: trips and parking events from history (handed on by positions), Jimi's reports"


class ProjectionPending(models.Model):
    """Work-list: parsed events (inserted, updated or deleted) a projector has not folded in yet.

    Filled by a deferred trigger on events_parsed (state/sql/pending.sql); drained with SKIP LOCKED in the
    projector's own transaction, so the delete of these rows *is* the checkpoint.
    """

    id = models.BigAutoField(primary_key=True)
    parsed_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    device_id = models.BigIntegerField(null=True)
    kind = models.CharField(max_length=24)
    projector = models.CharField(max_length=16, choices=Projector.choices)
    attempts = models.IntegerField(default=0)
    not_before = models.DateTimeField(null=True, blank=True)
    # Parked: failed PROJECT_MAX_ATTEMPTS times alone; never claimed again until re-queued (the dead letters).
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, db_default="")

    class Meta:
        db_table = "state_projection_pending"
        verbose_name = "projection work-list row"
        indexes = [
            # The claim: a projector's due rows, oldest first (projector_claim).
            models.Index(fields=["projector", "attempts", "id"], name="state_pending_claim"),
            # The admin's and the ops overview's list of parked events.
            models.Index(
                fields=["failed_at"], name="state_pending_parked", condition=models.Q(failed_at__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.projector} ← parsed #{self.parsed_id}"


class ProjectorCheckpoint(models.Model):
    """Visibility only (the work-list is the real checkpoint): how far a projector got, and its last error."""

    projector = models.CharField(max_length=16, primary_key=True, choices=Projector.choices)
    events_done = models.BigIntegerField(default=0)
    batches_done = models.BigIntegerField(default=0)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    failures = models.BigIntegerField(default=0)

    class Meta:
        db_table = "state_projector_checkpoints"

    def __str__(self) -> str:
        return f"{self.projector}: {self.events_done} events"


class Verdict(models.TextChoices):
    OK = "ok", "OK"
    ZERO = "zero", "0,0 (no fix / expired device)"
    INVALID = "invalid", "Coordinates out of range"
    FUTURE = "future", "Dated after its arrival"
    DUPLICATE = "duplicate", "Same device time as an earlier event"
    APPROXIMATE = "approximate", "Approximate (LBS / Wi-Fi / beacon)"
    JUMP = "jump", "Implausible jump (both neighbours)"


class PositionHistory(models.Model):
    """Every position fix, with its quality verdict. Monthly range partitions by occurred_at (like the log);
    the real primary key is (parsed_id, occurred_at): one row per parsed event, no surrogate key to maintain."""

    parsed_id = models.BigIntegerField(primary_key=True)
    device_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    lat = models.FloatField(null=True)
    lng = models.FloatField(null=True)
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True, help_text="Null when lat/lng are invalid")
    speed_kmh = models.FloatField(null=True)
    heading = models.FloatField(null=True)
    ignition = models.BooleanField(null=True)
    satellites = models.IntegerField(null=True)
    position_type = models.CharField(max_length=8, null=True)
    retransmitted = models.BooleanField(default=False)
    battery_pct = models.FloatField(null=True)
    verdict = models.CharField(max_length=12, choices=Verdict.choices)
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "state_position_history"
        managed = True

    def __str__(self) -> str:
        return f"fix #{self.parsed_id} {self.verdict}"


class LivePosition(models.Model):
    """One row per device: its latest ok fix by device time (late data never moves it backwards)."""

    device_id = models.BigIntegerField(primary_key=True)
    parsed_id = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    point = gis.PointField(geography=True, srid=WGS84_SRID)
    speed_kmh = models.FloatField(null=True)
    heading = models.FloatField(null=True)
    ignition = models.BooleanField(null=True)
    satellites = models.IntegerField(null=True)
    battery_pct = models.FloatField(null=True)
    updated_at = models.DateTimeField(help_text="When the projector last changed this row (processing time)")

    class Meta:
        db_table = "state_live_positions"

    def __str__(self) -> str:
        return f"device {self.device_id} @ {self.occurred_at:%Y-%m-%d %H:%M:%S}"


class Source(models.TextChoices):
    DERIVED = "derived", "Derived by us from ok fixes"
    JIMI = "jimi", "Reported by Jimi (trip / parking report)"


class Trip(models.Model):
    """A trip: movement between stops. Derived rows are recomputed per affected window; Jimi's reported rows
    are kept beside them and linked (`matched_started_at`) to the derived trip they overlap most — totals count
    derived rows plus reported rows nothing matched, never both."""

    id = models.BigAutoField(primary_key=True)
    device_id = models.BigIntegerField()
    source = models.CharField(max_length=8, choices=Source.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
    closed = models.BooleanField(default=True, help_text="False: still in progress at the last fix")
    end_reason = models.CharField(
        max_length=8, blank=True, help_text="Derived: stop, gap, split (trip_max_duration_s) or open"
    )
    start_point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    end_point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    distance_m = models.FloatField(null=True, help_text="Derived: geodesic sum over ok fixes")
    reported_distance = models.FloatField(null=True, help_text="Jimi's figure, in Jimi's unit")
    duration_s = models.FloatField(null=True)
    max_speed_kmh = models.FloatField(null=True)
    avg_speed_kmh = models.FloatField(null=True)
    idle_s = models.FloatField(null=True, help_text="Ignition on, not moving")
    fixes = models.IntegerField(null=True)
    parsed_id = models.BigIntegerField(null=True, help_text="Reported rows: the trip_report event")
    matched_started_at = models.DateTimeField(null=True, help_text="Reported rows: start of the matched derived trip")
    recorded_at = models.DateTimeField(
        null=True, help_text="Processing time: when the projector first wrote the trip as it stands (trip lag SLO)"
    )

    class Meta:
        db_table = "state_trips"
        constraints = [
            models.UniqueConstraint(fields=["device_id", "source", "started_at"], name="state_trips_key"),
        ]

    def __str__(self) -> str:
        return f"{self.source} trip {self.device_id} {self.started_at:%Y-%m-%d %H:%M}"


class StopMode(models.TextChoices):
    PARKING = "parking", "Parking (ignition off)"
    IDLING = "idling", "Idling (ignition on)"


class ParkingEvent(models.Model):
    """A stop of at least parking_min_duration_s: parking when the ignition went off, idling when it stayed on."""

    id = models.BigAutoField(primary_key=True)
    device_id = models.BigIntegerField()
    source = models.CharField(max_length=8, choices=Source.choices)
    mode = models.CharField(max_length=8, choices=StopMode.choices)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True)
    closed = models.BooleanField(default=True, help_text="False: still stopped at the last fix")
    duration_s = models.FloatField(null=True)
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    address = models.CharField(max_length=300, blank=True)
    parsed_id = models.BigIntegerField(null=True)
    matched_started_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "state_parking_events"
        constraints = [
            models.UniqueConstraint(fields=["device_id", "source", "started_at", "mode"], name="state_parking_key"),
        ]

    def __str__(self) -> str:
        return f"{self.mode} {self.device_id} {self.started_at:%Y-%m-%d %H:%M}"


class Reading(models.Model):
    """Columns every reading table shares: one row per parsed event, keyed by its id."""

    parsed_id = models.BigIntegerField(primary_key=True)
    device_id = models.BigIntegerField(null=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()

    class Meta:
        abstract = True


class Alarm(Reading):
    """Alarms as the device raised them (and cleared them: `cleared` rows are the removeAlarmType events).

    The acknowledgement columns are filled by the same projector from `alarm_ack` events, which ops appends to the
    log (events/parsers/ops.py): nobody else writes this table, and a replay rebuilds the acknowledgement with the
    alarm — the first one, who and when."""

    code = models.CharField(max_length=64)
    name = models.CharField(max_length=200, null=True)
    normalised_name = models.CharField(max_length=64)
    severity = models.CharField(max_length=8)
    cleared = models.BooleanField(default=False)
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    speed_kmh = models.FloatField(null=True)
    msg_class = models.IntegerField(null=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, null=True, blank=True, help_text="The operator's username")

    class Meta:
        db_table = "state_alarms"
        indexes = [
            models.Index(fields=["device_id", "occurred_at"], name="state_alarms_device_time"),
            # The clerks' alarms list: newest first, and the open (unacknowledged) ones.
            models.Index(fields=["occurred_at"], name="state_alarms_time"),
            models.Index(
                fields=["occurred_at"], name="state_alarms_open", condition=models.Q(acknowledged_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.normalised_name} #{self.parsed_id}"


class Heartbeat(Reading):
    power_level = models.IntegerField(null=True)
    gsm_signal = models.IntegerField(null=True)
    ignition = models.BooleanField(null=True)
    gps_positioned = models.BooleanField(null=True)
    charging = models.BooleanField(null=True)
    armed = models.BooleanField(null=True)
    oil_cut = models.BooleanField(null=True)

    class Meta:
        db_table = "state_heartbeats"
        indexes = [models.Index(fields=["device_id", "occurred_at"], name="state_heartbeats_device_time")]

    def __str__(self) -> str:
        return f"heartbeat #{self.parsed_id}"


class DeviceEvent(Reading):
    """login / logout, and device metadata (event = iccid | vin | raw_data, with its value)."""

    event = models.CharField(max_length=16)
    timezone = models.CharField(max_length=32, null=True)
    value = models.TextField(null=True)

    class Meta:
        db_table = "state_device_events"
        indexes = [models.Index(fields=["device_id", "event", "occurred_at"], name="state_device_events_latest")]

    def __str__(self) -> str:
        return f"{self.event} #{self.parsed_id}"


class ObdReading(Reading):
    record = models.CharField(max_length=8)
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    odometer_km = models.FloatField(null=True)
    device_mileage_km = models.FloatField(null=True)
    remaining_fuel = models.FloatField(null=True)
    remaining_fuel_pct = models.FloatField(null=True)
    coolant_temp_c = models.FloatField(null=True)
    battery_voltage_raw = models.FloatField(null=True)
    rpm = models.FloatField(null=True)
    speed_kmh = models.FloatField(null=True)
    vin = models.CharField(max_length=32, null=True)
    fault_code = models.CharField(max_length=64, null=True)
    fault_detail = models.TextField(null=True)

    class Meta:
        db_table = "state_obd_readings"
        indexes = [models.Index(fields=["device_id", "occurred_at"], name="state_obd_device_time")]

    def __str__(self) -> str:
        return f"obd #{self.parsed_id}"


class FuelReading(Reading):
    """Device fuel levels and WhatsApp fuel purchases; a purchase may name only a plate (vehicle resolved)."""

    source = models.CharField(max_length=16)
    vehicle_id = models.BigIntegerField(null=True)
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    fuel_value = models.FloatField(null=True)
    fuel_unit = models.CharField(max_length=8, null=True)
    fuel_pct = models.FloatField(null=True)
    external_id = models.CharField(max_length=100, null=True)
    plate = models.CharField(max_length=32, null=True)
    litres = models.FloatField(null=True)
    amount = models.FloatField(null=True)
    currency = models.CharField(max_length=8, null=True)
    odometer_km = models.FloatField(null=True)
    station = models.CharField(max_length=200, null=True)
    reported_by = models.CharField(max_length=100, null=True)

    class Meta:
        db_table = "state_fuel_readings"
        indexes = [
            models.Index(fields=["device_id", "occurred_at"], name="state_fuel_device_time"),
            models.Index(fields=["vehicle_id", "occurred_at"], name="state_fuel_vehicle_time"),
        ]

    def __str__(self) -> str:
        return f"fuel #{self.parsed_id}"


class TemperatureReading(Reading):
    point = gis.PointField(geography=True, srid=WGS84_SRID, null=True)
    temperature_c = models.FloatField(null=True)
    humidity_pct = models.FloatField(null=True)

    class Meta:
        db_table = "state_temperature_readings"
        indexes = [models.Index(fields=["device_id", "occurred_at"], name="state_temperature_device_time")]

    def __str__(self) -> str:
        return f"temperature #{self.parsed_id}"


class LbsReading(Reading):
    post_type = models.CharField(max_length=8, null=True)
    mcc = models.IntegerField(null=True)
    mnc = models.IntegerField(null=True)
    cells = models.JSONField(default=list)

    class Meta:
        db_table = "state_lbs_readings"
        indexes = [models.Index(fields=["device_id", "occurred_at"], name="state_lbs_device_time")]

    def __str__(self) -> str:
        return f"lbs #{self.parsed_id}"


class OdometerReading(Reading):
    """A vehicle's odometer as a person read it, corrected it or noted it at a service: `odometer_reading` events
    that ops appends to the log (events/parsers/ops.py). State, not ops: a reading is derived from the log by the
    readings projector, its one writer, so it survives a replay (docs/architecture.md, "Ops actions go through the
    log"). The vehicle is resolved from the plate; `occurred_at` is when the odometer showed the value."""

    vehicle_id = models.BigIntegerField(null=True)
    plate = models.CharField(max_length=32)
    odometer_km = models.FloatField()
    source = models.CharField(max_length=16, help_text="reading, correction or service")
    recorded_by = models.CharField(max_length=150, null=True)
    recorded_at = models.DateTimeField(null=True, help_text="When it was entered")
    note = models.TextField(null=True)

    class Meta:
        db_table = "state_odometer_readings"
        indexes = [models.Index(fields=["vehicle_id", "occurred_at"], name="state_odometer_vehicle_time")]

    def __str__(self) -> str:
        return f"{self.plate} {self.odometer_km:g} km"


class DeviceSummary(models.Model):
    """Per device: latest heartbeat, ICCID/VIN, counts. The latest fix is state_live_positions (another
    writer); state.selectors joins the two."""

    device_id = models.BigIntegerField(primary_key=True)
    last_heartbeat_at = models.DateTimeField(null=True)
    power_level = models.IntegerField(null=True)
    gsm_signal = models.IntegerField(null=True)
    ignition = models.BooleanField(null=True, help_text="From the latest heartbeat")
    charging = models.BooleanField(null=True)
    iccid = models.CharField(max_length=32, null=True)
    vin = models.CharField(max_length=32, null=True)
    last_reading_at = models.DateTimeField(null=True, help_text="Latest device time of any reading")
    heartbeats = models.BigIntegerField(default=0)
    alarms = models.BigIntegerField(default=0)
    readings = models.BigIntegerField(default=0, help_text="OBD, fuel, temperature and LBS rows")

    class Meta:
        db_table = "state_devices"

    def __str__(self) -> str:
        return f"device {self.device_id}"
