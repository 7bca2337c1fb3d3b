"""API and auth: the scope groups, the revoked token families, the rate-limit counters (fleet/auth.py,
fleet/ratelimit.py)."""

from django.db import migrations

# A user holds the scope of every group of the same name they belong to; superusers hold all three.
SCOPE_GROUPS = ("read:fleet", "write:ops", "admin:fleet")


def create_scope_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in SCOPE_GROUPS:
        Group.objects.get_or_create(name=name)


def delete_scope_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=SCOPE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(create_scope_groups, delete_scope_groups),
        # Revoking a refresh token revokes its family: every refresh token rotated from the same login and every
        # access token issued from them (the `sid` claim). Rows older than the refresh lifetime are dead weight.
        migrations.RunSQL(
            """
            CREATE TABLE fleet_revoked_token_families (
                family varchar(64) PRIMARY KEY,
                revoked_at timestamptz NOT NULL DEFAULT now(),
                reason varchar(32) NOT NULL
            )
            """,
            "DROP TABLE fleet_revoked_token_families",
        ),
        # Fixed-window counters (fleet/ratelimit.py): UNLOGGED, because losing them in a crash only lifts limits
        # early, and a logged write per dashboard request would be WAL for nothing. One row per key.
        migrations.RunSQL(
            """
            CREATE UNLOGGED TABLE fleet_rate_limits (
                key varchar(300) PRIMARY KEY,
                window_start bigint NOT NULL,
                hits integer NOT NULL
            )
            """,
            "DROP TABLE fleet_rate_limits",
        ),
    ]
