"""What an orchestrator learns from its plant's own data (DESIGN §7): a demand forecast, a
condition model for predictive maintenance, and measured process times.

Plain numerical objects with no simulation inside, so they can be tested against known
series and trained on simulated histories; the policies hold them during a run.
"""

from __future__ import annotations

import bisect
import math
import warnings
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .wear import MachineView, ObservedLife

INF = float("inf")


class DemandForecaster:
    """Exponential smoothing of demand per period (statsmodels): simple or Holt's damped trend,
    each with or without an additive season of ``season`` periods (a week of days), whichever
    the data support (the lowest AICc).

    ``observe`` feeds one period's demand (units) with the factor the calendar of known events
    put on it (``known``: a dated festival announced ahead, 1 on an ordinary day): the model
    learns the demand divided by it, and :meth:`forecast` returns that underlying demand, which
    the caller multiplies by the factors known for the days ahead. The model and its smoothing
    parameters are fitted by maximum likelihood on the last ``window`` periods every
    ``refit_every`` periods (from ``min_history`` on; the season from three seasons of data);
    between fits the level, trend and season follow the Holt-Winters recursions with the fitted
    parameters, so each new period costs O(1). Before ``min_history`` the forecast is the mean
    of what was seen (or ``prior``). Every observation is first scored against the one-step
    forecast made before it (times its known factor): :attr:`mape` and :attr:`rmse` are
    measured errors, not assumptions.
    """

    def __init__(self, prior: float | None = None, min_history: int = 14, refit_every: int = 7,
                 window: int = 112, season: int = 0):
        self.prior = prior
        self.min_history = max(3, min_history)
        self.refit_every = max(1, refit_every)
        self.window = max(self.min_history, window)
        self.season = max(0, int(season))
        self.history: list[float] = []  # demand divided by its known factor, units
        self.errors: list[float] = []  # one-step errors (actual - forecast), units
        self.actuals: list[float] = []  # the actuals scored (same order as errors)
        self.alpha = self.beta = self.gamma = 0.0
        self.phi = 1.0
        self.trended = False
        self.seasonal = False
        self.level = self.trend = 0.0
        self.seas: list[float] = []  # the last ``season`` seasonal terms, oldest first
        self.fitted = False
        self._since_fit = 0
        self.fits = 0

    def observe(self, y: float, known: float = 1.0) -> None:
        """Add one period's demand (units) and the known factor on it (> 0)."""
        y = float(y)
        known = float(known) if known > 0 else 1.0
        f = self.forecast(1)[0] * known if (self.history or self.prior is not None) else None
        if f is not None:
            self.errors.append(y - f)
            self.actuals.append(y)
        z = y / known
        self.history.append(z)
        if self.fitted:
            prev, b = self.level, self.phi * self.trend
            s = self.seas[0] if self.seasonal else 0.0
            self.level = self.alpha * (z - s) + (1.0 - self.alpha) * (prev + b)
            self.trend = self.beta * (self.level - prev) + (1.0 - self.beta) * b
            if self.seasonal:
                self.seas = self.seas[1:] + [self.gamma * (z - prev - b) + (1.0 - self.gamma) * s]
        self._since_fit += 1
        n = len(self.history)
        if n >= self.min_history and (not self.fitted or self._since_fit >= self.refit_every):
            self._fit()

    def _fit(self) -> None:
        from statsmodels.tsa.holtwinters import ExponentialSmoothing  # noqa: PLC0415 - heavy import, once a fit

        y = np.asarray(self.history[-self.window:], dtype=float)
        seasons: list[str | None] = [None]
        if self.season > 1 and len(y) >= 3 * self.season:
            seasons.append("add")
        best, best_score = None, float("inf")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter on short or flat series
            # a damped trend and a season only where the data support them (AICc): a trend
            # fitted to a few noisy weeks would otherwise be extrapolated months ahead
            for seasonal in seasons:
                for trend in (None, "add"):
                    try:
                        res = ExponentialSmoothing(y, trend=trend, damped_trend=trend is not None,
                                                   seasonal=seasonal,
                                                   seasonal_periods=self.season if seasonal else None,
                                                   initialization_method="estimated").fit()
                    except (ValueError, np.linalg.LinAlgError):  # a degenerate series: keep what was fitted
                        continue
                    # a degenerate series has no finite AICc: any fit will do, a finite one is preferred
                    score = float(res.aicc) if np.isfinite(res.aicc) else float("inf")
                    if best is None or score < best_score:
                        best, best_score = res, score
        if best is None:
            self._since_fit = 0
            return
        p = best.params
        self.alpha = float(p["smoothing_level"])
        self.trended = best.model.trend is not None
        self.seasonal = best.model.seasonal is not None
        self.beta = float(p["smoothing_trend"]) if self.trended else 0.0
        self.phi = float(p["damping_trend"]) if self.trended else 0.0
        self.gamma = float(p["smoothing_seasonal"]) if self.seasonal else 0.0
        self.level = float(best.level[-1])
        self.trend = float(best.trend[-1]) if self.trended else 0.0
        self.seas = [float(x) for x in best.season[-self.season:]] if self.seasonal else []
        self.fitted = True
        self._since_fit = 0
        self.fits += 1

    def forecast(self, h: int) -> np.ndarray:
        """Forecast of the next ``h`` periods' underlying demand (units each, never negative;
        multiply by the known factors of those periods)."""
        if self.fitted:
            steps = np.cumsum(self.phi ** np.arange(1, h + 1))
            f = self.level + steps * self.trend
            if self.seasonal:
                f = f + np.resize(np.asarray(self.seas), h)
            return np.maximum(f, 0.0)
        base = float(np.mean(self.history)) if self.history else float(self.prior or 0.0)
        return np.full(h, base)

    @property
    def rmse(self) -> float:
        """Root-mean-square one-step error so far (units per period; NaN before any)."""
        e = np.asarray(self.errors)
        return float(np.sqrt(np.mean(e * e))) if len(e) else float("nan")

    @property
    def mape(self) -> float:
        """Mean absolute percentage one-step error so far (fraction; periods with zero demand left out)."""
        a = np.asarray(self.actuals)
        e = np.asarray(self.errors)
        ok = a > 0
        return float(np.mean(np.abs(e[ok]) / a[ok])) if ok.any() else float("nan")


