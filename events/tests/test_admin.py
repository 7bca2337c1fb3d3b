"""The log's admin as a clerk uses it: who may re-parse, and what a re-parse does, through Django's test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.urls import reverse

from domain.tests.factories import make_user
from events.admin import REPARSE_INLINE_MAX
from events.models import ParsedEvent, RawEvent
from events.tasks import reparse_rows

pytestmark = pytest.mark.django_db

RAW_EVENTS = reverse("admin:events_rawevent_changelist")
VIEW = "events.view_rawevent"
REPARSE = "events.reparse_rawevent"


def _pushed(post_iothub: Any, n: int) -> list[int]:
    """n IoT Hub pushes of one fix each, stored and not parsed yet (no worker runs here)."""
    for i in range(n):
        item = {"deviceImei": "868120246598152", "gpsTime": f"2026-01-13 02:{i // 60:02d}:{i % 60:02d}",
                "lat": -1.2921 + i * 1e-4, "lng": 36.8219, "gpsSpeed": 30}  # fmt: skip
        assert post_iothub("pushgps", [item]).status_code == 200
    return sorted(RawEvent.objects.values_list("id", flat=True))


def _reparse(client: Any, ids: list[int]) -> Any:
    return client.post(RAW_EVENTS, {"action": "reparse_selected", ACTION_CHECKBOX_NAME: ids, "index": 0}, follow=True)


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _queued() -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT queue_name, jsonb_typeof(args), args::text FROM procrastinate_jobs"
            " WHERE task_name = 'events.reparse_rows'"
        )
        return [{"queue": q, "type": t, **json.loads(args)} for q, t, args in cursor.fetchall()]


def _offered(client: Any) -> set[str]:
    response = client.get(RAW_EVENTS)
    assert response.status_code == 200
    form = response.context["action_form"]
    return {name for name, _label in form.fields["action"].choices} if form else set()


def test_it_does_not_let_a_clerk_who_may_only_view_the_log_re_parse_it(client, post_iothub, iothub_source):
    ids = _pushed(post_iothub, REPARSE_INLINE_MAX + 1)
    client.force_login(make_user("viewer", perms=(VIEW,)))
    assert "reparse_selected" not in _offered(client)
    response = _reparse(client, ids)
    assert not any("re-parse" in m.lower() for m in _messages(response))
    assert _queued() == []
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"pending"}
    assert not ParsedEvent.objects.exists()
    client.force_login(make_user("parser", perms=(VIEW, REPARSE)))
    assert "reparse_selected" in _offered(client)


def test_it_queues_a_large_selection_for_the_worker_which_re_parses_it(client, post_iothub, iothub_source):
    ids = _pushed(post_iothub, REPARSE_INLINE_MAX + 1)
    client.force_login(make_user("parser", perms=(VIEW, REPARSE)))
    response = _reparse(client, ids)
    assert f"{len(ids)} rows queued for re-parse." in _messages(response)
    [job] = _queued()
    assert (job["queue"], job["type"], sorted(job["raw_ids"])) == ("parse", "object", ids)
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"pending"}  # nothing parsed in the request
    reparse_rows(raw_ids=job["raw_ids"], received_at=job["received_at"])  # what the worker runs
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"parsed"}
    assert sorted(ParsedEvent.objects.values_list("raw_id", flat=True)) == ids


def test_it_re_parses_a_few_rows_at_once_for_a_superuser(client, post_iothub, iothub_source):
    ids = _pushed(post_iothub, 2)
    client.force_login(make_user("admin", superuser=True))
    response = _reparse(client, ids)
    assert "Re-parsed 2 raw events: 2 events, 0 failed." in _messages(response)
    assert _queued() == []
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"parsed"}
