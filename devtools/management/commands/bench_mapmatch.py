"""Map-matching accuracy on a real GPS track with a hand-checked true path, through the whole pipeline.

DIR holds `network.osm` (the road network), `track.csv` (`t_seconds,lat,lon`) and `truth.txt` (the true OSM way
ids, one per line, in driving order) — the layout of devtools/data/mapmatch/. On a scratch database: load the
network with `manage.py load_osm`, replay the track as IoT Hub /pushgps fixes of one device through a real gateway
and worker (the parser, then geo's trigger) and cron role (the map-matching projector), wait until every fix is
matched, and compare the OSM ways of the device's segment observations with the truth:

    recall    = |truth ∩ matched| / |truth|      (of the ways driven, the share the matcher found)
    precision = |truth ∩ matched| / |matched|    (of the ways matched, the share that were driven)

over distinct way ids. The last line is one JSON object: fixes, recall, precision (and the seconds it took).
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import requests
from django.core.management.base import BaseCommand, CommandError

from devtools import bench
from devtools.management.commands._bench_data import BENCH_SECRET, BENCH_SOURCE, seed_source

IMEI = "868120246599999"


def track_items(path: Path, start: datetime) -> list[dict[str, Any]]:
    """The track's fixes as IoT Hub /pushgps items of one device, dated from `start`."""
    items = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            at = start + timedelta(seconds=float(row["t_seconds"]))
            items.append(
                {
                    "deviceImei": IMEI,
                    "gpsTime": at.strftime("%Y-%m-%d %H:%M:%S"),
                    "gateTime": at.strftime("%Y-%m-%d %H:%M:%S"),
                    "lat": float(row["lat"]),
                    "lng": float(row["lon"]),
                    "satelliteNum": 9,
                    "gpsMode": 0,
                    "postType": 1,
                    "acc": 1,
                }
            )
    return items


def recall_precision(truth: list[int], matched: list[int]) -> tuple[float, float]:
    found = set(truth) & set(matched)
    return len(found) / len(set(truth)), (len(found) / len(set(matched)) if matched else 0.0)


class Command(BaseCommand):
    help = "Map-matching recall and precision of a GPS track against its true path. Last line is JSON."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("dir", help="a directory with network.osm, track.csv and truth.txt")
        parser.add_argument("--per-push", type=int, default=10, help="fixes per /pushgps push")
        parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the match")

    def handle(self, *args: Any, **opts: Any) -> None:
        folder = Path(opts["dir"])
        for name in ("network.osm", "track.csv", "truth.txt"):
            if not (folder / name).is_file():
                raise CommandError(f"{folder / name} is missing")
        truth = [int(line) for line in (folder / "truth.txt").read_text().split() if line.strip()]
        # Dated in the recent past (the log's partitions cover it; no fix is in the future).
        items = track_items(folder / "track.csv", datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
        started = time.monotonic()
        with bench.scratch_database(prefix="fleet_bench_mapmatch") as url:
            info = bench.conninfo_for(url)
            self.stdout.write(bench.manage("load_osm", str((folder / "network.osm").resolve()), url=url).strip())
            seed_source(info)
            self._replay(url, info, items, per_push=opts["per_push"], timeout=opts["timeout"])
            with psycopg.connect(**info) as conn:
                matched = [
                    r[0]
                    for r in conn.execute(
                        "SELECT o.osm_id FROM geo_segment_observations o JOIN domain_devices d ON d.id = o.device_id"
                        " WHERE d.imei = %s ORDER BY o.observed_at",
                        [IMEI],
                    ).fetchall()
                ]
                fixes = conn.execute("SELECT count(*) FROM events_parsed WHERE kind = 'position_fix'").fetchone()[0]
        recall, precision = recall_precision(truth, matched)
        missed = sorted(set(truth) - set(matched))
        extra = sorted(set(matched) - set(truth))
        self.stdout.write(
            f"{folder.name}: {fixes} fixes, {len(set(truth))} true ways, {len(set(matched))} matched:"
            f" recall {recall:.3f}, precision {precision:.3f}; missed {missed}, not driven {extra}"
        )
        self.stdout.write(
            json.dumps(
                {
                    "track": folder.name,
                    "fixes": fixes,
                    "recall": round(recall, 4),
                    "precision": round(precision, 4),
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )

    def _replay(self, url: str, info: dict[str, Any], items: list[dict[str, Any]], *, per_push: int,
                timeout: float) -> None:  # fmt: skip
        port = bench.free_port()
        base = f"http://127.0.0.1:{port}"
        with (
            bench.role("gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, RATE_LIMIT_PUSH_PER_MIN="0"),
            bench.role("worker", "--no-migrate", url=url),
            bench.role("cron", "--no-wait", url=url),  # map matching runs in the cron role
        ):
            bench.wait_http(base + "/health/gateway")
            bench.wait_listening(info)
            session = requests.Session()
            push_url = f"{base}/push/iothub/{BENCH_SOURCE}/pushgps"
            for k in range(0, len(items), per_push):
                body = urlencode({"token": BENCH_SECRET, "data_list": json.dumps(items[k : k + per_push])})
                response = session.post(
                    push_url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
                )
                if response.status_code != 200:
                    raise CommandError(f"push {k // per_push} answered {response.status_code}: {response.text[:200]}")
            self._wait_matched(info, timeout)

    @staticmethod
    def _wait_matched(info: dict[str, Any], timeout: float) -> None:
        """Until every push is parsed and the map-matching work-list is empty (its rows leave it in the
        transaction that writes their observations)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(**info) as conn:
            while time.monotonic() < deadline:
                waiting = conn.execute(
                    "SELECT (SELECT count(*) FROM events_raw_pending) + (SELECT count(*) FROM geo_match_pending)"
                ).fetchone()[0]
                if not waiting:
                    return
                time.sleep(0.5)
        raise CommandError(f"the track was not matched within {timeout:.0f} s")
