"""Confidence intervals and summaries across replications (Student t)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .state import STATE_KEYS

# scipy.stats is imported inside the functions that use it: it costs about 0.8 s of CPU, more
# than `import twin` may (tests/test_library.py checks that it is not imported with twin).

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


# --------------------------------------------------------------------------- paired comparisons
def paired_diff(a: Any, b: Any) -> dict[str, float]:
    """The paired difference ``a - b`` of two samples taken on the same seeds (replication r of
    ``a`` with replication r of ``b``): mean, 95 % Student-t half-width, n, and the two-sided
    p-value of "no difference". Pairs with a NaN on either side are dropped."""
    from scipy import stats as scipy_stats
    x = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return {"diff_mean": float("nan"), "ci95": float("nan"), "n": 0, "p": float("nan"), "se": float("nan"),
                "zero_variance": False}
    m = float(x.mean())
    if n == 1:
        return {"diff_mean": m, "ci95": float("nan"), "n": 1, "p": float("nan"), "se": float("nan"),
                "zero_variance": False}
    sd = float(x.std(ddof=1))
    se = sd / math.sqrt(n)
    if se == 0.0:
        # every replication gave the same difference: no variance to test it against, so it is not
        # significant by fiat (a zero difference is plainly no difference)
        p = 1.0 if m == 0.0 else float("nan")
    else:
        p = float(2 * scipy_stats.t.sf(abs(m) / se, n - 1))
    return {"diff_mean": m, "ci95": float(t975(n - 1) * se), "n": n, "p": p, "se": se,
            "zero_variance": bool(se == 0.0)}


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (NaN stays NaN): rejecting every hypothesis
    whose adjusted p is below alpha keeps the family-wise error rate at alpha."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(order)
    out = [float("nan")] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out


# --------------------------------------------------------------------------- ranking and selection
def select_best(samples: dict[str, Any], better: str, delta: float, pcs: float = 0.95) -> dict[str, Any]:
    """Select the best design from samples taken on common random numbers (replication r of
    every design on the same seeds), by the Bonferroni procedure for CRN of Clark and Yang
    (1986): with the sample variance S²_ij of each paired difference and t = t_{1-(1-pcs)/(k-1), n-1},
    n >= (t S_ij / delta)² replications for every pair guarantee that the design with the best
    sample mean is the best with probability >= ``pcs`` whenever the best is at least ``delta``
    better than the rest (the indifference zone). Returns the pick, the replications the
    guarantee needs (``n_needed``) and whether the ones at hand suffice (``met``)."""
    from scipy import stats as scipy_stats
    names = [k for k, v in samples.items() if np.isfinite(np.asarray(v, dtype=float)).all() and len(v)]
    out: dict[str, Any] = {"best": None, "delta": delta, "pcs": pcs, "n": 0, "n_needed": None, "met": False,
                           "procedure": "Clark-Yang Bonferroni selection with common random numbers"}
    if not names:
        return out
    arr = {k: np.asarray(samples[k], dtype=float) for k in names}
    n = min(len(a) for a in arr.values())
    means = {k: float(a[:n].mean()) for k, a in arr.items()}
    best = (max if better == "high" else min)(names, key=lambda k: means[k])
    out.update(best=best, n=n)
    k = len(names)
    if k == 1:
        out.update(n_needed=1, met=True)
        return out
    if n < 2 or delta <= 0:
        return out
    t = float(scipy_stats.t.ppf(1 - (1 - pcs) / (k - 1), n - 1))
    need = 2
    for i in range(k):
        for j in range(i + 1, k):
            s2 = float(np.var(arr[names[i]][:n] - arr[names[j]][:n], ddof=1))
            need = max(need, math.ceil((t * math.sqrt(s2) / delta) ** 2 - 1e-12))
    out.update(n_needed=int(need), met=bool(n >= need))
    return out


# --------------------------------------------------------------------------- warm-up
def mser(series: Any, batch: int = 5) -> int:
    """The warm-up (in observations of ``series``) chosen by MSER-``batch`` (White 1997; MSER-5
    with the default): over batch means Y_1..Y_m, the truncation d <= m/2 that minimises
    sum_{i>d} (Y_i - mean_{i>d} Y)^2 / (m - d)^2; returns d * batch."""
    x = np.asarray(series, dtype=float)
    x = x[np.isfinite(x)]
    m = len(x) // batch
    if m < 4:
        return 0
    y = x[: m * batch].reshape(m, batch).mean(axis=1)
    # suffix sums give every truncation's statistic in one pass
    rev = y[::-1]
    cnt = np.arange(1, m + 1)
    s1 = np.cumsum(rev)[::-1]
    s2 = np.cumsum(rev * rev)[::-1]
    n_left = cnt[::-1].astype(float)
    stat = (s2 - s1 * s1 / n_left) / (n_left * n_left)
    d = int(np.argmin(stat[: m // 2 + 1]))
    return d * batch


# --------------------------------------------------------------------------- parameter uncertainty
def latin_hypercube(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points in [0, 1)^d, one in each of the n strata of every dimension (scipy's qmc,
    randomised within strata, reproducible from ``seed``)."""
    from scipy.stats import qmc

    return qmc.LatinHypercube(d=d, seed=np.random.default_rng(seed)).random(n)


