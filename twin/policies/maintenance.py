"""Maintenance policies: when to do planned maintenance on a machine (DESIGN §7)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .registry import register

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


@register("maintenance", "predictive")
class Predictive:
    """Condition-based maintenance from a noisy health signal.

    The machine's health index is its age over its (hidden) failure age; the
    monitor sees it with multiplicative noise, so its estimate of the remaining
    life is ``life × (1 + noise_cv·Z)``. With probability ``recall`` the wear-out
    is noticed and maintenance is planned ``lead_time`` before the predicted
    failure; false alarms (Poisson, ``false_alarm_per_hour`` of operating time)
    plan needless maintenance earlier.
    """

    def __init__(self, spec: Any, rng: np.random.Generator):
        self.recall = spec.recall
        self.noise = spec.noise_cv
        self.lead = float(spec.lead_time)
        self.fa_rate = spec.false_alarm_per_hour / 3600.0
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
