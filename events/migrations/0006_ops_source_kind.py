"""Ops actions are written to the log under their own source kind, `ops` (events/parsers/ops.py)."""

from django.db import migrations, models

SOURCE_KINDS = [
    ("jimi-iothub", "Jimi IoT Hub push (token + data_list)"),
    ("jimi-tsp", "TrackSolid Pro push (msgType + data)"),
    ("hmac", "Own sender, HMAC-signed JSON"),
    ("csv", "CSV import"),
    ("jimi-poll", "Jimi Open API poll"),
    ("ops", "Ops action (an acknowledgement, an odometer reading, a driver assignment)"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0005_jimi_cursors"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pushsource",
            name="kind",
            field=models.CharField(choices=SOURCE_KINDS, max_length=16),
        ),
        migrations.AlterField(
            model_name="rawevent",
            name="source_kind",
            field=models.CharField(choices=SOURCE_KINDS, max_length=16),
        ),
    ]
