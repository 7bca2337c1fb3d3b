"""One permission model: the API scopes become permissions (on the table-less fleet.ApiScope), and the groups people
are put in — "Ops clerk", "Dispatcher", "Manager", "Fleet admin", and one per scope — carry them beside the model
permissions that match (fleet/groups.py). The scope groups of 0002 keep their members and gain their permission."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

from fleet.groups import groups_ensure


def create_groups(apps, schema_editor):
    # Permissions are normally created after the whole migrate (post_migrate); the groups need them now.
    # A migration's historical app configs have no models module, which create_permissions takes for "no models";
    # lend them one for the call and put back what was there (called with the live registry, as a test does, the
    # real module must come back: emit_post_migrate_signal skips an app without one, and a flush would then
    # recreate no content type, permission or seeded row).
    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = original
    groups_ensure(apps=apps, strict=False)


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0002_api_auth"),
        ("domain", "0002_initial"),
        ("events", "0004_rawevent_reparse_permission"),
        ("state", "0005_parked_events"),
        ("slo", "0003_measurements_alerts"),
        ("ops", "0002_tickets_service_dispatch"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiScope",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "db_table": "fleet_api_scopes",
                "permissions": [
                    ("scope_read_fleet", "API scope read:fleet (dashboards, reports, fleet reads)"),
                    ("scope_write_ops", "API scope write:ops (acknowledgements, tickets, odometer, service log)"),
                    ("scope_admin_fleet", "API scope admin:fleet (device lifecycle, provisioning, audit)"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(create_groups, migrations.RunPython.noop),
    ]
