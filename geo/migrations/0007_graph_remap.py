"""A reload of the road graph moves map matching's observations and speed bands to the new segment ids
(geo/sql/remap.sql, called by geo.services.road_graph_load)."""

from django.db import migrations

from geo.sql import load_sql


class Migration(migrations.Migration):
    dependencies = [
        ("geo", "0006_pois"),
    ]

    operations = [
        migrations.RunSQL(load_sql("remap.sql"), reverse_sql="DROP FUNCTION IF EXISTS geo_graph_remap();"),
    ]
