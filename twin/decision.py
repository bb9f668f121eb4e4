"""The answer as conditions: where a cost ranking flips, by exact re-pricing (DESIGN §15).

Every compare job keeps what its run counted that prices multiply (:func:`twin.cost.basis`), so
a cost comparison can be read again under any prices without simulating. For each scenario,
cost measure and pair of factories, :func:`breakevens` finds, for every price parameter of the
uncertainty file that concerns the pair, the value at which the mean paired difference is zero
(the others at their nominal values): the difference is linear in every price except the
depreciation period, so the root is solved exactly from two re-pricings and checked at a third
(a bracketing root search otherwise). :func:`iso_cost` maps which factory is cheapest over two
prices.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy.optimize import brentq

from .cost import is_price_path, prices_of, reprice
from .spec import SpecError
from .uncertainty import Parameter, UncertaintyFile, match, set_value

COST_MEASURES = ["conversion_cost"]
"""The cost measures of the verdict whose rankings have break-evens."""


def price_parameters(pars: UncertaintyFile) -> list[Parameter]:
    """The parameters of an uncertainty file that are prices (:func:`twin.cost.is_price_path`)."""
    return [p for p in pars.parameter if is_price_path(p.path)]


def set_path_key(p: Parameter) -> str:
    """How ``--set`` names the parameter: ``factory:path``, or the bare path for every factory."""
    return p.path if p.factory == "*" else f"{p.factory}:{p.path}"


def _jobs_by(results: list[dict[str, Any]], scenario: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r["scenario"] == scenario:
            out.setdefault(r["factory"], []).append(r)
    return {f: sorted(js, key=lambda r: r["replication"]) for f, js in out.items()}


def measure_at(jobs: list[dict[str, Any]], prices: dict[str, Any], measure: str) -> np.ndarray:
    """``measure`` of each replication's job (replication order) priced under ``prices``."""
    return np.array([float(reprice(j["kpis"], j["cost_basis"], prices)[measure]) for j in jobs])


def _paired_mean(a: np.ndarray, b: np.ndarray) -> float:
    d = a - b
    d = d[np.isfinite(d)]
    return float(d.mean()) if len(d) else float("nan")


def _root(f: Callable[[float], float], x0: float, h: float, lo: float) -> float | None:
    """A value x >= lo with f(x) = 0, or None: exact for an f linear in x (checked), by a bracketing
    search on a widening range otherwise."""
    f0, f1, f2 = f(x0), f(x0 + h), f(x0 + 2 * h)
    if not all(math.isfinite(v) for v in (f0, f1, f2)):
        return None
    if f0 == 0.0:
        return x0
    slope = (f1 - f0) / h
    if abs(f2 - (f0 + 2 * slope * h)) <= 1e-9 * max(1.0, abs(f0), abs(f1), abs(f2)):
        if slope == 0.0:
            return None
        x = x0 - f0 / slope
        return x if x >= lo else None
    # not linear (a depreciation period): bracket a sign change on a widening range
    grid = sorted({lo + (x0 - lo) * k / 8 for k in range(1, 9)} | {x0 * 2.0 ** k for k in range(1, 12)})
    vals = [(x, f(x)) for x in grid if x > lo]
    for (xa, fa), (xb, fb) in zip(vals, vals[1:]):
        if math.isfinite(fa) and math.isfinite(fb) and fa * fb < 0:
            return float(brentq(f, xa, xb, xtol=1e-12 * max(1.0, abs(xb)), rtol=1e-12))
    return None


