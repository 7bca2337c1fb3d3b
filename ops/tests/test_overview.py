"""The ops overview page: roles, queues, SLOs and ingest per source in one admin page."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import connection

from events.models import PushSource


def _cells(page: str) -> list[list[str]]:
    """Every table row of the page as its cells' text."""
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", page, re.S)]


def _row(page: str, *first: str) -> list[str]:
    (row,) = [cells for cells in _cells(page) if cells[: len(first)] == list(first)]
    return row


def test_it_shows_roles_queues_slos_and_ingest_to_staff(client, db, account):
    from events.services import raw_events_parse_batch

    PushSource.objects.create(name="hub", kind="jimi-iothub", account=account, secret="tok")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the work-list trigger fires now, not at a commit
    fix = {"deviceImei": "868120246598152", "gpsTime": "2026-01-13 02:24:37", "lat": -1.29, "lng": 36.82}
    for data_list in ([fix], [{**fix, "gpsTime": "2026-01-13 02:24:47"}], "not json"):
        body = urlencode(
            {"token": "tok", "data_list": data_list if isinstance(data_list, str) else json.dumps(data_list)}
        )
        client.post("/push/iothub/hub/pushgps", data=body, content_type="application/x-www-form-urlencoded")
    for _ in range(2):
        client.post("/push/iothub/hub/pushgps", data="token=wrong", content_type="application/x-www-form-urlencoded")
    admin = get_user_model().objects.create_superuser("ops", password="pw-ops-123456")
    client.force_login(admin)

    page = client.get("/admin/ops-overview/").content.decode()
    for text in ("Ops overview", "parser_lag_p95_sec"):
        assert text in page, text
    assert _row(page, "worker")[1] == "<strong>unhealthy</strong>"  # no worker runs in this test
    assert _row(page, "parse")[1] == "3"  # three accepted pushes wait for the parser
    assert _row(page, "hub", "pushgps")[2:5] == ["3", "0", "0"]  # accepted, refused, parse failures
    assert _row(page, "hub", "(refused: bad_token)")[2:4] == ["0", "2"]

    raw_events_parse_batch(limit=10)
    page = client.get("/admin/ops-overview/").content.decode()
    assert _row(page, "parse")[1] == "0"
    assert _row(page, "hub", "pushgps")[2:5] == ["3", "0", "1"]  # the body that is not JSON failed


def test_it_sends_anonymous_visitors_to_the_login(client, db):
    response = client.get("/admin/ops-overview/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
