"""The database extensions every layer relies on."""

from __future__ import annotations

from django.contrib.postgres.operations import BtreeGistExtension, CreateExtension
from django.db import migrations


class Migration(migrations.Migration):
    initial = True
    dependencies: list[tuple[str, str]] = []

    operations = [
        CreateExtension("postgis"),
        CreateExtension("pgrouting"),
        BtreeGistExtension(),
    ]