class ConditionModel:
    """An alarm threshold on a machine's condition readings, learned from the lives the plant
    has logged (:class:`~twin.wear.ObservedLife`): its own run-to-failure history first, then
    every life of the run as it ends.

    Each candidate threshold ``h`` (quantiles of the history's running maxima, and never
    alarming) is scored by renewal-reward, the expected stop time per operating second:
    ``sum(stop) / sum(operating time)`` over the lives whose outcome under ``h`` is known. A
    life's outcome is known for ``h`` up to its ``censor_level``: a run-to-failure life for
    every ``h``; a life lived under an alarm threshold for every ``h`` at or below it (a lower
    one would have alarmed at the first reading above it, whichever way the life ended). Each
    life adds its share to running sums once, so re-training after every stop costs one pass
    over the grid. Nothing here sees a drawn life or a reading the plant had not logged.
    """

    def __init__(self, every: float, grid_points: int = 201):
        self.every = every
        self.grid_points = grid_points
        self.grid: np.ndarray | None = None
        self.threshold = INF
        self.lives = 0  # lives the threshold was learned from
        self.failures = 0
        self.readings = 0

    def _start_grid(self, lives: list) -> None:
        tops = [np.maximum.accumulate(x.readings) for x in lives if len(x.readings)]
        pooled = np.concatenate(tops) if tops else np.zeros(1)
        g = np.unique(np.quantile(pooled, np.linspace(0.0, 1.0, self.grid_points)))
        self.grid = np.append(g, INF)
        self._stop = np.zeros(len(self.grid))
        self._up = np.zeros(len(self.grid))
        self._ss = np.zeros(len(self.grid))  # sums of squares and products, for the estimates' errors
        self._su = np.zeros(len(self.grid))
        self._uu = np.zeros(len(self.grid))

    def add(self, life: "ObservedLife", repair_s: float, planned_s: float) -> None:
        """Add one logged life (its readings, age s, whether it failed, its censor level)."""
        grid = self.grid
        assert grid is not None, "train on the history first"
        runmax = np.maximum.accumulate(life.readings) if len(life.readings) else np.zeros(0)
        k = np.searchsorted(runmax, grid, side="left")
        alarm = k < len(runmax)
        known = grid <= life.censor_level
        if not life.failed:  # a censored life counts only where the alarm came before its end
            known &= alarm
        stop = np.where(known, np.where(alarm, planned_s, repair_s), 0.0)
        up = np.where(known, np.where(alarm, (k + 1) * self.every, life.age), 0.0)
        self._stop += stop
        self._up += up
        self._ss += stop * stop
        self._su += stop * up
        self._uu += up * up
        self.lives += 1
        self.failures += bool(life.failed)
        self.readings += len(life.readings)

    def train(self, lives: "list[ObservedLife]", repair_s: float, planned_s: float) -> float:
        """Start from the plant's history ``lives`` (their grid and scores); return the threshold."""
        self._start_grid(lives)
        for x in lives:
            self.add(x, repair_s, planned_s)
        return self.choose()

    def choose(self) -> float:
        """The threshold to use: the highest whose estimated stop time per operating second is
        within one standard error of the least (the one-standard-error rule: the minimum over
        two hundred noisy estimates flatters whichever is luckiest; the higher threshold stops
        machines less often for the same evidence, and never alarming is the highest)."""
        if self.grid is None:
            return self.threshold
        up = self._up
        with np.errstate(invalid="ignore", divide="ignore"):
            cost = np.where(up > 0, self._stop / up, INF)
            # the ratio estimator's standard error (delta method over the lives scored)
            var = (self._ss - 2.0 * cost * self._su + cost * cost * self._uu) / (up * up)
        i = int(np.argmin(cost))
        bar = float(cost[i] + math.sqrt(max(float(var[i]), 0.0)))
        self.threshold = float(self.grid[int(np.flatnonzero(cost <= bar)[-1])])
        return self.threshold

    def alarm_age(self, view: "MachineView") -> float:
        """Operating age (s) of the first reading at or above the threshold, read one at a time
        from ``view`` (:class:`~twin.wear.MachineView`); INF when none comes before the failure."""
        h = self.threshold
        if h == INF:
            return INF
        k = 1
        while True:
            r = view.reading(k)
            if r is None:
                return INF
            if r >= h:
                return k * self.every
            k += 1


