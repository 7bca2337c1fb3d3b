"""The ops overview page: roles, queues, SLOs and ingest per source in one admin page."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.contrib.auth import get_user_model

from events.models import PushSource


def test_it_shows_roles_queues_slos_and_ingest_to_staff(client, db, account):
    PushSource.objects.create(name="hub", kind="jimi-iothub", account=account, secret="tok")
    body = urlencode({"token": "tok", "data_list": json.dumps([])})
    client.post("/push/iothub/hub/pushgps", data=body, content_type="application/x-www-form-urlencoded")
    client.post("/push/iothub/hub/pushgps", data="token=wrong", content_type="application/x-www-form-urlencoded")
    admin = get_user_model().objects.create_superuser("ops", password="pw-ops-123456")
    client.force_login(admin)
    page = client.get("/admin/ops-overview/").content.decode()
    for text in (
        "Ops overview",
        "worker",
        "unhealthy",
        "parse",
        "parser_lag_p95_sec",
        "pushgps",
        "(refused: bad_token)",
    ):
        assert text in page, text


def test_it_sends_anonymous_visitors_to_the_login(client, db):
    response = client.get("/admin/ops-overview/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
