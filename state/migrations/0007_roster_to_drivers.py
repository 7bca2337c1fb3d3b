"""The HR roster reaches the domain: driver_record events are routed to the drivers projector (state/projectors/
drivers.py), which applies them through domain.services.roster_record_apply.

Rosters that arrived before this migration were parsed and not projected; `manage.py replay --projector drivers`
applies them (in order; a newer roster's word per driver wins). The migration does not do it itself: finding them
is a scan of the whole log, not a migration's job."""

from django.db import migrations

# Which projector folds each parsed kind; state/tests/test_projector_kinds.py ties it to state/projectors/groups.py.
PROJECTOR_OF = """
CREATE OR REPLACE FUNCTION state_projector_of(p_kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_kind IN ('position_fix', 'trip_report', 'parking_report') THEN 'positions'
        WHEN p_kind IN ('alarm', 'heartbeat', 'device_event', 'device_meta', 'obd', 'fuel', 'temperature', 'lbs',
                        'odometer_reading', 'alarm_ack')
            THEN 'readings'
        WHEN p_kind IN ('driver_assignment', 'driver_record') THEN 'drivers'
        -- unsupported is not projected.
    END
$$;
"""

PROJECTOR_OF_0006 = """
CREATE OR REPLACE FUNCTION state_projector_of(p_kind text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_kind IN ('position_fix', 'trip_report', 'parking_report') THEN 'positions'
        WHEN p_kind IN ('alarm', 'heartbeat', 'device_event', 'device_meta', 'obd', 'fuel', 'temperature', 'lbs',
                        'odometer_reading', 'alarm_ack')
            THEN 'readings'
        WHEN p_kind IN ('driver_assignment') THEN 'drivers'
    END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("state", "0006_ops_events"),
    ]

    operations = [
        migrations.RunSQL(PROJECTOR_OF, reverse_sql=PROJECTOR_OF_0006),
    ]