def win_shares(values: Any, better: str) -> np.ndarray:
    """Per row (a world) of values per design (columns), each design's share of that world's win:
    1 for the best, ties split evenly, a NaN value cannot win; a row with no value is all NaN."""
    v = np.asarray(values, dtype=float)
    v = np.where(np.isfinite(v), v, -np.inf if better == "high" else np.inf)
    top = v.max(axis=1, keepdims=True) if better == "high" else v.min(axis=1, keepdims=True)
    lead = (v == top) & np.isfinite(v)
    cnt = lead.sum(axis=1, keepdims=True)
    return np.where(cnt > 0, lead / np.maximum(cnt, 1), np.nan)


def win_probabilities(values: list[dict[str, float]], better: str) -> dict[str, float]:
    """Given one ``{design: value}`` per plausible world, the share of worlds in which each
    design is the best (:func:`win_shares`: ties split evenly; a design with a NaN value cannot
    win that world). The probabilities sum to 1 over the designs; {} when no world has a value."""
    names = sorted({k for v in values for k in v})
    if not names or not values:
        return {}
    w = win_shares([[world.get(k, float("nan")) for k in names] for world in values], better)
    w = w[np.isfinite(w).all(axis=1)]
    return {k: float(x) for k, x in zip(names, w.mean(axis=0))} if len(w) else {}