def breakevens(results: list[dict[str, Any]], pars: UncertaintyFile,
               measures: list[str] | None = None) -> dict[str, Any]:
    """``{scenario: {measure: {"A vs B": {path: {"value", "nominal", "low", "high", "inside_range",
    "cheaper_above", "swing"}}}}}``: for every price parameter that concerns A or B, the value at
    which the mean paired difference A − B of ``measure`` is zero, by exact re-pricing (``value``
    None when no non-negative price flips it; ``cheaper_above``: who is cheaper above the value;
    ``swing``: the difference at the range's high end minus at its low end, the exact partial
    effect of the range). ``path`` is as ``--set`` writes it (``microfactory:costs.capex_per_lane``)."""
    measures = measures or COST_MEASURES
    out: dict[str, Any] = {}
    for sc in dict.fromkeys(r["scenario"] for r in results):
        jobs = _jobs_by(results, sc)
        facs = list(jobs)
        nominal = {f: js[0]["prices"] for f, js in jobs.items()}
        for key in measures:
            for i, a in enumerate(facs):
                for b in facs[i + 1:]:
                    row: dict[str, Any] = {}
                    for p in price_parameters(pars):
                        if p.factory not in ("*", a, b):
                            continue
                        hit = [f for f in (a, b) if p.factory in ("*", f)]
                        try:
                            for f in hit:
                                set_value(nominal[f], p, 1.0)
                        except SpecError:
                            continue  # a shared price this pair does not have (no such component)

                        def diff(x: float, hit: list[str] = hit, p: Parameter = p, a: str = a, b: str = b,
                                 key: str = key, nominal: dict[str, Any] = nominal, jobs: Any = jobs) -> float:
                            pr = {f: (set_value(nominal[f], p, x) if f in hit else nominal[f]) for f in (a, b)}
                            return _paired_mean(measure_at(jobs[a], pr[a], key), measure_at(jobs[b], pr[b], key))

                        x0 = 1.0 if p.scale is not None else _value_at(nominal[hit[0]], p)
                        lo, hi = p.scale if p.scale is not None else (p.low, p.high)
                        assert lo is not None and hi is not None
                        value = _root(diff, x0, (hi - lo) / 2 or 1.0, 0.0)
                        d0 = diff(x0)
                        above = None
                        if value is not None:
                            probe = diff(value + max(abs(value), 1.0) * 1e-3)
                            above = a if probe < 0 else b
                        row[set_path_key(p)] = {
                            "name": p.name, "value": value, "nominal": x0, "low": lo, "high": hi,
                            "inside_range": bool(value is not None and lo <= value <= hi),
                            "cheaper_above": above, "cheaper_at_nominal": a if d0 < 0 else b if d0 > 0 else None,
                            "diff_at_nominal": d0, "swing": diff(hi) - diff(lo),
                            "scale": p.scale is not None}
                    out.setdefault(str(sc), {}).setdefault(key, {})[f"{a} vs {b}"] = row
    return out


def _value_at(prices: dict[str, Any], p: Parameter) -> float:
    """The nominal value of a value parameter in ``prices`` (its first match)."""
    cont, key = match(prices, p.path.split("."))[0]
    return float(cont[key])


def decisive(row: dict[str, Any], top: int = 2) -> list[tuple[str, dict[str, Any]]]:
    """The parameters of one pair's break-evens that matter most: by the size of their swing over
    their range (the exact partial effect), largest first."""
    items = [(k, v) for k, v in row.items() if math.isfinite(v["swing"])]
    items.sort(key=lambda kv: -abs(kv[1]["swing"]))
    return items[:top]


def iso_cost(results: list[dict[str, Any]], scenario: str, px: Parameter, py: Parameter, n: int = 41,
             measure: str = "conversion_cost") -> dict[str, Any]:
    """Which factory is cheapest (lowest mean ``measure``) on an n × n grid of two prices, each over
    its range widened to take in its nominal value: ``{"x", "y", "winner"}`` (winner[i][j] at
    y[i], x[j]) and the factories' names."""
    jobs = _jobs_by(results, scenario)
    facs = list(jobs)
    nominal = {f: js[0]["prices"] for f, js in jobs.items()}

    def axis(p: Parameter) -> np.ndarray:
        lo, hi = p.scale if p.scale is not None else (p.low, p.high)
        assert lo is not None and hi is not None
        span = hi - lo
        return np.linspace(max(0.0, lo - 0.1 * span), hi + 0.1 * span, n)

    xs, ys = axis(px), axis(py)
    winner = []
    for y in ys:
        row = []
        for x in xs:
            best, best_v = None, math.inf
            for f in facs:
                pr = nominal[f]
                if px.factory in ("*", f):
                    pr = set_value(pr, px, float(x))
                if py.factory in ("*", f):
                    pr = set_value(pr, py, float(y))
                v = float(np.nanmean(measure_at(jobs[f], pr, measure)))
                if v < best_v:
                    best, best_v = f, v
            row.append(best)
        winner.append(row)
    return {"x": xs.tolist(), "y": ys.tolist(), "winner": winner, "factories": facs,
            "x_name": px.name, "y_name": py.name}


__all__ = ["COST_MEASURES", "breakevens", "decisive", "iso_cost", "price_parameters", "prices_of"]
