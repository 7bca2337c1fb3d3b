"""Hidden-Markov-model map matching (Newson & Krumm, "Hidden Markov Map Matching Through Noise and Sparseness",
ACM SIGSPATIAL 2009). Pure: no database; the projector (geo/matching/projector.py) feeds it fixes, their candidate
segments and the road graph around them, and writes what it returns.

- Thinning: a fix closer than 2 sigma to the last one kept is dropped (a standing or crawling vehicle's fixes say
  nothing new and only multiply the states; N&K §4).
- Candidates: the segments within the search radius of a fix (the projector's query), each at the point of the
  segment nearest the fix: (segment, offset from the segment's source in metres, distance in metres).
- Emission: a Gaussian of the distance, log p = -(d / sigma)^2 / 2.
- Transition: an exponential of the difference between the route distance from candidate to candidate and the
  great-circle distance between the fixes, log p = -|d_route - d_gc| / beta. Route distances respect one-ways
  (a one-way segment runs source → target); a candidate may fall up to sigma behind its predecessor on the same
  one-way segment (GPS noise, not a U-turn). A route longer than the fix interval at fix_max_speed_kmh, plus two
  search radii, is impossible.
- Breaks: a chain ends where the fixes are more than max_gap_s apart or where no candidate can reach any
  candidate of the next fix; a fix without any candidate is skipped. Each chain is decoded alone.
- Decoding: Viterbi for the most likely sequence; forward-backward for each chosen candidate's posterior
  probability (its confidence).

The matched path is then cut into traversals: a stretch of one segment driven in one direction, with the times it
was entered and left (interpolated along the route between fixes), the length covered and the speed.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from state.geometry import haversine_m

NEG_INF = float("-inf")
# A candidate this close to an end of its segment puts the vehicle at the vertex there (for its confidence).
END_TOLERANCE_M = 1.0


@dataclass(frozen=True)
class Fix:
    t: float  # device time, epoch seconds
    lat: float
    lng: float


@dataclass(frozen=True)
class Candidate:
    segment: int
    offset_m: float  # from the segment's source, along it
    distance_m: float  # from the fix


@dataclass(frozen=True)
class Segment:
    id: int
    osm_id: int
    source: int
    target: int
    length_m: float
    oneway: bool


@dataclass(frozen=True)
class Params:
    sigma_m: float
    beta_m: float
    max_gap_s: float
    max_speed_ms: float
    search_radius_m: float


@dataclass
class Graph:
    """The road segments around a window, with the moves each vertex allows: (segment, next vertex, forward)."""

    segments: dict[int, Segment]
    moves: dict[int, list[tuple[int, int, bool]]] = field(default_factory=dict)

    @classmethod
    def of(cls, segments: Sequence[Segment]) -> Graph:
        graph = cls({s.id: s for s in segments})
        for s in segments:
            graph.moves.setdefault(s.source, []).append((s.id, s.target, True))
            if not s.oneway:
                graph.moves.setdefault(s.target, []).append((s.id, s.source, False))
        return graph


# A piece of a route: segment, driven forward (source → target) or not, from offset, to offset (metres from source).
Piece = tuple[int, bool, float, float]


@dataclass(frozen=True)
class Traversal:
    segment: int
    osm_id: int
    forward: bool
    entered_at: float
    left_at: float
    length_m: float
    complete: bool  # entered at one end of the segment and left at the other
    confidence: float

    @property
    def observed_at(self) -> float:
        return (self.entered_at + self.left_at) / 2

    @property
    def speed_kmh(self) -> float | None:
        seconds = self.left_at - self.entered_at
        return self.length_m / seconds * 3.6 if seconds > 0 else None


def thin(fixes: Sequence[Fix], sigma_m: float) -> list[Fix]:
    """Drop each fix within 2 sigma of the last one kept (the first is always kept)."""
    min_move_m = 2 * sigma_m
    kept: list[Fix] = []
    for f in fixes:
        if kept and haversine_m(kept[-1].lat, kept[-1].lng, f.lat, f.lng) < min_move_m:
            continue
        kept.append(f)
    return kept


def _entries(graph: Graph, b: Candidate) -> tuple[int, ...]:
    """The vertices a route can enter b's segment by (_Reach.to reads their distances)."""
    seg = graph.segments[b.segment]
    return (seg.source,) if seg.oneway else (seg.source, seg.target)


