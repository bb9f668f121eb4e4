"""Each factory's candidate designs: Pareto fronts and the protocol's choice per world (DESIGN §7, §15).

A designs file (``lines/designs.toml`` for the reference factories) lists, per factory, the
candidates its design protocol searches: each a label and the spec values it sets. With them,

- :func:`pareto` finds each factory's front of baseline conversion cost against surge fill rate
  (and against the Kaplan-Meier median time to recover): the candidates no other candidate of
  the same factory beats on both;
- :func:`choose` applies the design protocol's rule to a set of candidates' results: the least
  mean conversion cost over the scenarios among the candidates whose baseline fill rate meets
  the floor (the highest baseline fill rate when none does), so ``--uncertainty N --designs``
  can let each factory take its best candidate in every plausible world and price draw.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from . import builtins
from .names import Name
from .spec import _M, SpecError, read_toml, validate

FILL_FLOOR = 0.98
"""The design protocol's service rule: baseline fill rate at least this (benchmarks/design.py)."""
OBJECTIVE = "conversion_cost"
"""The design protocol's objective: mean over the scenarios, lower is better."""


class Candidate(_M):
    """One candidate design: what it sets in the factory's spec."""

    label: Name
    """How the report names it (``12 owned lines``)."""
    set: dict[str, Any] = Field(min_length=1)
    """Spec paths (as ``--set`` writes them) and their values."""


class FactoryDesigns(_M):
    """A factory's design variable and its candidates."""

    name: str = Field(min_length=1)
    """The factory (as ``--factories`` names it)."""
    variable: str = Field(min_length=1)
    """What the candidates vary, in words."""
    candidate: list[Candidate] = Field(min_length=1)


class DesignsFile(_M):
    """The candidate designs of a comparison's factories."""

    factory: list[FactoryDesigns] = Field(min_length=1)


def load(path: str | Path | None = None) -> tuple[DesignsFile, str]:
    """The designs file at ``path`` (default: the reference factories' own) and its name."""
    p = Path(path) if path is not None else builtins.designs_file()
    return validate(read_toml(p, "a designs file"), source=str(p), model=DesignsFile), str(p)  # type: ignore[return-value]


def candidates(file: DesignsFile, source: str, factories: list[str]) -> dict[str, list[Candidate]]:
    """The candidates of each compared factory that the file names; a label given twice, or a
    factory named twice, is an error naming it."""
    out: dict[str, list[Candidate]] = {}
    problems = []
    for i, f in enumerate(file.factory):
        if f.name in out:
            problems.append(f"{source}: factory.{i}: {f.name!r} is given twice")
            continue
        labels = [c.label for c in f.candidate]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            problems.append(f"{source}: factory.{i} ({f.name}): candidate labels given twice: {', '.join(dup)}")
        if f.name in factories:
            out[f.name] = list(f.candidate)
    if problems:
        raise SpecError(problems)
    return out


def pareto(points: dict[str, tuple[float, float]], x_better: str = "low", y_better: str = "high") -> list[str]:
    """The labels on the Pareto front of ``points`` (label → (x, y)): those no other point is at
    least as good as on both and strictly better on one. Points with a NaN are never on it."""
    sx = 1.0 if x_better == "low" else -1.0
    sy = 1.0 if y_better == "low" else -1.0
    ok = {k: (sx * x, sy * y) for k, (x, y) in points.items() if math.isfinite(x) and not math.isnan(y)}
    front = []
    for k, (x, y) in ok.items():
        dominated = any(x2 <= x and y2 <= y and (x2 < x or y2 < y) for k2, (x2, y2) in ok.items() if k2 != k)
        if not dominated:
            front.append(k)
    return front


def choose(objective: dict[str, float], fill: dict[str, float], floor: float = FILL_FLOOR) -> str | None:
    """The design protocol's pick among candidates: the least ``objective`` (mean conversion cost
    over the scenarios) among those whose baseline ``fill`` rate is at least ``floor``; when none
    is, the one with the highest fill rate (ties: the least objective). None without candidates."""
    feasible = [k for k in objective if fill.get(k, float("nan")) >= floor and math.isfinite(objective[k])]
    if feasible:
        return min(feasible, key=lambda k: objective[k])
    scored = [k for k in objective if math.isfinite(fill.get(k, float("nan")))]
    if not scored:
        return None
    return max(scored, key=lambda k: (fill[k], -objective[k] if math.isfinite(objective[k]) else -math.inf))


def fronts(means: dict[str, dict[str, dict[str, float]]], baseline: str, shift: str) -> dict[str, Any]:
    """Per factory, its candidates' baseline conversion cost, ``shift`` fill rate and time to
    recover, and which lie on each front: ``means`` is factory → label → {"cost", "fill", "ttr"}
    (the candidates' means: baseline conversion cost, the shift scenario's fill rate, its
    Kaplan-Meier median time to recover in s; NaN where unknown, inf where fewer than half recovered)."""
    out: dict[str, Any] = {"baseline": baseline, "shift": shift, "factories": {}}
    for f, cands in means.items():
        fill_front = pareto({k: (v["cost"], v["fill"]) for k, v in cands.items()}, "low", "high")
        ttr_front = pareto({k: (v["cost"], v["ttr"]) for k, v in cands.items()}, "low", "low")
        out["factories"][f] = [{"design": k, **v, "on_fill_front": k in fill_front, "on_recovery_front": k in ttr_front}
                               for k, v in cands.items()]
    return out


def objective_of(values: dict[str, float]) -> float:
    """The protocol's objective from per-scenario means of the objective measure (NaN-free mean)."""
    v = [x for x in values.values() if math.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")
