"""Role heartbeats (each role proves it is alive by running a job of its own on a schedule), and the API scopes as
permissions."""

from __future__ import annotations

from django.db import models


class RoleHeartbeat(models.Model):
    """The last time a job of this role ran. Written by the role itself, read by /health/<role>."""

    role = models.CharField(max_length=16, primary_key=True)
    beat_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True)

    class Meta:
        db_table = "fleet_role_heartbeats"

    def __str__(self) -> str:
        return f"{self.role} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"


class ApiScope(models.Model):
    """No table: the holder of the three scope permissions, so that a group carries API scopes the way it carries
    model permissions (one permission model; fleet/auth.py, fleet/groups.py)."""

    class Meta:
        managed = False
        db_table = "fleet_api_scopes"  # never created
        default_permissions = ()
        permissions = [
            ("scope_read_fleet", "API scope read:fleet (dashboards, reports, fleet reads)"),
            ("scope_write_ops", "API scope write:ops (acknowledgements, tickets, odometer, service log)"),
            ("scope_admin_fleet", "API scope admin:fleet (device lifecycle, provisioning, audit)"),
        ]

    def __str__(self) -> str:
        return "API scopes"