class MeasuredTimes:
    """Per-unit process times as an orchestrator measures them (exponentially weighted
    mean of measured busy time over units, per product), starting from the rated times."""

    __slots__ = ("est", "weight")

    def __init__(self, prior: list[float], weight: float = 0.05):
        self.est = list(prior)
        self.weight = weight

    def observe(self, product: int, seconds: float, units: int) -> None:
        """One lot's measured time (s) for ``units`` units."""
        if units > 0:
            e = self.est[product]
            self.est[product] = e + self.weight * (seconds / units - e)


class StopDurations:
    """How long a station's stops (repairs, planned maintenance) take, as the plant logs them:
    the expected time left of a stop under way, from its elapsed time and the stops of its
    kind measured so far (their mean residual life beyond the elapsed time). Until the first
    stop of a kind is measured, its nominal mean (the figure a maintenance team is quoted: the
    spec's mean) stands in. Nothing here reads a sampled end: dispatch must not know the future."""

    __slots__ = ("nominal", "seen")

    def __init__(self, nominal: list[float]):
        self.nominal = list(nominal)
        self.seen: list[list[float]] = [[] for _ in nominal]  # per kind, sorted

    def observe(self, kind: int, seconds: float) -> None:
        """One finished stop of ``kind`` that took ``seconds`` (waits for a technician included)."""
        bisect.insort(self.seen[kind], seconds)

    def left(self, kind: int, elapsed: float) -> float:
        """Expected seconds left of a stop of ``kind`` under way for ``elapsed`` s: the mean of
        ``d - elapsed`` over the measured durations ``d`` beyond it; past every one measured, the
        measured mean again (nothing tells how much longer); the nominal mean before any."""
        seen = self.seen[kind]
        if not seen:
            return max(self.nominal[kind] - elapsed, 0.0)
        i = bisect.bisect_right(seen, elapsed)
        if i == len(seen):
            return sum(seen) / len(seen)
        beyond = seen[i:]
        return sum(beyond) / len(beyond) - elapsed

    def mean(self, kind: int) -> float:
        """The measured mean duration (s) of stops of ``kind``; the nominal one before any."""
        seen = self.seen[kind]
        return sum(seen) / len(seen) if seen else self.nominal[kind]


def weibull_fit_censored(ages: np.ndarray, failed: np.ndarray) -> tuple[float, float]:
    """``(shape, scale)`` of a Weibull law fitted by maximum likelihood to machine lives of
    which some ended in a failure (``failed``) and the rest were cut short by planned
    maintenance (right-censored at their ``ages``, s): what a plant's own history says."""
    from scipy import stats

    ages = np.asarray(ages, dtype=float)
    failed = np.asarray(failed, dtype=bool)
    data = stats.CensoredData(uncensored=ages[failed], right=ages[~failed])
    shape, _, scale = stats.weibull_min.fit(data, floc=0.0)
    return float(shape), float(scale)


def age_replacement_downtime(interval: float, shape: float, scale: float, repair_s: float, pm_s: float) -> float:
    """Stop time per operating second of age replacement at ``interval`` (s) for Weibull lives
    (renewal-reward: a cycle ends in a repair if the machine fails first, else in a planned
    stop; its operating time is the integral of the survival function up to ``interval``)."""
    from scipy import special

    x = (interval / scale) ** shape
    survive = math.exp(-x)
    operating = scale * math.gamma(1.0 + 1.0 / shape) * float(special.gammainc(1.0 / shape, x))
    return (pm_s * survive + repair_s * (1.0 - survive)) / operating


def age_replacement_interval(shape: float, scale: float, repair_s: float, pm_s: float) -> float:
    """The operating interval (s) of planned maintenance with the least stop time per operating
    second for Weibull lives (Barlow and Proschan's age replacement); INF when running to
    failure is as good (no wear-out: ``shape <= 1``, or a planned stop no shorter than a repair)."""
    from scipy import optimize

    if shape <= 1.0 or pm_s >= repair_s:
        return INF
    f = lambda t: age_replacement_downtime(t, shape, scale, repair_s, pm_s)  # noqa: E731
    grid = scale * np.geomspace(1e-3, 5.0, 200)
    k = int(np.argmin([f(t) for t in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best = float(optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded",
                                          options={"xatol": scale * 1e-7}).x)
    # no interior optimum (the minimum at the grid's end): running to failure costs no more
    return best if f(best) < repair_s / (scale * math.gamma(1.0 + 1.0 / shape)) else INF
