"""Gateway throughput: the real push view against a bare INSERT view, same server, same run."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from devtools import bench
from devtools.management.commands._bench_data import BENCH_SOURCE, pushgps_body, seed_source


class Command(BaseCommand):
    help = "Benchmark the push gateway (gunicorn, as in production) with wrk; last line is a JSON object."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--seconds", type=int, default=20)
        parser.add_argument("--concurrency", type=int, default=16)
        parser.add_argument("--items", type=int, default=10, help="fixes per /pushgps batch")

    def handle(self, *args: Any, **opts: Any) -> None:
        body = pushgps_body(items=opts["items"])
        with bench.scratch_database() as url:
            seed_source(bench.conninfo_for(url))
            port = bench.free_port()
            base = f"http://127.0.0.1:{port}"
            # The push rate limit stays on (its check is part of the measured path) but out of reach.
            unlimited = {"BENCH_BARE_VIEW": "true", "RATE_LIMIT_PUSH_PER_MIN": str(10**9)}
            with bench.role("gateway", "--no-wait", "--bind", f"127.0.0.1:{port}", url=url, **unlimited):
                bench.wait_http(base + "/health/gateway")
                push_url = f"{base}/push/iothub/{BENCH_SOURCE}/pushgps"
                bare_url = f"{base}/push/_bare/{BENCH_SOURCE}"
                bench.wrk(push_url, body=body, seconds=2, concurrency=opts["concurrency"])  # warm-up
                real = bench.wrk(push_url, body=body, seconds=opts["seconds"], concurrency=opts["concurrency"])
                bare = bench.wrk(bare_url, body=body, seconds=opts["seconds"], concurrency=opts["concurrency"])
        self.stdout.write(
            f"push view: {real['req_s']:.0f} req/s, p50 {real['p50_ms']:.1f} ms, p95 {real['p95_ms']:.1f} ms,"
            f" p99 {real['p99_ms']:.1f} ms, errors {real['errors'] + real['non2xx']};"
            f" bare INSERT view: {bare['req_s']:.0f} req/s ({len(body)} B bodies, c={opts['concurrency']})"
        )
        result = {
            "req_s": round(real["req_s"], 1),
            "p50_ms": round(real["p50_ms"], 2),
            "p95_ms": round(real["p95_ms"], 2),
            "p99_ms": round(real["p99_ms"], 2),
            "errors": real["errors"] + real["non2xx"],
            "ceiling_req_s": round(bare["req_s"], 1),
            "ratio": round(real["req_s"] / bare["req_s"], 3),
            "body_bytes": len(body),
            "concurrency": opts["concurrency"],
            "seconds": opts["seconds"],
        }
        self.stdout.write(json.dumps(result))