class _Reach:
    """Shortest route distances from one candidate to the vertices within `limit` metres (bounded Dijkstra), with
    the predecessors to rebuild a route. Given `targets`, the search stops once every one of them is settled: the
    distances and routes read afterwards are those of targets, final from that moment, so the answer is the one a
    search of the whole radius gives, at the cost of the radius the vehicle really covered (a vehicle that moved
    100 m in 10 s settles a few dozen vertices instead of every vertex within the speed limit's reach)."""

    def __init__(self, graph: Graph, a: Candidate, limit: float, targets: set[int] | None = None) -> None:
        self.graph, self.a = graph, a
        seg = graph.segments[a.segment]
        self.dist: dict[int, float] = {}
        self.prev: dict[int, tuple[int | None, int, bool]] = {}  # vertex → (previous vertex or None: a, segment, fwd)
        queue: list[tuple[float, int]] = []
        starts = [(seg.length_m - a.offset_m, seg.target, True)]
        if not seg.oneway:
            starts.append((a.offset_m, seg.source, False))
        for d, v, forward in starts:
            if d <= limit and d < self.dist.get(v, math.inf):
                self.dist[v], self.prev[v] = d, (None, seg.id, forward)
                heapq.heappush(queue, (d, v))
        done: set[int] = set()
        left = set(targets) if targets is not None else None
        while queue:
            d, v = heapq.heappop(queue)
            if v in done:
                continue
            done.add(v)
            if left is not None:
                left.discard(v)
                if not left:
                    break
            for seg_id, w, forward in graph.moves.get(v, ()):
                nd = d + graph.segments[seg_id].length_m
                if nd <= limit and nd < self.dist.get(w, math.inf):
                    self.dist[w], self.prev[w] = nd, (v, seg_id, forward)
                    heapq.heappush(queue, (nd, w))

    def to(self, b: Candidate, tolerance_m: float) -> tuple[float, int | None, bool]:
        """(route distance a → b, the vertex b's segment is entered by or None when it stays on a's segment,
        entered forward); distance inf when b is out of reach."""
        a, seg = self.a, self.graph.segments[b.segment]
        if b.segment == a.segment:
            if b.offset_m >= a.offset_m - tolerance_m:
                return max(0.0, b.offset_m - a.offset_m), None, True
            if not seg.oneway:
                return a.offset_m - b.offset_m, None, False
        best: tuple[float, int | None, bool] = (math.inf, None, True)
        via_source = self.dist.get(seg.source, math.inf) + b.offset_m
        if via_source < best[0]:
            best = (via_source, seg.source, True)
        if not seg.oneway:
            via_target = self.dist.get(seg.target, math.inf) + seg.length_m - b.offset_m
            if via_target < best[0]:
                best = (via_target, seg.target, False)
        return best

    def pieces(self, b: Candidate, tolerance_m: float) -> list[Piece]:
        """The route a → b as pieces, in driving order."""
        _, entry, forward = self.to(b, tolerance_m)
        if entry is None:  # along a's own segment
            end = max(b.offset_m, self.a.offset_m) if forward else b.offset_m
            return [(b.segment, forward, self.a.offset_m, end)]
        seg_b = self.graph.segments[b.segment]
        last: Piece = (b.segment, True, 0.0, b.offset_m) if forward else (b.segment, False, seg_b.length_m, b.offset_m)
        middle: list[Piece] = []
        v: int | None = entry
        first: Piece | None = None
        while v is not None:
            previous, seg_id, fwd = self.prev[v]
            seg = self.graph.segments[seg_id]
            if previous is None:  # the first piece: from a to the end of its segment
                first = (seg_id, fwd, self.a.offset_m, seg.length_m if fwd else 0.0)
            else:
                middle.append((seg_id, fwd, 0.0, seg.length_m) if fwd else (seg_id, fwd, seg.length_m, 0.0))
            v = previous
        assert first is not None
        return [first, *reversed(middle), last]


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    if top == NEG_INF:
        return NEG_INF
    return top + math.log(sum(math.exp(v - top) for v in values))


