"""A poisoned event holds nothing back: its batch is bisected, the rest folds at once, the event is retried alone
and then parked where a clerk can see it and re-queue it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from state.models import ProjectionPending, ProjectorCheckpoint
from state.tests.drives import T0, drive, fix, insert, live_of, project

pytestmark = pytest.mark.django_db

S = timedelta(seconds=1)


def poisoned_batch(make_device, account):
    d = make_device().id
    good = drive(d, T0, seconds=300)
    poison = fix(d, T0 + 150 * S + S / 2, -1.29, 36.82, 10.0)
    poison.payload["lat"] = "not a number"
    insert([*good, poison], account_id=account.id)
    return d, good


def test_it_folds_the_rest_of_a_batch_in_the_same_run(make_device, account, settings):
    settings.PROJECT_RETRY_BACKOFF_S = 3600
    d, good = poisoned_batch(make_device, account)
    project()  # one run, the back-off far away: no retry of the poisoned event can help the others
    assert live_of(d)[1] == good[-1].at
    checkpoint = ProjectorCheckpoint.objects.get(projector="positions")
    assert checkpoint.events_done == len(good)
    assert "invalid input syntax" in checkpoint.last_error
    left = ProjectionPending.objects.get()
    assert (left.kind, left.attempts, left.failed_at) == ("position_fix", 1, None)
    assert "invalid input syntax" in left.last_error


def test_it_parks_an_event_that_keeps_failing_and_requeues_it_on_request(make_device, account, settings, client):
    settings.PROJECT_RETRY_BACKOFF_S = 0
    settings.PROJECT_MAX_ATTEMPTS = 3
    poisoned_batch(make_device, account)
    for _ in range(5):
        project()
    parked = ProjectionPending.objects.get()
    assert parked.attempts == 3
    assert parked.failed_at is not None
    project()  # parked: never claimed again
    assert ProjectionPending.objects.get().attempts == 3

    admin = get_user_model().objects.create_superuser("clerk", password="pw-long-enough-1")
    client.force_login(admin)
    overview = client.get("/admin/ops-overview/").content.decode()
    assert "<td>project: parked events (admin: projection work-list)</td><td>1</td>" in overview
    assert "<td>project</td><td>0</td>" in overview

    listed = client.get("/admin/state/projectionpending/?state=parked")
    assert listed.status_code == 200
    assert b"position_fix" in listed.content
    response = client.post(
        "/admin/state/projectionpending/", {"action": "requeue", "_selected_action": [parked.id]}, follow=True
    )
    assert b"1 parked event(s) re-queued" in response.content
    requeued = ProjectionPending.objects.get()
    assert (requeued.attempts, requeued.failed_at) == (0, None)
    with connection.cursor() as cursor:  # the cause fixed (the event re-parsed with a number): it folds
        cursor.execute(
            "UPDATE events_parsed SET payload = jsonb_set(payload, '{lat}', '-1.29') WHERE id = %s",
            [requeued.parsed_id],
        )
    project()
    assert not ProjectionPending.objects.filter(parsed_id=requeued.parsed_id, failed_at__isnull=False).exists()


def test_it_does_not_let_a_clerk_without_the_permission_requeue(make_device, account, settings, client):
    from django.contrib.auth.models import Permission

    settings.PROJECT_RETRY_BACKOFF_S = 0
    settings.PROJECT_MAX_ATTEMPTS = 1
    poisoned_batch(make_device, account)
    project()
    parked = ProjectionPending.objects.get(failed_at__isnull=False)
    viewer = get_user_model().objects.create_user("viewer", password="pw-long-enough-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_projectionpending"))
    client.force_login(viewer)
    page = client.get("/admin/state/projectionpending/")
    assert page.status_code == 200
    assert b"requeue" not in page.content
    client.post("/admin/state/projectionpending/", {"action": "requeue", "_selected_action": [parked.id]})
    assert ProjectionPending.objects.get(id=parked.id).failed_at is not None
