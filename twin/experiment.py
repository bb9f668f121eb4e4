"""Replications with common random numbers and Student-t confidence intervals."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .model import Model
from .results import Results, build
from .spec import Spec

# two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1..30 (standard tables)
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        return float("nan")
    if df <= 30:
        return _T975[df - 1]
    z = 1.959963984540054  # Cornish-Fisher expansion about the normal quantile, error < 1e-4 for df > 30
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def mean_ci(values: Any) -> tuple[float, float]:
    """Mean and 95 % half-width (Student t) of a sample; half-width is NaN for one value."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    m = float(x.mean())
    if n == 1:
        return m, float("nan")
    return m, float(t975(n - 1) * x.std(ddof=1) / math.sqrt(n))


def replication_seed(seed: int, replication: int) -> int:
    """The seed of replication ``r``: independent streams per replication, the same for every factory."""
    return int(np.random.SeedSequence([seed, replication]).generate_state(1, dtype=np.uint64)[0] >> 1)


def run_once(spec: Spec, horizon: float, warmup: float, seed: int) -> Results:
    """Build and run one replication with the given seed."""
    model = Model(spec, seed, horizon)
    model.run(horizon, warmup)
    return build(model, warmup, horizon)


def simulate(spec: Spec, horizon: float | str | None = None, warmup: float | str | None = None,
             seed: int | None = None, replications: int | None = None, progress: bool = False) -> Results:
    """Run ``replications`` independent replications and stack their tables.

    Durations are seconds or strings with units; ``None`` takes the spec's ``[run]`` value.
    Each table gains a ``replication`` column.
    """
    from .dists import parse_duration

    h = spec.run.horizon if horizon is None else parse_duration(horizon)
    w = spec.run.warmup if warmup is None else parse_duration(warmup)
    s = spec.run.seed if seed is None else int(seed)
    n = spec.run.replications if replications is None else int(replications)
    if h <= 0:
        raise ValueError("horizon must be > 0")
    if not 0 <= w < h:
        raise ValueError("warm-up must be >= 0 and shorter than the horizon")
    if n < 1:
        raise ValueError("replications must be >= 1")
    parts: list[Results] = []
    for r in _progress(range(n), progress, "replications"):
        res = run_once(spec, h, w, replication_seed(s, r))
        parts.append(res)
    return stack(parts, extra={"horizon": h, "warmup": w, "seed": s, "replications": n, "spec": spec.name})


def stack(parts: list[Results], extra: dict[str, Any] | None = None) -> Results:
    def cat(name: str, keep_index: bool = False) -> pd.DataFrame:
        frames = []
        for r, p in enumerate(parts):
            df = getattr(p, name)
            df = df.reset_index() if keep_index else df.copy()
            df.insert(0, "replication", r)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    return Results(lots=cat("lots"), states=cat("states"), timeseries=cat("timeseries"), kpis=cat("kpis"),
                   stations=cat("stations", keep_index=True), costs=cat("costs"), extra=dict(extra or {}))


STATION_FIELDS = ["idle", "setup", "busy", "blocked", "down", "maintenance", "off_shift", "utilisation",
                  "availability", "technical_availability", "effectiveness", "quality_ratio", "oee"]


def summarize(res: Results) -> dict[str, Any]:
    """``{"kpis": {k: {"mean", "ci95"}}, "stations": {name: {field: {...}}}, "bottleneck": name}``."""
    k = res.kpis
    kp: dict[str, Any] = {}
    for col in k.columns:
        if col in ("replication", "bottleneck"):
            continue
        m, h = mean_ci(k[col])
        kp[col] = {"mean": m, "ci95": h}
    st: dict[str, Any] = {}
    for name, g in res.stations.groupby("station", sort=False):
        st[str(name)] = {f: dict(zip(("mean", "ci95"), mean_ci(g[f]))) for f in STATION_FIELDS if f in g}
    # the bottleneck of the mean active shares, robust to replications that disagree
    active = res.stations.groupby("station", sort=False)["active"].mean()
    return {"kpis": kp, "stations": st, "bottleneck": str(active.idxmax()),
            "bottleneck_votes": k["bottleneck"].value_counts().to_dict(), **res.extra}


def _progress(it, enabled: bool, label: str):
    """Wrap an iterable with a simple progress bar on a terminal (stderr); silent otherwise."""
    import sys

    items = list(it)
    if not enabled or not sys.stderr.isatty():
        yield from items
        return
    n = len(items)
    for i, x in enumerate(items):
        sys.stderr.write(f"\r{label}: {i}/{n} [{'#' * (20 * i // n):<20}]")
        sys.stderr.flush()
        yield x
    sys.stderr.write(f"\r{label}: {n}/{n} [{'#' * 20}]\n")
