"""The road graph: geo_ways (pgRouting's edge table), geo_ways_vertices, geo_graph_loads, and the staging schema
and functions a load swaps a new graph in with (geo/sql/graph.sql)."""

import django.contrib.gis.db.models.fields
from django.db import migrations, models

from geo.sql import load_sql


class Migration(migrations.Migration):
    dependencies = [
        ("geo", "0001_route_requests"),
    ]

    operations = [
        migrations.CreateModel(
            name="GraphLoad",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("file_name", models.CharField(max_length=255)),
                ("sha256", models.CharField(max_length=64)),
                ("file_bytes", models.BigIntegerField()),
                ("loaded_at", models.DateTimeField()),
                ("ways", models.IntegerField(help_text="OSM ways kept")),
                ("segments", models.IntegerField()),
                ("vertices", models.IntegerField()),
                ("length_km", models.FloatField(help_text="Total length of the segments")),
                ("seconds", models.FloatField(help_text="How long the load took")),
            ],
            options={
                "db_table": "geo_graph_loads",
                "ordering": ["-loaded_at"],
                "get_latest_by": "loaded_at",
            },
        ),
        migrations.CreateModel(
            name="WayVertex",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("osm_node_id", models.BigIntegerField(unique=True)),
                ("geom", django.contrib.gis.db.models.fields.PointField(srid=4326)),
            ],
            options={
                "db_table": "geo_ways_vertices",
            },
        ),
        migrations.CreateModel(
            name="Way",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("osm_id", models.BigIntegerField(help_text="The OSM way this segment is a piece of")),
                ("source", models.BigIntegerField(help_text="geo_ways_vertices.id at the start")),
                ("target", models.BigIntegerField(help_text="geo_ways_vertices.id at the end")),
                ("geom", django.contrib.gis.db.models.fields.LineStringField(srid=4326)),
                ("length_m", models.FloatField(help_text="Geodesic length (metres)")),
                ("cost", models.FloatField(help_text="Seconds source → target")),
                ("reverse_cost", models.FloatField(help_text="Seconds target → source; -1: one-way")),
                ("highway", models.CharField(max_length=32)),
                (
                    "maxspeed_kmh",
                    models.FloatField(blank=True, help_text="OSM maxspeed in km/h; null: none usable", null=True),
                ),
                ("speed_kmh", models.FloatField(help_text="The speed of the costs: maxspeed, else the class default")),
                ("oneway", models.BooleanField()),
                ("name", models.TextField(blank=True, default="")),
                ("x1", models.FloatField()),
                ("y1", models.FloatField()),
                ("x2", models.FloatField()),
                ("y2", models.FloatField()),
            ],
            options={
                "db_table": "geo_ways",
                "indexes": [
                    models.Index(fields=["source"], name="geo_ways_source"),
                    models.Index(fields=["target"], name="geo_ways_target"),
                    models.Index(fields=["osm_id"], name="geo_ways_osm_id"),
                ],
            },
        ),
        migrations.RunSQL(
            load_sql("graph.sql"),
            reverse_sql="""
                DROP FUNCTION IF EXISTS geo_graph_swap();
                DROP FUNCTION IF EXISTS geo_graph_build();
                DROP FUNCTION IF EXISTS geo_graph_stage();
                DROP SCHEMA IF EXISTS geo_staging CASCADE;
            """,
        ),
    ]
