"""Maintenance policies: when to do planned maintenance on a machine (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..learn import ConditionModel, ConditionSignal
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
