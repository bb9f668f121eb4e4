"""Maintenance policies: when to do planned maintenance on a machine (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..learn import ConditionModel, ConditionSignal, age_replacement_interval, weibull_fit_censored
from .registry import register
from ..units import HOUR

INF = float("inf")


@register("maintenance", "reactive")
class Reactive:
    """Run to failure: never plan maintenance."""

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.spec = spec

    def plan(self, life: float) -> float:
        return INF


@register("maintenance", "preventive")
class Preventive:
    """Planned maintenance after every ``interval`` of operating time (age replacement)."""

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.interval = float(spec.interval)

    def plan(self, life: float) -> float:
        return self.interval


@register("maintenance", "age_replacement")
class AgeReplacement:
    """Time-based (age-replacement) maintenance whose interval the plant learns from its own
    history: every machine's stops so far, each a life that ended in a failure or was cut
    short by planned maintenance (right-censored), fit a Weibull law by maximum likelihood
    (:func:`~twin.learn.weibull_fit_censored`); the interval with the least stop time per
    operating hour under it, at the measured mean repair and maintenance durations
    (:func:`~twin.learn.age_replacement_interval`, renewal-reward), replaces the current one
    every ``refit_every`` stops once ``min_history`` are known. It starts from ``interval``
    (the practice it replaces) and never reads a machine's drawn life."""

    min_history = 30
    refit_every = 10

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.interval = float(spec.interval) if spec.interval is not None else INF
        self.ages: list[float] = []
        self.failed: list[bool] = []
        self.fits = 0  # how often the interval was learned (the data it had: len(ages))

    def plan(self, life: float) -> float:
        return self.interval  # ``life`` is the machine's hidden failure age: not for this policy

    def observe(self, age: float, failed: bool, repair_s: float, pm_s: float) -> None:
        """One stop of a machine of this station at operating ``age`` (s): a failure or a
        planned stop; ``repair_s``/``pm_s`` the stops' mean durations as measured."""
        self.ages.append(age)
        self.failed.append(failed)
        n = len(self.ages)
        if n >= self.min_history and n % self.refit_every == 0 and any(self.failed):
            shape, scale = weibull_fit_censored(np.array(self.ages), np.array(self.failed))
            self.interval = age_replacement_interval(shape, scale, repair_s, pm_s)
            self.fits += 1


@register("maintenance", "oracle")
class Oracle:
    """Condition-based maintenance that knows each machine's hidden failure age (an upper bound).

    The estimate of the remaining life is ``life × (1 + noise_cv·Z)``; with probability
    ``recall`` (a given number, not measured) the wear-out is noticed and maintenance is
    planned ``lead_time`` before the predicted failure; false alarms (Poisson,
    ``false_alarm_per_hour`` of operating time) plan needless maintenance earlier.
    """

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.recall = spec.recall
        self.noise = spec.noise_cv
        self.lead = float(spec.lead_time)
        self.fa_rate = spec.false_alarm_per_hour / HOUR
        self.rng = rng

    def plan(self, life: float) -> float:
        rng = self.rng
        # draw all three every time so one parameter does not shift the others' random numbers
        u, z, fa = rng.random(), rng.standard_normal(), rng.exponential()
        t = INF
        if u < self.recall and life < INF:
            t = max(0.0, life * max(0.0, 1.0 + self.noise * z) - self.lead)
        if self.fa_rate > 0:
            t = min(t, fa / self.fa_rate)
        return t


@register("maintenance", "predictive")
class Predictive:
    """Predictive maintenance learned from a condition signal (:mod:`twin.learn`).

    Each machine emits a noisy health index that rises with wear (``signal_noise``,
    ``unit_variation``, a reading every ``inspect_every`` of operating time). Before the
    run the model is trained on ``training_lives`` run-to-failure histories drawn from
    the station's own failure law (its own random stream) and learns the alarm
    threshold with the least expected stop time per operating hour; in the run an alarm
    calls planned maintenance. Recall, precision and warning lead time are outcomes the
    run measures (an alarm within ``horizon`` of the failure it prevented is a true one).
    """

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        self.model = ConditionModel(ConditionSignal(spec.signal_noise, spec.unit_variation,
                                                    float(spec.inspect_every)))

    def learn(self, lives: np.ndarray, rng: np.random.Generator, repair_s: float, planned_s: float) -> None:
        """Train the alarm threshold on run-to-failure ``lives`` (s)."""
        self.model.train(lives, rng, repair_s, planned_s)

    @property
    def threshold(self) -> float:
        """The learned alarm threshold on the health index."""
        return self.model.threshold

    def plan(self, life: float) -> float:
        return self.model.alarm_age(life, self.rng)
