"""Where things stand on the floor: a spec's ``[layout]`` or an automatic layered one (no SimPy).

A :class:`Plan` gives every station a place (metres), every station's buffer a place beside it
and every transport fleet a path. :func:`plan` reads a spec's ``layout`` when it has one and
lays the line out itself when it has not: stations in layers by their position along the routes
(a station that every route reaches later stands further right), the stations of one layer one
above the other, and stations off every route (a repair bench, a rework station) a row below the
station that sends lots there. The loops (retests, detours, rework) are the flow view's arcs.

Distances (:func:`distance`) are rectilinear by default, as a vehicle follows the aisles, or
euclidean; a fleet without ``distance_m`` takes its trip's length from the plan
(:func:`fleet_distance`): the length of its drawn path, or the mean distance of its moves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

SPACING_M = 10.0
"""Distance between neighbouring stations of the automatic layout, m (a station and its aisle)."""
BUFFER_OFFSET = 0.35
"""A buffer stands this share of :data:`SPACING_M` upstream of its station (automatic places)."""

Point = tuple[float, float]


@dataclass
class Plan:
    """Places on the floor, m: ``stations`` and ``buffers`` by station name, ``paths`` (points) by
    fleet name; ``auto`` when the line was laid out automatically (the spec has no places)."""

    stations: dict[str, Point]
    buffers: dict[str, Point]
    paths: dict[str, list[Point]] = field(default_factory=dict)
    auto: bool = True
    metric: str = "rectilinear"

    def bounds(self) -> tuple[float, float, float, float]:
        """``(x_min, y_min, x_max, y_max)`` of everything placed, m."""
        pts = [*self.stations.values(), *self.buffers.values(), *(p for path in self.paths.values() for p in path)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return min(xs), min(ys), max(xs), max(ys)

    def to_json(self) -> dict[str, Any]:
        """The plan as plain data (the replay page and the live page draw it)."""
        return {"stations": {n: list(p) for n, p in self.stations.items()},
                "buffers": {n: list(p) for n, p in self.buffers.items()},
                "paths": {n: [list(p) for p in path] for n, path in self.paths.items()},
                "auto": self.auto, "metric": self.metric}


def distance(a: Point, b: Point, metric: str = "rectilinear") -> float:
    """Distance from ``a`` to ``b``, m: along the aisles (``rectilinear``) or straight."""
    if metric == "euclidean":
        return math.hypot(a[0] - b[0], a[1] - b[1])
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def path_length(points: list[Point], metric: str = "euclidean") -> float:
    """Length of a drawn path, m (its legs are straight, so euclidean unless stated)."""
    return sum(distance(p, q, metric) for p, q in zip(points, points[1:]))


def off_route(spec: Any) -> list[tuple[str, str]]:
    """``(sender, station)`` for every station off every route, in spec order: a routing target
    (a repair bench) or a rework station, beside the first station that sends lots there."""
    on = {n for p in spec.products for n in p.route}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for st in spec.stations:
        targets = list(st.routing)
        if st.quality is not None and st.quality.rework_at is not None:
            targets.append(st.quality.rework_at)
        for t in targets:
            if t not in on and t not in seen:
                seen.add(t)
                out.append((st.name, t))
    return out


def layers(spec: Any) -> dict[str, int]:
    """Layer of each station on a route: 0 for a first station, else one more than the highest
    layer of a station that comes before it on some route (a route that returns to a station
    leaves its layer as first reached)."""
    layer: dict[str, int] = {}
    for _ in range(len(spec.stations) + 1):  # longest path over a DAG: settles within n passes
        changed = False
        for p in spec.products:
            seen: set[str] = set()
            prev: str | None = None
            for n in p.route:
                if n in seen:
                    prev = n
                    continue
                seen.add(n)
                want = 0 if prev is None else layer.get(prev, 0) + 1
                if layer.get(n, -1) < want and want <= len(spec.stations):
                    layer[n] = want
                    changed = True
                prev = n
        if not changed:
            break
    return layer


def auto_plan(spec: Any) -> Plan:
    """The automatic layered layout of ``spec`` (module doc), every station placed."""
    layer = layers(spec)
    rows: dict[int, int] = {}
    stations: dict[str, Point] = {}
    for st in spec.stations:  # spec order within a layer, top to bottom
        if st.name in layer:
            k = layer[st.name]
            stations[st.name] = (k * SPACING_M, -rows.get(k, 0) * SPACING_M)
            rows[k] = rows.get(k, 0) + 1
    low = min((p[1] for p in stations.values()), default=0.0)
    beside: dict[str, int] = {}
    for sender, name in off_route(spec):
        x, _ = stations.get(sender, (0.0, 0.0))
        beside[sender] = beside.get(sender, 0) + 1
        stations[name] = (x + (beside[sender] - 1) * SPACING_M / 2, low - SPACING_M)
    for st in spec.stations:  # neither on a route nor sent to: a station nothing visits
        stations.setdefault(st.name, (len(stations) * SPACING_M, low - 2 * SPACING_M))
    buffers = {n: (x - BUFFER_OFFSET * SPACING_M, y) for n, (x, y) in stations.items()}
    plan = Plan(stations=stations, buffers=buffers, auto=True)
    plan.paths = {t.name: _fleet_path(spec, t, plan) for t in spec.transport}
    return plan


def _fleet_path(spec: Any, fleet: Any, plan: Plan) -> list[Point]:
    """A fleet's drawn path: through the stations of its moves in the order the moves name them
    (every station, left to right, when it serves every move)."""
    if fleet.moves:
        order = list(dict.fromkeys(n for mv in fleet.moves for n in mv if n in plan.stations))
    else:
        order = sorted(plan.stations, key=lambda n: (plan.stations[n][0], -plan.stations[n][1]))
    return [plan.stations[n] for n in order]


def plan(spec: Any) -> Plan:
    """The spec's own layout when it places its stations, else :func:`auto_plan`."""
    lay = getattr(spec, "layout", None)
    if lay is None or not lay.stations:
        return auto_plan(spec)
    scale = lay.cell_m if lay.unit == "grid" else 1.0
    stations = {n: (float(x) * scale, float(y) * scale) for n, (x, y) in lay.stations.items()}
    buffers = {}
    for n, (x, y) in stations.items():
        if n in lay.buffers:
            bx, by = lay.buffers[n]
            buffers[n] = (float(bx) * scale, float(by) * scale)
        else:
            buffers[n] = (x - BUFFER_OFFSET * SPACING_M, y)
    p = Plan(stations=stations, buffers=buffers, auto=False, metric=lay.metric)
    for t in spec.transport:
        given = lay.paths.get(t.name)
        p.paths[t.name] = ([(float(x) * scale, float(y) * scale) for x, y in given] if given
                           else _fleet_path(spec, t, p))
    return p


def fleet_distance(spec: Any, fleet: Any) -> float | None:
    """Length of one trip of ``fleet`` taken from the spec's layout, m: its drawn path's length,
    or the mean distance between the two stations of each of its moves; None without a layout
    that places them (or for a fleet that serves every move and has no path)."""
    lay = getattr(spec, "layout", None)
    if lay is None or not lay.stations:
        return None
    p = plan(spec)
    if fleet.name in lay.paths:
        return path_length(p.paths[fleet.name])
    if not fleet.moves or any(n not in p.stations for mv in fleet.moves for n in mv):
        return None
    return sum(distance(p.stations[a], p.stations[b], p.metric) for a, b in fleet.moves) / len(fleet.moves)
