"""Maintenance policies: when to do planned maintenance on a machine (DESIGN §7).

A policy's ``plan(view)`` returns the operating age (s) of the machine's next planned
maintenance, seeing the machine only through a :class:`~twin.wear.MachineView` (its condition
readings, none it could not have logged by then); ``observe`` is told of every stop as the
plant logs it; ``learn`` (if present) gets the station's own history before the run. Only a
policy declaring ``reads_truth = True`` (the oracle upper bound) is given the drawn life.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..learn import ConditionModel, age_replacement_interval, weibull_fit_censored
from .registry import register
from ..wear import ObservedLife
from ..units import HOUR

INF = float("inf")


@register("maintenance", "reactive")
class Reactive:
    """Run to failure: never plan maintenance."""

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.spec = spec

    def plan(self, view: Any) -> float:
        return INF


@register("maintenance", "preventive")
class Preventive:
    """Planned maintenance after every ``interval`` of operating time (age replacement)."""

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.interval = float(spec.interval)

    def plan(self, view: Any) -> float:
        return self.interval


@register("maintenance", "age_replacement")
class AgeReplacement:
    """Time-based (age-replacement) maintenance whose interval the plant learns from its own
    history: the station's run-to-failure past (``history_weeks``, the same data footing as
    predictive maintenance) and every machine's stops in the run, each a life that ended in a
    failure or was cut short by planned maintenance (right-censored), fit a Weibull law by maximum likelihood
    (:func:`~twin.learn.weibull_fit_censored`); the interval with the least stop time per
    operating hour under it, at the measured mean repair and maintenance durations
    (:func:`~twin.learn.age_replacement_interval`, renewal-reward), replaces the current one
    every ``refit_every`` stops once ``min_history`` are known. Without a history it starts from
    ``interval`` (the practice it replaces); it never reads a machine's drawn life."""

    min_history = 30
    refit_every = 10

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.interval = float(spec.interval) if spec.interval is not None else INF
        self.ages: list[float] = []
        self.failed: list[bool] = []
        self.fits = 0  # how often the interval was learned (the data it had: len(ages))

    def plan(self, view: Any) -> float:
        return self.interval

    def learn(self, lives: list, repair_s: float, pm_s: float, every: float = 0.0) -> None:
        """Start from the station's own history (:class:`~twin.wear.ObservedLife` each); ``every``
        (s between condition readings) is unused: an age rule reads only the ages."""
        for x in lives:
            self.ages.append(x.age)
            self.failed.append(x.failed)
        self._fit(repair_s, pm_s)

    def observe(self, age: float, failed: bool, repair_s: float, pm_s: float, view: Any = None) -> None:
        """One stop of a machine of this station at operating ``age`` (s): a failure or a
        planned stop; ``repair_s``/``pm_s`` the stops' mean durations as measured."""
        self.ages.append(age)
        self.failed.append(failed)
        if len(self.ages) % self.refit_every == 0:
            self._fit(repair_s, pm_s)

    def _fit(self, repair_s: float, pm_s: float) -> None:
        if len(self.ages) >= self.min_history and sum(self.failed) >= 2:
            shape, scale = weibull_fit_censored(np.array(self.ages), np.array(self.failed))
            self.interval = age_replacement_interval(shape, scale, repair_s, pm_s)
            self.fits += 1


@register("maintenance", "oracle")
class Oracle:
    """Condition-based maintenance that knows each machine's hidden failure age (an upper bound,
    never a reference factory's policy).

    The estimate of the remaining life is ``life × (1 + noise_cv·Z)``; with probability
    ``recall`` (a given number, not measured) the wear-out is noticed and maintenance is
    planned ``lead_time`` before the predicted failure; false alarms (Poisson,
    ``false_alarm_per_hour`` of operating time) plan needless maintenance earlier.
    """

    reads_truth = True

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.recall = spec.recall
        self.noise = spec.noise_cv
        self.lead = float(spec.lead_time)
        self.fa_rate = spec.false_alarm_per_hour / HOUR
        self.rng = rng

    def plan(self, view: Any) -> float:
        life = view.life
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
    """Predictive maintenance learned from the machines' condition readings (:mod:`twin.wear`).

    Before the run the alarm threshold is learned (:class:`~twin.learn.ConditionModel`) from the
    station's own run-to-failure history (``history_weeks`` of every server's operation, logged
    readings and failures, simulated on a stream of its own); in the run a reading at or above
    it calls planned maintenance, and every life that ends (in a failure or an alarm) joins the
    data and the threshold is chosen again. Recall, precision and warning lead time are outcomes
    the run measures (an alarm within ``horizon`` of the failure it prevented is a true one).
    """

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.spec = spec
        self.model: ConditionModel | None = None
        self._level: dict[int, float] = {}  # the threshold each machine's current life runs under

    def learn(self, lives: list, repair_s: float, pm_s: float, every: float = 0.0) -> None:
        """Learn the threshold from the station's history (:class:`~twin.wear.ObservedLife` each)."""
        self.model = ConditionModel(every)
        self.model.train(lives, repair_s, pm_s)

    @property
    def threshold(self) -> float:
        """The alarm threshold on the condition reading now in force."""
        return self.model.threshold if self.model is not None else INF

    def plan(self, view: Any) -> float:
        self._level[id(view)] = self.threshold
        return self.model.alarm_age(view) if self.model is not None else INF

    def observe(self, age: float, failed: bool, repair_s: float, pm_s: float, view: Any = None) -> None:
        """A machine's life ended at operating ``age`` (s): what it logged joins the data."""
        if self.model is None or view is None:
            return
        level = self._level.pop(id(view), INF)
        self.model.add(ObservedLife(view.readings_to(age), age, failed, level), repair_s, pm_s)
        self.model.choose()
