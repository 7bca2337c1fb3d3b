"""Trips say why they ended; a drive that never stops is split after trip_max_duration_s (a threshold row, added
here with get_or_create: never overwriting a value ops may have set)."""

from django.db import migrations, models

THRESHOLDS = [
    ("trip_max_duration_s", 86400.0, "<=", "s",
     "A trip still going after this long is split in two (a tracker that never reports a stop, GPS drift): keeps "
     "re-folding a moving vehicle's trip bounded work."),
]  # fmt: skip


def seed(apps, schema_editor):
    SloTarget = apps.get_model("slo", "SloTarget")
    for metric, value, comparison, unit, description in THRESHOLDS:
        SloTarget.objects.get_or_create(
            metric=metric,
            defaults={"kind": "threshold", "threshold": value, "comparison": comparison, "unit": unit,
                      "description": description},
        )  # fmt: skip


class Migration(migrations.Migration):
    dependencies = [
        ("state", "0002_history_natural_key"),
        ("slo", "0002_seed_targets"),
    ]

    operations = [
        migrations.AddField(
            model_name="trip",
            name="end_reason",
            field=models.CharField(
                blank=True, help_text="Derived: stop, gap, split (trip_max_duration_s) or open", max_length=8
            ),
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
