"""When a trip was first recorded as it stands: the trip lag SLO (state/metrics.py) measures end → this."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("state", "0003_trip_end_reason"),
    ]

    operations = [
        migrations.AddField(
            model_name="trip",
            name="recorded_at",
            field=models.DateTimeField(
                help_text="Processing time: when the projector first wrote the trip as it stands (trip lag SLO)",
                null=True,
            ),
        ),
    ]
