"""Role heartbeats: each role proves it is alive by running a job of its own on a schedule."""

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
