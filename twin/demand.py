"""Demand: make-to-order order streams per product with scenario shifts (DESIGN §8).

Orders are drawn from the ``demand`` stream only, product by product in name
order, so every factory given the same seed, demand and horizon receives the same
orders (common random numbers), whatever its own products' order.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any

import numpy as np

from .units import DAY, HOUR, WEEK


def weekly_factor(demand: Any, t: np.ndarray) -> np.ndarray:
    """The weekly profile's multiplier at times ``t`` (s; t = 0 starts the profile's first day)."""
    t = np.asarray(t, dtype=float)
    prof = getattr(demand, "weekly_profile", None)
    if not prof:
        return np.ones_like(t)
    w = np.asarray(prof, dtype=float)
    w = w * (len(w) / w.sum())
    return w[(np.floor(t / DAY).astype(np.int64) % 7)]


def _shift_factor(sh: Any, t: np.ndarray) -> np.ndarray:
    if sh.kind == "step":
        return np.where(t >= sh.at, sh.factor, 1.0)
    if sh.kind == "ramp":
        return 1.0 + (sh.factor - 1.0) * np.clip((t - sh.at) / sh.duration, 0.0, 1.0)
    if sh.kind == "pulse":
        return np.where((t >= sh.at) & (t < sh.at + sh.duration), sh.factor, 1.0)
    return np.ones_like(t)


def known_factor(demand: Any, t: np.ndarray, now: float) -> np.ndarray:
    """Multiplier of the volume at times ``t`` (s) that the calendar of known events shows at
    ``now``: the announced step, ramp and pulse shifts whose announcement (``at - announced``)
    has come. Unannounced shifts and the weekly profile are not in it (they are for a
    forecaster to learn)."""
    t = np.asarray(t, dtype=float)
    f = np.ones_like(t)
    for sh in demand.shifts:
        if sh.announced is not None and sh.at - sh.announced <= now:
            f = f * _shift_factor(sh, t)
    return f


def volume_factor(demand: Any, t: np.ndarray) -> np.ndarray:
    """Multiplier of the baseline volume at times ``t`` (s) from the weekly profile and the
    step, ramp and pulse shifts."""
    t = np.asarray(t, dtype=float)
    f = weekly_factor(demand, t)
    for sh in demand.shifts:
        f = f * _shift_factor(sh, t)
    return f


def shares_at(demand: Any, products: list[str], t: np.ndarray, base: dict[str, float]) -> np.ndarray:
    """Share of each product (columns, in ``products`` order) at times ``t``; rows sum to 1."""
    t = np.asarray(t, dtype=float)
    w = np.tile(np.array([base.get(p, 0.0) for p in products], dtype=float), (len(t), 1))
    for sh in sorted(demand.shifts, key=lambda s: s.at):
        after = (t >= sh.at)[:, None]
        if sh.kind == "mix":
            new = np.array([sh.shares.get(p, 0.0) for p in products], dtype=float)
            new = new / new.sum() if new.sum() > 0 else new
            w = np.where(after, new[None, :], w)
        elif sh.kind == "new_product" and sh.product in products:
            j = products.index(sh.product)
            # the newcomer takes ``share`` of the volume (reached over ``duration``: a launch
            # ramp); the others keep their ratios
            ramp = np.clip((t - sh.at) / sh.duration, 0.0, 1.0) if sh.duration > 0 else np.ones_like(t)
            x = (sh.share * ramp)[:, None]
            scaled = w * (1.0 - x)
            scaled[:, j] = x[:, 0] + w[:, j] * (1.0 - x[:, 0])
            w = np.where(after, scaled, w)
    tot = w.sum(axis=1, keepdims=True)
    return np.divide(w, tot, out=np.zeros_like(w), where=tot > 0)


def base_shares(demand: Any, products: list[str], product_shares: dict[str, float] | None = None) -> dict[str, float]:
    raw = dict(demand.shares) if demand.shares else dict(product_shares or {p: 1.0 for p in products})
    tot = sum(raw.get(p, 0.0) for p in products) or 1.0
    return {p: raw.get(p, 0.0) / tot for p in products}


def expected_units(demand: Any, products: list[str], edges: np.ndarray,
                   product_shares: dict[str, float] | None = None) -> np.ndarray:
    """Expected ordered units per product (columns) in each bin between ``edges`` (s), hourly resolution."""
    base = base_shares(demand, products, product_shares)
    hours = np.arange(edges[0], edges[-1], HOUR) + HOUR / 2
    rate = demand.base_per_week / WEEK * HOUR * volume_factor(demand, hours)
    per = rate[:, None] * shares_at(demand, products, hours, base)
    idx = np.searchsorted(edges, hours, side="right") - 1
    out = np.zeros((len(edges) - 1, len(products)))
    np.add.at(out, idx.clip(0, len(edges) - 2), per)
    return out


def order_stream(demand: Any, products: list[str], horizon: float, rng: np.random.Generator,
                 product_shares: dict[str, float] | None = None) -> list[tuple[float, int, int, float]]:
    """Orders ``(t, product_index, qty, due_time)`` sorted by time, for ``[0, horizon)``.

    Each hour, each product's order count is Poisson with mean (units demanded in
    that hour) / ``order_size``: a non-homogeneous Poisson process at hourly resolution.
    """
    names = sorted(products)
    base = base_shares(demand, names, product_shares)
    n_hours = int(math.ceil(horizon / HOUR))
    mids = (np.arange(n_hours) + 0.5) * HOUR
    units = demand.base_per_week / WEEK * HOUR * volume_factor(demand, mids)
    lam = units[:, None] * shares_at(demand, names, mids, base) / demand.order_size
    counts = rng.poisson(lam)  # hours × products, in name order
    offsets = rng.random(int(counts.sum()))
    out: list[tuple[float, int, int, float]] = []
    k = 0
    hour_idx, prod_idx = np.nonzero(counts)
    for h, j in zip(hour_idx.tolist(), prod_idx.tolist()):
        c = int(counts[h, j])
        p = products.index(names[j])
        for _ in range(c):
            t = (h + float(offsets[k])) * HOUR
            k += 1
            if t < horizon:
                out.append((t, p, demand.order_size, t + demand.due))
    out.sort(key=lambda o: (o[0], o[1]))
    return out


class ArrivalClock:
    """The time change of a line fed by arrivals under rate shifts: arrivals are drawn in
    *operational time* ``S`` (the gaps of the line without shifts) and happen at calendar time
    ``t = F⁻¹(S)``, where ``F(t) = ∫₀ᵗ f(u) du`` and ``f`` is the product of the step, ramp and
    pulse factors (a ``supply`` disruption: factor 0 while it lasts). So a Poisson source becomes
    the non-homogeneous Poisson process of rate ``λ f(t)`` exactly, and the arrivals before the
    first shift are the unshifted line's (common random numbers across scenarios).

    Between breakpoints ``f`` is a polynomial (a product of constant and linear factors), so
    ``F`` is integrated exactly and inverted per segment (closed form for constant factors, the
    root of the segment's polynomial otherwise)."""

    def __init__(self, shifts: list[Any]):
        vol = [sh for sh in shifts if sh.kind in ("step", "ramp", "pulse")]
        stops = [sh for sh in shifts if sh.kind == "disruption" and sh.target == "supply"]
        cuts = {0.0}
        for sh in vol + stops:
            cuts.add(float(sh.at))
            if sh.kind != "step":
                cuts.add(float(sh.at + sh.duration))
        self.edges = sorted(c for c in cuts if c >= 0.0)
        self.polys: list[np.polynomial.Polynomial] = []  # f on each segment, in u = t - edge
        self.integrals: list[np.polynomial.Polynomial] = []
        self.cum = [0.0]
        P = np.polynomial.Polynomial
        for k, a in enumerate(self.edges):
            b = self.edges[k + 1] if k + 1 < len(self.edges) else math.inf
            mid = a + 1.0 if math.isinf(b) else (a + b) / 2
            f = P([1.0])
            for sh in vol:
                if sh.kind == "ramp" and sh.at <= mid < sh.at + sh.duration:
                    # 1 + (factor - 1)(t - at)/duration, in u = t - a
                    slope = (sh.factor - 1.0) / sh.duration
                    f = f * P([1.0 + slope * (a - sh.at), slope])
                else:
                    f = f * P([float(_shift_factor(sh, np.array([mid]))[0])])
            for sh in stops:
                if sh.at <= mid < sh.at + sh.duration:
                    f = P([0.0])
            self.polys.append(f)
            F = f.integ()
            self.integrals.append(F)
            if not math.isinf(b):
                self.cum.append(self.cum[-1] + float(F(b - a)))

    @property
    def trivial(self) -> bool:
        """No shift changes the rate: calendar time is operational time."""
        return len(self.polys) == 1 and self.polys[0].degree() == 0 and float(self.polys[0].coef[0]) == 1.0

    def op_at(self, t: float) -> float:
        """Operational time reached at calendar time ``t`` (s): ``F(t)``, the inverse of :meth:`time_at`."""
        k = bisect_right(self.edges, t) - 1
        return self.cum[k] + float(self.integrals[k](t - self.edges[k]))

    def time_at(self, s: float) -> float:
        """Calendar time (s) at which operational time ``s`` is reached; ``inf`` if never (the
        rate stays 0 from some time on)."""
        k = bisect_right(self.cum, s) - 1
        a = self.edges[k]
        b = self.edges[k + 1] if k + 1 < len(self.edges) else math.inf
        need = s - self.cum[k]
        f = self.polys[k]
        if f.degree() == 0:
            c = float(f.coef[0])
            if c <= 0.0:
                return math.inf  # only the last segment can be flat here: bisect skips inner flat ones
            return a + need / c
        roots = [complex(r) for r in (self.integrals[k] - need).roots()]
        span = b - a
        real = [r.real for r in roots if abs(r.imag) <= 1e-9 * max(1.0, abs(r.real))
                and -1e-9 * span <= r.real <= span * (1 + 1e-9)]
        if real:
            return a + min(max(0.0, min(real)), span)
        # rounding left no root inside: fall back to bisection on the monotone F
        lo, hi = 0.0, span
        for _ in range(200):
            m = (lo + hi) / 2
            if float(self.integrals[k](m)) < need:
                lo = m
            else:
                hi = m
        return a + hi
