"""Writes owned by the project app: role heartbeats."""

from __future__ import annotations

import os
import socket

from django.utils import timezone

from fleet.models import RoleHeartbeat


def role_heartbeat_record(*, role: str) -> None:
    RoleHeartbeat.objects.update_or_create(
        role=role,
        defaults={"beat_at": timezone.now(), "host": socket.gethostname(), "pid": os.getpid()},
    )
