"""The simulated clock that drives the generator and the poster.

Simulated time runs `speedup` times faster than the wall clock but never ahead of it: every fix is dated in the past
or now, never in the future (the positions projector would judge a fix dated after its arrival `future`). A bounded
run (`minutes`) therefore starts its clock in the past, just far enough that its last tick falls on the moment it
ends: `minutes * (1 - 1/speedup)` before now. An unbounded run starts now and runs in real time (a speedup cannot
run ahead of now). When posting falls behind (the gateway is down and pushes wait for it), the ticks that came due
meanwhile are posted one after another as soon as the gateway is back. At the end of a bounded run, vehicles still
without signal send the fixes they buffered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from devtools.simulator.fleet import FleetSimulator, Push
from devtools.simulator.poster import Poster, Stopped

log = structlog.get_logger("devtools.simulator")


def simulated_start(now: float, *, minutes: float | None, speedup: float) -> int:
    """The simulated time (epoch s) of the first tick: now, or for a bounded run early enough to end at now."""
    lead = minutes * 60 * (1 - 1 / speedup) if minutes and speedup > 1 else 0.0
    return int(now - lead)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def run(
    simulator: FleetSimulator,
    poster: Poster,
    *,
    start: int,
    speedup: float,
    minutes: float | None,
    stop: threading.Event,
    wall: Callable[[], float] = time.time,
    progress_every_s: float = 60.0,
) -> dict[str, Any]:
    """Tick from `start` every `every_s` simulated seconds until `minutes` have passed (or forever), posting each
    tick's pushes; returns a summary. Stops between two posts when `stop` is set."""
    every = simulator.config.every_s
    end = start + minutes * 60 if minutes else None
    real0 = wall()
    last_progress = real0
    k = 0
    unsent = 0
    last = start - every  # the last tick posted
    while not stop.is_set():
        t = start + k * every
        if end is not None and t > end:
            # The end of a bounded run: vehicles still without signal send what they buffered, so every fix the
            # run made reaches the gateway.
            unsent = _post(poster, simulator.flush(last), last)
            break
        due = max(real0 + (t - start) / speedup, float(t))
        if (delay := due - wall()) > 0 and stop.wait(delay):
            break
        if unsent := _post(poster, simulator.tick(t).pushes, t):
            break
        last = t
        k += 1
        if wall() - last_progress >= progress_every_s:
            last_progress = wall()
            log.info("simulator.progress", **_summary(simulator, poster, last, real0, wall()))
    summary = _summary(simulator, poster, last, real0, wall())
    summary["unsent_posts"] = unsent
    summary["fixes_still_buffered"] = simulator.buffered()
    return summary


def _post(poster: Poster, pushes: list[Push], t: int) -> int:
    """Post pushes in order; the number left unsent when asked to stop (0: all delivered)."""
    for n, push in enumerate(pushes):
        try:
            poster.post(push)
        except Stopped as exc:
            log.warning("simulator.stopping", reason=str(exc), unsent_posts=len(pushes) - n, sim_time=_iso(t))
            return len(pushes) - n
    return 0


def _summary(simulator: FleetSimulator, poster: Poster, t: int, real0: float, now: float) -> dict[str, Any]:
    s = simulator.stats
    return {
        "sim_time": _iso(t),  # of the last tick posted
        "behind_s": round(now - t),
        "wall_s": round(now - real0, 1),
        "ticks": s["ticks"],
        "fixes": s["fixes"],
        "fixes_late": s["fixes_late"],
        "bursts": s["bursts"],
        "alarms": s["alarms"],
        "lbs": s["lbs"],
        "posts": s["posts"],
        "duplicate_posts": s["duplicates"],
        "accepted": poster.stats["accepted"],
        "retries": poster.stats["retries"],
        "retries_by_status": {
            k.removeprefix("retries_"): v for k, v in poster.stats.items() if k.startswith("retries_")
        },
        "vehicles": dict(simulator.modes()),
    }