@dataclass
class _Step:
    fix: Fix
    candidates: list[Candidate]
    emission: list[float]


@dataclass
class Matched:
    """One decoded chain: per step its fix, the chosen candidate, its posterior; and the route between steps."""

    fixes: list[Fix]
    chosen: list[Candidate]
    confidence: list[float]
    routes: list[list[Piece]]


def _place(graph: Graph, c: Candidate) -> tuple[float, ...]:
    """Where a candidate puts the vehicle: a vertex when it is at an end of its segment (every segment meeting
    there offers a candidate at the same point), else a point of its segment."""
    seg = graph.segments[c.segment]
    if c.offset_m <= END_TOLERANCE_M:
        return (seg.source,)
    if c.offset_m >= seg.length_m - END_TOLERANCE_M:
        return (seg.target,)
    return (seg.source, seg.target, c.segment, round(c.offset_m, 3))


def _decode(steps: list[_Step], transitions: list[list[list[float]]], graph: Graph) -> tuple[list[int], list[float]]:
    """Viterbi path (indexes into each step's candidates) and each chosen place's posterior probability (the
    candidates that put the vehicle at the same point count together: at a vertex, one per segment meeting there)."""
    n = len(steps)
    score = [list(steps[0].emission)]
    back: list[list[int]] = [[-1] * len(steps[0].candidates)]
    alpha = [list(steps[0].emission)]
    for i in range(1, n):
        t = transitions[i - 1]
        s_prev, a_prev = score[-1], alpha[-1]
        s_row, b_row, a_row = [], [], []
        for b, e in enumerate(steps[i].emission):
            options = [s_prev[a] + t[a][b] for a in range(len(s_prev))]
            best = max(range(len(options)), key=options.__getitem__)
            s_row.append(options[best] + e)
            b_row.append(best)
            a_row.append(_logsumexp([a_prev[a] + t[a][b] for a in range(len(a_prev))]) + e)
        score.append(s_row)
        back.append(b_row)
        alpha.append(a_row)
    beta = [[0.0] * len(steps[-1].candidates)]
    for i in range(n - 2, -1, -1):
        t, nxt, emitted = transitions[i], beta[0], steps[i + 1].emission
        beta.insert(0, [_logsumexp([t[a][b] + emitted[b] + nxt[b] for b in range(len(nxt))]) for a in range(len(t))])
    total = _logsumexp(alpha[-1])
    path = [max(range(len(score[-1])), key=score[-1].__getitem__)]
    for i in range(n - 1, 0, -1):
        path.append(back[i][path[-1]])
    path.reverse()
    posteriors = []
    for i, chosen in enumerate(path):
        place = _place(graph, steps[i].candidates[chosen])
        same = [alpha[i][c] + beta[i][c] for c, cand in enumerate(steps[i].candidates) if _place(graph, cand) == place]
        posteriors.append(math.exp(min(0.0, _logsumexp(same) - total)))
    return path, posteriors


