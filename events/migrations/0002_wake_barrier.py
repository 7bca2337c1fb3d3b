"""Wake-up without a hot job row (writers hold a shared advisory lock, drains pass a barrier); lz4 bodies."""

from __future__ import annotations

from django.db import migrations

from events.sql import load_sql


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [
        migrations.RunSQL(
            load_sql("wake.sql"),
            reverse_sql="DROP FUNCTION IF EXISTS fleet_wake_barrier(text); DROP FUNCTION IF EXISTS fleet_wake_key(text);",
        ),
        # Bodies and payloads are JSON and compress well; lz4 costs the push path far less CPU than pglz.
        # Partitions created later inherit the column's compression.
        migrations.RunSQL(
            "ALTER TABLE events_raw ALTER COLUMN body SET COMPRESSION lz4;"
            "ALTER TABLE events_parsed ALTER COLUMN payload SET COMPRESSION lz4;",
            reverse_sql="ALTER TABLE events_raw ALTER COLUMN body SET COMPRESSION pglz;"
            "ALTER TABLE events_parsed ALTER COLUMN payload SET COMPRESSION pglz;",
        ),
    ]
