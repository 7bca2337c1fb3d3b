"""The five SLOs and every operational threshold that would otherwise be a literal in code
(the list lives in slo/seed.py, which also re-seeds after each migrate)."""

from __future__ import annotations

from django.db import migrations

from slo.seed import slo_targets_seed


def seed(apps, schema_editor):
    slo_targets_seed(apps.get_model("slo", "SloTarget"))


class Migration(migrations.Migration):
    dependencies = [("slo", "0001_targets")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