def match(fixes: Sequence[Fix], candidates: Sequence[list[Candidate]], graph: Graph, params: Params) -> list[Matched]:
    """Decode fixes (in time order, with the candidates of each) into chains of matched candidates."""
    chains: list[Matched] = []
    steps: list[_Step] = []
    transitions: list[list[list[float]]] = []
    reaches: list[list[_Reach]] = []

    def close() -> None:
        if steps:
            path, posteriors = _decode(steps, transitions, graph)
            chosen = [steps[i].candidates[c] for i, c in enumerate(path)]
            routes = [reaches[i][path[i]].pieces(chosen[i + 1], params.sigma_m) for i in range(len(steps) - 1)]
            chains.append(Matched([s.fix for s in steps], chosen, posteriors, routes))
        steps.clear()
        transitions.clear()
        reaches.clear()

    for fix, cands in zip(fixes, candidates, strict=True):
        if not cands:
            continue  # no road near this fix: skip it, the chain goes on
        emission = [-0.5 * (c.distance_m / params.sigma_m) ** 2 for c in cands]
        step = _Step(fix, list(cands), emission)
        if steps and fix.t - steps[-1].fix.t > params.max_gap_s:
            close()
        if not steps:
            steps.append(step)
            continue
        prev = steps[-1]
        gc = haversine_m(prev.fix.lat, prev.fix.lng, fix.lat, fix.lng)
        limit = (fix.t - prev.fix.t) * params.max_speed_ms + 2 * params.search_radius_m
        targets = {v for b in step.candidates for v in _entries(graph, b)}
        row_reach = [_Reach(graph, a, limit, targets) for a in prev.candidates]
        matrix = []
        for reach in row_reach:
            row = []
            for b in step.candidates:
                d = reach.to(b, params.sigma_m)[0]
                row.append(NEG_INF if d > limit else -abs(d - gc) / params.beta_m)
            matrix.append(row)
        if all(v == NEG_INF for row in matrix for v in row):
            close()  # nothing reaches this fix: a new chain starts with it
            steps.append(step)
            continue
        reaches.append(row_reach)
        transitions.append(matrix)
        steps.append(step)
    close()
    return chains


def _confidence(chain: Matched, run: Sequence[tuple[Piece, float, float, int]]) -> float:
    """A traversal's confidence: the mean posterior of the fixes at either end of the routes it lies on."""
    routes = {i for *_, i in run}
    fixes = sorted(routes | {i + 1 for i in routes})
    return sum(chain.confidence[i] for i in fixes) / len(fixes)


def traversals(chain: Matched, graph: Graph, tolerance_m: float) -> list[Traversal]:
    """Cut a decoded chain into traversals of one segment in one direction, timed along the route. A piece that
    starts up to `tolerance_m` behind where the last one ended (GPS noise on a one-way) continues it."""
    timed: list[tuple[Piece, float, float, int]] = []  # piece, start time, end time, index of the route
    for i, pieces in enumerate(chain.routes):
        t0, t1 = chain.fixes[i].t, chain.fixes[i + 1].t
        total = sum(abs(p[3] - p[2]) for p in pieces)
        done = 0.0
        for p in pieces:
            length = abs(p[3] - p[2])
            start = t0 + (t1 - t0) * (done / total if total else 0.0)
            done += length
            end = t0 + (t1 - t0) * (done / total if total else 1.0)
            timed.append((p, start, end, i))
    out: list[Traversal] = []
    run: list[tuple[Piece, float, float, int]] = []

    def flush() -> None:
        if not run:
            return
        (seg_id, forward, begin, _), first_t = run[0][0], run[0][1]
        end, last_t = run[-1][0][3], run[-1][2]
        seg = graph.segments[seg_id]
        length = abs(end - begin)
        if length > 0:
            at_start = begin == (0.0 if forward else seg.length_m)
            at_end = end == (seg.length_m if forward else 0.0)
            out.append(
                Traversal(
                    segment=seg_id, osm_id=seg.osm_id, forward=forward, entered_at=first_t, left_at=last_t,
                    length_m=length, complete=at_start and at_end, confidence=_confidence(chain, run),
                )
            )  # fmt: skip
        run.clear()

    for item in timed:
        (seg_id, forward, begin, _end) = item[0]
        if run:
            last_piece = run[-1][0]
            behind = last_piece[3] - begin if forward else begin - last_piece[3]
            continues = last_piece[0] == seg_id and last_piece[1] == forward and abs(behind) <= tolerance_m
            if not continues:
                flush()
            elif behind > 0:  # noise: the piece starts where the traversal already is
                reached = last_piece[3]
                item = ((seg_id, forward, reached, max(_end, reached) if forward else min(_end, reached)), *item[1:])
        run.append(item)
    flush()
    return out
