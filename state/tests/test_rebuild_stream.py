"""The trips rebuild reads history as a stream fetched ahead of the fold: any chunking gives the same trips, and a
fold that fails stops the stream and leaves the connection usable."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection

from state.projectors import trips
from state.tests.drives import T0, drive, end_of, feed, stay, stops_of, trips_of

pytestmark = pytest.mark.django_db


def day(d: int) -> list:
    ev = drive(d, T0, seconds=600)
    ev += stay(d, T0 + timedelta(seconds=600), seconds=1200, at=end_of(ev))
    ev += drive(d, T0 + timedelta(seconds=1800), seconds=600, origin=end_of(ev))[1:]
    return ev


def test_a_rebuild_in_small_chunks_gives_the_trips_the_projection_gave(make_device, account, monkeypatch):
    devices = [make_device().id for _ in range(3)]
    for d in devices:
        feed(day(d), account_id=account.id)
    projected = {d: (trips_of(d), stops_of(d)) for d in devices}
    assert all(t for t, _ in projected.values())
    # Chunks of 7 rows: devices start and end in the middle of a chunk and span several.
    monkeypatch.setattr(trips, "REBUILD_FETCH_ROWS", 7)
    trips.trips_rebuild()
    assert {d: (trips_of(d), stops_of(d)) for d in devices} == projected


def test_a_fold_that_fails_stops_the_stream_and_the_connection_goes_on(make_device, account, monkeypatch):
    for _ in range(3):
        d = make_device().id
        feed(day(d), account_id=account.id)
    folded = []

    def failing_fold(fixes, p, **kwargs):
        folded.append(len(fixes))
        if len(folded) == 2:
            raise RuntimeError("fold failed")
        return [], []

    monkeypatch.setattr(trips, "REBUILD_FETCH_ROWS", 5)
    monkeypatch.setattr(trips, "fold", failing_fold)
    with pytest.raises(RuntimeError, match="fold failed"):
        trips.trips_rebuild()
    assert not [t for t in threading.enumerate() if t.name == "trips-rebuild-fetch"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM state_position_history")
        assert cursor.fetchone()[0] > 0
