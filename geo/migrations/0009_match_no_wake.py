"""Map matching moves to the cron role's `geo` queue and no longer wakes a job per commit: fixes wait until their
windows have closed, and geo's sweep drains what settled (geo/sql/match_pending.sql)."""

from django.db import migrations

from geo.sql import load_sql


class Migration(migrations.Migration):
    dependencies = [("geo", "0008_match_settled")]

    operations = [migrations.RunSQL(load_sql("match_pending.sql"), reverse_sql=migrations.RunSQL.noop)]