def clopper_pearson(k: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) ``level`` interval of a binomial share ``k / n``. ``k`` and ``n``
    may be fractional (ties split, an effective sample size): the beta quantiles are defined for
    real counts. (NaN, NaN) for n <= 0."""
    from scipy import stats as scipy_stats
    if not n > 0:
        return float("nan"), float("nan")
    k = min(max(float(k), 0.0), float(n))
    a = (1.0 - level) / 2.0
    lo = 0.0 if k <= 0 else float(scipy_stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k >= n else float(scipy_stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def effective_n(groups: Any) -> float:
    """Kish's effective sample size of a share estimated from ``groups`` (one row per cluster — a
    behavioural world — of 0/1 outcomes, one per price draw in it): n / (1 + (m − 1) ρ) with ρ the
    intra-cluster correlation (one-way ANOVA estimate, clipped to [0, 1]). Outcomes that are the
    same within every world count once per world; independent ones count all."""
    y = np.asarray(groups, dtype=float)
    if y.ndim != 2 or y.size == 0:
        return float("nan")
    k, m = y.shape
    n = float(k * m)
    if m == 1:
        return n
    within = float(((y - y.mean(axis=1, keepdims=True)) ** 2).sum() / (k * (m - 1)))
    between = float(m * ((y.mean(axis=1) - y.mean()) ** 2).sum() / (k - 1)) if k > 1 else 0.0
    if within == 0.0:
        rho = 1.0 if between > 0 or k == 1 else 0.0
    else:
        s2b = max(0.0, (between - within) / m)
        rho = s2b / (s2b + within)
    return n / (1.0 + (m - 1) * min(1.0, max(0.0, rho)))


def noise_share(diffs: Any) -> float:
    """The share of the variance of world means of a difference (rows: worlds; columns: replications
    on common seeds) that is simulation noise: (mean within-world variance / replications) over the
    variance of the world means (one-way random-effects decomposition; capped at 1; NaN with fewer
    than two worlds or replications)."""
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d).all(axis=1)] if d.ndim == 2 else d
    if d.ndim != 2 or d.shape[0] < 2 or d.shape[1] < 2:
        return float("nan")
    r = d.shape[1]
    noise = float(d.var(axis=1, ddof=1).mean()) / r
    total = float(d.mean(axis=1).var(ddof=1))
    if total == 0.0:
        return 0.0 if noise == 0.0 else 1.0
    return min(1.0, noise / total)


def prcc(x: Any, y: Any) -> list[float]:
    """Partial rank correlation coefficients (Marino et al. 2008) of each column of ``x`` with ``y``:
    the correlation of the ranks of column j and of y after both are regressed on the ranks of the
    other columns. A global sensitivity measure for Latin-hypercube samples; NaN for a constant column
    and for one the others determine (fewer distinct samples than parameters)."""
    from scipy import stats as scipy_stats
    X = np.asarray(x, dtype=float)
    yv = np.asarray(y, dtype=float)
    ok = np.isfinite(yv) & np.isfinite(X).all(axis=1)
    X, yv = X[ok], yv[ok]
    n, p = X.shape
    out = [float("nan")] * p
    live = [j for j in range(p) if n > 3 and np.ptp(X[:, j]) > 0]
    if not live or np.ptp(yv) == 0:
        return out
    R = np.column_stack([scipy_stats.rankdata(X[:, j]) for j in live])
    ry = scipy_stats.rankdata(yv)
    for c, j in enumerate(live):
        others = np.column_stack([np.ones(n), np.delete(R, c, axis=1)])
        if others.shape[1] >= n:
            continue
        bx = np.linalg.lstsq(others, R[:, c], rcond=None)[0]
        by = np.linalg.lstsq(others, ry, rcond=None)[0]
        ex, ey = R[:, c] - others @ bx, ry - others @ by
        if float(ex @ ex) <= 1e-9 * float(((R[:, c] - R[:, c].mean()) ** 2).sum()):
            continue  # the column is a function of the others (fewer distinct points than parameters)
        den = math.sqrt(float(ex @ ex) * float(ey @ ey))
        out[j] = float(ex @ ey / den) if den > 0 else float("nan")
    return out


# --------------------------------------------------------------------------- censored times
def kaplan_meier(times: Any, observed: Any, level: float = 0.95) -> dict[str, Any]:
    """Kaplan-Meier estimate of a time-to-event sample with right censoring (scipy's ``ecdf``):
    ``times`` (s) are event times where ``observed`` is true and censoring times (the event had
    not happened by then) elsewhere. Returns the ``median`` (NaN when the curve never falls to
    one half: most never had the event while watched) with its ``level`` interval from the
    pointwise log-log Greenwood band (the times at which the band's limits fall to one half;
    ``inf`` for an upper limit the data do not reach), the curve (``t``, ``share`` that had the
    event by t) and the counts."""
    t = np.asarray(times, dtype=float)
    obs = np.asarray(observed, dtype=bool)
    ok = np.isfinite(t)
    t, obs = t[ok], obs[ok]
    out: dict[str, Any] = {"median": float("nan"), "ci": [float("nan"), float("nan")], "t": [], "share": [],
                           "n": int(len(t)), "events": int(obs.sum())}
    if not obs.any():
        if len(t):
            out["ci"] = [float(t.max()), float("inf")]
        return out
    from scipy.stats import CensoredData, ecdf

    res = ecdf(CensoredData(uncensored=t[obs], right=t[~obs]))
    q, s = res.sf.quantiles, res.sf.probabilities
    out["t"], out["share"] = q.tolist(), (1.0 - s).tolist()

    def first_half(surv: np.ndarray) -> float:
        hit = np.nonzero(np.asarray(surv) <= 0.5 + 1e-12)[0]
        return float(q[hit[0]]) if len(hit) else float("inf")

    out["median"] = first_half(s) if (s <= 0.5 + 1e-12).any() else float("nan")
    if len(q) > 1 or obs.sum() < len(t):
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            # undefined where S is 0 or 1: those limits are read as the band's ends below
            warnings.simplefilter("ignore", RuntimeWarning)
            ci = res.sf.confidence_interval(level, method="log-log")
        lo = np.nan_to_num(ci.low.probabilities, nan=0.0)
        hi = np.nan_to_num(ci.high.probabilities, nan=1.0)
        out["ci"] = [first_half(lo), first_half(hi)]
    else:
        out["ci"] = [float(q[0]), float("inf")]
    return out


def share_by(km: dict[str, Any], t: float) -> float:
    """The Kaplan-Meier share that had the event by time ``t`` (s)."""
    share = 0.0
    for ti, si in zip(km["t"], km["share"]):
        if ti <= t:
            share = si
    return float(share)


# --------------------------------------------------------------------------- equivalence
def tost(diffs: Any, delta: float, alpha: float = 0.05) -> dict[str, Any]:
    """Two one-sided tests (Schuirmann 1987) of "the mean paired difference lies within ±``delta``":
    equivalent when the (1 − 2α) Student-t interval lies inside (−delta, delta). A sample whose
    differences are all equal has no variance to test and is equivalent only when that value is
    inside the zone and n >= 2."""
    from scipy import stats as scipy_stats
    x = np.asarray(diffs, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    out: dict[str, Any] = {"delta": delta, "equivalent": False, "p": float("nan"), "n": n}
    if n < 2 or not delta > 0:
        return out
    m, se = float(x.mean()), float(x.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        out.update(equivalent=bool(abs(m) < delta), p=0.0 if abs(m) < delta else 1.0)
        return out
    p = max(float(scipy_stats.t.sf((m + delta) / se, n - 1)), float(scipy_stats.t.sf((delta - m) / se, n - 1)))
    out.update(equivalent=bool(p < alpha), p=p)
    return out


def holm_levels(pvalues: list[float], alpha: float = 0.05) -> list[float]:
    """The level at which Holm's step-down procedure tests each hypothesis: alpha / (m − rank) for
    the rank-th smallest p (NaN stays NaN). An interval at that level is the one the Holm verdict
    reads (it excludes zero exactly when the hypothesis is rejected at its own step)."""
    idx = [i for i, p in enumerate(pvalues) if math.isfinite(p)]
    order = sorted(idx, key=lambda i: pvalues[i])
    m = len(order)
    out = [float("nan")] * len(pvalues)
    for rank, i in enumerate(order):
        out[i] = alpha / (m - rank)
    return out
