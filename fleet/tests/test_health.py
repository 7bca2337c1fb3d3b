"""GET /health/<role>: database reachable and the role's own heartbeat fresh; 200 or 503 with a JSON body."""

from __future__ import annotations

from datetime import timedelta

import requests
from django.utils import timezone

from devtools.testing.fixtures import wait_until
from fleet.models import RoleHeartbeat


def test_it_reports_the_gateway_healthy_when_the_database_answers(client, db):
    response = client.get("/health/gateway")
    assert response.status_code == 200
    assert response.json()["checks"] == {"migrations_complete": True}


def test_it_reports_a_worker_that_never_beat_as_unavailable(client, db):
    response = client.get("/health/worker")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["checks"] == {"heartbeat_fresh": False, "listening": False}


def test_it_reports_a_stale_cron_tick_as_unavailable(client, db, settings):
    settings.ROLE_HEARTBEAT_MAX_AGE_S = 30
    RoleHeartbeat.objects.create(role="cron", beat_at=timezone.now() - timedelta(seconds=31))
    assert client.get("/health/cron").status_code == 503
    RoleHeartbeat.objects.filter(role="cron").update(beat_at=timezone.now())
    assert client.get("/health/cron").status_code == 200


def test_it_refuses_unknown_roles(client, db):
    assert client.get("/health/nobody").status_code == 404


def test_it_follows_a_real_worker_up_and_down(client, transactional_db, role_process):
    worker = role_process("worker")
    wait_until(lambda: client.get("/health/worker").status_code == 200, timeout=30)
    worker.stop()
    # Its LISTEN connection closes with it: unhealthy at once, without waiting for the heartbeat to age.
    response = wait_until(lambda: (r := client.get("/health/worker")).status_code == 503 and r, timeout=10)
    assert response.json()["checks"]["listening"] is False


def test_it_follows_a_real_cron_role_up_and_down(client, transactional_db, role_process, settings):
    settings.ROLE_HEARTBEAT_MAX_AGE_S = 3
    cron = role_process("cron")
    wait_until(lambda: client.get("/health/cron").status_code == 200, timeout=30)
    cron.stop()
    wait_until(lambda: client.get("/health/cron").status_code == 503, timeout=15)


def test_it_answers_503_when_the_database_is_unreachable(role_process):
    gateway = role_process("gateway", env={"DATABASE_URL": "postgis://postgres@127.0.0.1:9/nowhere"})
    gateway.wait_http("/health/gateway")
    response = requests.get(gateway.base_url + "/health/gateway", timeout=10)
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"
