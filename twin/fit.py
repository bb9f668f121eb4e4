"""Maximum-likelihood fits of duration distributions and choice by AIC (for calibration).

Families: exponential, gamma, lognormal, weibull, normal (and constant when every
observation is equal). Each fit reports its log-likelihood, AIC = 2p − 2 ln L and the
Kolmogorov–Smirnov distance D between the data and the fitted CDF. Pure numpy/math:
no SciPy dependency for five closed-form or one-dimensional problems.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Fit:
    family: str
    params: dict[str, float]
    n: int
    loglik: float
    aic: float
    ks: float

    def spec(self) -> Any:
        """The fitted distribution as spec data (seconds)."""
        p = self.params
        if self.family == "constant":
            return round(p["value"], 6)
        if self.family == "exponential":
            return {"dist": "exponential", "mean": _r(p["mean"])}
        if self.family == "weibull":
            return {"dist": "weibull", "shape": _r(p["shape"]), "scale": _r(p["scale"])}
        return {"dist": self.family, "mean": _r(p["mean"]), "cv": _r(p["cv"])}

    @property
    def mean(self) -> float:
        p = self.params
        if self.family == "weibull":
            return p["scale"] * math.gamma(1 + 1 / p["shape"])
        return p.get("mean", p.get("value", float("nan")))


def _r(x: float) -> float:
    return float(f"{x:.6g}")


# --------------------------------------------------------------------------- special functions
def digamma(x: float) -> float:
    r = 0.0
    while x < 6:
        r -= 1 / x
        x += 1
    f = 1 / (x * x)
    return r + math.log(x) - 0.5 / x - f * (1 / 12 - f * (1 / 120 - f * (1 / 252 - f * (1 / 240 - f / 132))))


def trigamma(x: float) -> float:
    r = 0.0
    while x < 6:
        r += 1 / (x * x)
        x += 1
    f = 1 / (x * x)
    return r + 1 / x + f / 2 + (1 / x) * f * (1 / 6 - f * (1 / 30 - f * (1 / 42 - f / 30)))


def gamma_cdf(x: np.ndarray, k: float, theta: float) -> np.ndarray:
    """Regularised lower incomplete gamma P(k, x/θ) (series / continued fraction)."""
    out = np.empty(len(x))
    gln = math.lgamma(k)
    for i, xi in enumerate(np.asarray(x, dtype=float) / theta):
        if xi <= 0:
            out[i] = 0.0
        elif xi < k + 1:
            ap, s, d = k, 1 / k, 1 / k
            for _ in range(500):
                ap += 1
                d *= xi / ap
                s += d
                if abs(d) < abs(s) * 1e-12:
                    break
            out[i] = s * math.exp(-xi + k * math.log(xi) - gln)
        else:
            b = xi + 1 - k
            c = 1e300
            d = 1 / b
            h = d
            for j in range(1, 500):
                an = -j * (j - k)
                b += 2
                d = an * d + b
                d = 1e-300 if abs(d) < 1e-300 else d
                c = b + an / c
                c = 1e-300 if abs(c) < 1e-300 else c
                d = 1 / d
                h *= d * c
                if abs(d * c - 1) < 1e-12:
                    break
            out[i] = 1 - math.exp(-xi + k * math.log(xi) - gln) * h
    return out


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def _ks(x: np.ndarray, cdf: np.ndarray) -> float:
    n = len(x)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - cdf), np.max(cdf - (i - 1) / n)))


def _weibull(t: np.ndarray, c: np.ndarray) -> tuple[float, float, float] | None:
    """Weibull maximum likelihood for failures ``t`` and right-censored lives ``c`` (may be
    empty): (shape, scale, log-likelihood), or None when the shape is outside [0.02, 50].
    Bisection on the profile score in the shape; lives scaled by their mean against overflow."""
    allx = np.concatenate([t, c])
    r = len(t)
    scale0 = float(allx.mean())
    y, ly = allx / scale0, np.log(allx / scale0)
    lt_mean = float(np.log(t / scale0).mean())

    def f(k: float) -> float:  # increasing in k
        yk = y ** k
        return float((yk * ly).sum() / yk.sum() - 1 / k - lt_mean)

    lo, hi = 0.02, 50.0
    if not f(lo) < 0 < f(hi):
        return None
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    k = (lo + hi) / 2
    lam = float(((y ** k).sum() / r) ** (1 / k)) * scale0
    ll = float(r * math.log(k) - r * k * math.log(lam) + (k - 1) * np.log(t).sum() - ((allx / lam) ** k).sum())
    return k, lam, ll


# --------------------------------------------------------------------------- fits
def fit_all(data: Any) -> list[Fit]:
    """Every family that can be fitted to ``data`` (seconds), best AIC first."""
    x = np.sort(np.asarray(data, dtype=float))
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return []
    if n == 1 or np.ptp(x) <= 1e-9 * max(1.0, abs(float(x.mean()))):
        return [Fit("constant", {"value": float(x.mean())}, n, 0.0, 0.0, 0.0)]
    fits: list[Fit] = []
    m, sd = float(x.mean()), float(x.std())
    ll = float(-n * math.log(sd) - n / 2 * math.log(2 * math.pi) - n / 2)
    if m > 0:
        fits.append(Fit("normal", {"mean": m, "cv": sd / m}, n, ll, 4 - 2 * ll, _ks(x, _norm_cdf((x - m) / sd))))
    if x[0] > 0:
        lx = np.log(x)
        slx = float(lx.sum())
        # exponential
        ll = -n * math.log(m) - n
        fits.append(Fit("exponential", {"mean": m}, n, ll, 2 - 2 * ll, _ks(x, 1 - np.exp(-x / m))))
        # lognormal
        mu, sg = float(lx.mean()), float(lx.std())
        if sg > 0:
            ll = float(-slx - n * math.log(sg) - n / 2 * math.log(2 * math.pi) - ((lx - mu) ** 2).sum() / (2 * sg * sg))
            fits.append(Fit("lognormal", {"mean": math.exp(mu + sg * sg / 2), "cv": math.sqrt(math.expm1(sg * sg))},
                            n, ll, 4 - 2 * ll, _ks(x, _norm_cdf((lx - mu) / sg))))
        # gamma (Newton on the shape)
        s = math.log(m) - float(lx.mean())
        if s > 0:
            k = (3 - s + math.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s)
            for _ in range(100):
                step = (math.log(k) - digamma(k) - s) / (1 / k - trigamma(k))
                k2 = k - step
                k = k2 if k2 > 0 else k / 2
                if abs(step) < 1e-10 * k:
                    break
            th = m / k
            ll = float((k - 1) * slx - x.sum() / th - n * k * math.log(th) - n * math.lgamma(k))
            fits.append(Fit("gamma", {"mean": m, "cv": 1 / math.sqrt(k)}, n, ll, 4 - 2 * ll, _ks(x, gamma_cdf(x, k, th))))
        w = _weibull(x, np.empty(0))
        if w is not None:
            k, lam, ll = w
            fits.append(Fit("weibull", {"shape": k, "scale": lam}, n, ll, 4 - 2 * ll,
                            _ks(x, 1 - np.exp(-((x / lam) ** k)))))
    fits.sort(key=lambda ft: ft.aic)
    return fits


def best(data: Any) -> tuple[Fit | None, str]:
    """The AIC-best fit and a one-line report (sample size, chosen family, AIC gap, KS distance)."""
    fits = fit_all(data)
    if not fits:
        return None, "no data"
    b = fits[0]
    if b.family == "constant":
        return b, f"n={b.n}, all equal: constant"
    gap = f", next {fits[1].family} ΔAIC {fits[1].aic - b.aic:.1f}" if len(fits) > 1 else ""
    return b, f"n={b.n}, {b.family} by AIC{gap}, KS D={b.ks:.3f}"


def fit_censored(failures: Any, censored: Any) -> list[Fit]:
    """Exponential and Weibull fits to lives of which some are right-censored (seconds).

    ``failures``: lives that ended in a failure; ``censored``: lives cut short before a
    failure (by planned maintenance, or by the end of the log). Fitting the failures alone
    would favour short lives. Maximum likelihood with censoring, best AIC first; the KS
    distance is left as NaN (it needs a Kaplan-Meier estimate that we do not report).
    """
    t = np.asarray(failures, dtype=float)
    c = np.asarray(censored, dtype=float)
    t, c = t[np.isfinite(t) & (t > 0)], c[np.isfinite(c) & (c > 0)]
    r = len(t)
    if r == 0:
        return []
    allx = np.concatenate([t, c])
    total = float(allx.sum())
    fits = []
    m = total / r
    ll = -r * math.log(m) - total / m
    fits.append(Fit("exponential", {"mean": m}, r, ll, 2 - 2 * ll, float("nan")))
    if r >= 2 and np.ptp(t) > 0:
        w = _weibull(t, c)
        if w is not None:
            k, lam, ll = w
            fits.append(Fit("weibull", {"shape": k, "scale": lam}, r, ll, 4 - 2 * ll, float("nan")))
    fits.sort(key=lambda ft: ft.aic)
    return fits


def best_censored(failures: Any, censored: Any) -> tuple[Fit | None, str]:
    """The AIC-best censored fit and a one-line report."""
    fits = fit_censored(failures, censored)
    if not fits:
        return None, "no failures"
    b = fits[0]
    gap = f", next {fits[1].family} ΔAIC {fits[1].aic - b.aic:.1f}" if len(fits) > 1 else ""
    return b, f"n={b.n} failures + {len(np.asarray(censored))} censored lives, {b.family} by AIC{gap} (censored MLE)"
