"""Confidence intervals and summaries across replications (Student t)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .state import STATE_KEYS

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


STATION_FIELDS = [*STATE_KEYS, "utilisation", "availability", "technical_availability", "effectiveness",
                  "quality_ratio", "oee"]
"""Per-station fields that summaries report (state shares first)."""


def summarize(res: Any) -> dict[str, Any]:
    """``{"kpis": {k: {"mean", "ci95"}}, "stations": {name: {field: {...}}}, "bottleneck": name}``
    of a :class:`~twin.results.Results` (one or several replications)."""
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
