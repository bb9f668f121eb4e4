"""How machines wear out, and what the plant can see of it (DESIGN §7).

A machine's wear index rises as a Wiener process with drift in operating time,
``X(a) = a / wear_life + sigma · W(a)``, from 0 when new; the machine fails when the
index first reaches its own failure level ``D`` (lognormal, mean 1, unit-to-unit
coefficient of variation ``threshold_cv``), or earlier at a shock (exponential in
operating time, no warning). Without level variation and shocks the life is inverse
Gaussian with mean ``wear_life`` and coefficient of variation ``wear_cv`` (the Wiener
first-passage law: ``IG(mean = D/mu, shape = D**2/sigma**2)``). A sensor reads the index,
with Gaussian noise, every ``reading_every`` of operating time.

Nothing here says how far a machine is from failing: the readings are the path, and the
path does not know its level or its shock. A maintenance policy sees a machine only through
a :class:`MachineView` (its readings, one at a time, up to the age it acts at); the drawn
life is not in it. :func:`plant_history` simulates a plant's own run-to-failure past on a
stream of its own: the data a learning policy starts from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable

import numpy as np

INF = float("inf")
_CHUNK = 64  # readings drawn per numpy call while a path is below its level


class HiddenValue(AttributeError):
    """A policy asked for something the plant cannot observe (a machine's drawn life)."""


class FutureReading(RuntimeError):
    """A policy planned maintenance before a condition reading it had looked at."""


@dataclass(frozen=True)
class WearLaw:
    """The wear-out law of one station's machines (see the module docstring); times in s."""

    wear_life: float
    wear_cv: float
    threshold_cv: float
    shock_mttf: float
    reading_every: float
    reading_noise: float

    @classmethod
    def from_spec(cls, d: Any) -> "WearLaw":
        """From a spec's ``failures.degradation``."""
        return cls(float(d.wear_life), float(d.wear_cv), float(d.threshold_cv),
                   float(d.shock_mttf) if d.shock_mttf is not None else INF, float(d.reading_every),
                   float(d.reading_noise))

    @property
    def drift(self) -> float:
        """Index per operating second."""
        return 1.0 / self.wear_life

    @property
    def sigma(self) -> float:
        """Index per square-root operating second: the IG's cv**2 = sigma**2 / (drift · D) at D = 1."""
        return self.wear_cv * math.sqrt(self.drift)

    def life(self, rng: np.random.Generator) -> tuple[float, np.ndarray]:
        """One machine life: ``(failure age s, readings)``, the readings those taken at ages
        ``reading_every · (1, 2, …)`` before the failure. The failure is exact at the reading
        ages (a Brownian bridge between two readings crosses the level with probability
        ``exp(-2 (D - x0)(D - x1) / (sigma**2 · step))``); within a step the crossing age is
        interpolated linearly. Every random number comes from ``rng`` in a fixed order."""
        step, mu, sig = self.reading_every, self.drift, self.sigma
        if self.threshold_cv > 0:
            s2 = math.log1p(self.threshold_cv ** 2)
            level = float(rng.lognormal(-s2 / 2.0, math.sqrt(s2)))
        else:
            level = 1.0
        shock = float(rng.exponential(self.shock_mttf)) if math.isfinite(self.shock_mttf) else INF
        path: list[np.ndarray] = []
        x0, k0 = 0.0, 0
        life = INF
        sd = sig * math.sqrt(step)
        while life == INF:
            z = rng.standard_normal(_CHUNK)
            u = rng.random(_CHUNK)
            x = x0 + np.cumsum(mu * step + sd * z)
            prev = np.concatenate(([x0], x[:-1]))
            with np.errstate(over="ignore", under="ignore"):
                p_bridge = np.where((x < level) & (prev < level),
                                    np.exp(-2.0 * (level - prev) * (level - x) / (sig * sig * step)), 1.0)
            hit = np.flatnonzero((x >= level) | (u < p_bridge))
            if len(hit):
                j = int(hit[0])
                a, b = prev[j], x[j]
                frac = (level - a) / (b - a) if b > level and b > a else 0.5
                life = (k0 + j + min(max(frac, 0.0), 1.0)) * step
                path.append(x[:j])
            else:
                path.append(x)
                x0, k0 = float(x[-1]), k0 + _CHUNK
            if k0 * step > shock:
                break
        life = min(life, shock)
        xs = np.concatenate(path) if path else np.zeros(0)
        n = int(math.ceil(life / step)) - 1 if math.isfinite(life) else len(xs)
        xs = xs[:max(n, 0)]
        return life, xs + self.reading_noise * rng.standard_normal(len(xs))

    @cached_property
    def mean_life(self) -> float:
        """Mean operating life (s): E[min(first passage, shock)], by quadrature over the level."""
        from scipy import integrate, stats

        mu, sig = self.drift, self.sigma
        if self.threshold_cv > 0:
            s2 = math.log1p(self.threshold_cv ** 2)
            z, w = np.polynomial.hermite_e.hermegauss(24)
            levels, weights = np.exp(-s2 / 2.0 + math.sqrt(s2) * z), w / w.sum()
        else:
            levels, weights = np.ones(1), np.ones(1)
        lam = 1.0 / self.shock_mttf if math.isfinite(self.shock_mttf) else 0.0

        def survive(t: float) -> float:
            ig = sum(wi * stats.invgauss.sf(t, mu=sig * sig / (mu * d), scale=d * d / (sig * sig))
                     for d, wi in zip(levels, weights))
            return float(ig) * math.exp(-lam * t)

        top = 50.0 * self.wear_life
        return float(integrate.quad(survive, 0.0, top, limit=200, points=[self.wear_life])[0])


class MachineView:
    """What the plant observes of one machine's current life: condition readings (index
    units, one every :attr:`every` s of operating age), read one at a time.

    ``reading(k)`` is the reading at age ``k · every`` (k = 1, 2, …), ``None`` if the machine
    failed before it. The latest age read is kept: a policy that plans maintenance before a
    reading it has looked at has read the future, and the run stops with an error saying so.
    The drawn life is not here; :attr:`life` is granted only to a policy that declares
    ``reads_truth`` (the oracle, an upper bound)."""

    __slots__ = ("every", "_readings", "_life", "read_to")

    def __init__(self, readings: np.ndarray | None, every: float, life: float | None = None):
        self.every = every
        self._readings = readings
        self._life = life
        self.read_to = 0.0  # the greatest age (s) whose reading a policy has looked at

    @property
    def has_signal(self) -> bool:
        """Whether the machine has a condition sensor."""
        return self._readings is not None

    def reading(self, k: int) -> float | None:
        """The reading at operating age ``k · every`` s; ``None`` if the machine did not live to it."""
        if self._readings is None:
            raise HiddenValue("this machine has no condition signal (failures.degradation not set)")
        self.read_to = max(self.read_to, k * self.every)
        return float(self._readings[k - 1]) if 1 <= k <= len(self._readings) else None

    def readings_to(self, age: float) -> np.ndarray:
        """The readings taken up to operating ``age`` s (what the plant has logged by then)."""
        if self._readings is None:
            return np.zeros(0)
        self.read_to = max(self.read_to, age)
        return self._readings[:int(age // self.every)]

    @property
    def life(self) -> float:
        """The machine's drawn failure age (s): hidden from every policy but the oracle."""
        if self._life is None:
            raise HiddenValue("a machine's failure age is not observable; only a policy declaring "
                              "reads_truth = True (the oracle upper bound) is given it")
        return self._life


@dataclass
class ObservedLife:
    """One machine life as the plant logged it: readings, the operating age it ended at and
    how (``failed``); ``censor_level`` is the highest alarm threshold whose outcome on this
    life is known (INF for a failure; the running maximum of the readings for a life cut short
    by an alarm or the end of a history: a lower threshold would have alarmed no later)."""

    readings: np.ndarray
    age: float
    failed: bool
    censor_level: float


def plant_history(draw: Callable[[np.random.Generator], tuple[float, np.ndarray]], machines: int,
                  operating_s: float, rng: np.random.Generator, every: float = 0.0) -> list[ObservedLife]:
    """A plant's own past: ``machines`` machines each run to failure for ``operating_s`` s of
    operating time, lives drawn by ``draw`` (failure age s, readings every ``every`` s) back to
    back, a repair renewing the machine, the readings logged. A life still running when the
    history ends is kept, censored at its age (its outcome known for thresholds up to the
    highest reading it had shown)."""
    out: list[ObservedLife] = []
    for _ in range(machines):
        t = 0.0
        while t < operating_s:
            life, r = draw(rng)
            if t + life <= operating_s:
                out.append(ObservedLife(r, life, True, INF))
            else:
                age = operating_s - t
                seen = r[:int(age // every)] if every > 0 else r[:0]
                out.append(ObservedLife(seen, age, False, float(seen.max()) if len(seen) else -INF))
            t += life
    return out
