"""Demand and supply scenarios: shifts applied to a factory's spec (DESIGN §8). A scenario is a
spec transform, so it lives in the spec layer: every command (compare, ablate, optimize) applies
it the same way."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from . import builtins
from .units import WEEK, format_duration
from .dists import Duration, PositiveDuration
from .names import Name
from .spec import _M, Shift, Spec, SpecError, read_toml, validate

__all__ = ["Scenario", "apply", "load_scenario", "scenario_path"]



class Scenario(_M):
    """A demand (or supply) scenario applied to every factory; shift times count from the end of warm-up."""

    name: Name
    description: str = ""
    shifts: list[Shift] = Field(default_factory=list)
    weeks: PositiveDuration | None = None
    """Observation length in weeks (as a duration, e.g. ``"26w"``); default from the command."""
    warmup: Duration | None = None


def scenario_path(path_or_name: str | os.PathLike[str]) -> Path:
    """A scenario file, or the file of a built-in scenario given by name (``surge``)."""
    p = Path(path_or_name)
    if not p.exists() and p.suffix != ".toml" and os.sep not in str(path_or_name):
        known = builtins.scenarios()
        if str(path_or_name) not in known:
            raise SpecError([f"{path_or_name}: unknown scenario (known: {', '.join(known)}; or give a .toml file)"])
        return known[str(path_or_name)]
    return p


def given_twice(names: list[str], flag: str = "--scenarios") -> list[str]:
    """A problem for each scenario named again (by name or by its file): it would count twice in
    an equal-weight mean and in a Holm family."""
    first: dict[str, str] = {}
    problems: list[str] = []
    for n in names:
        try:
            key = str(scenario_path(n).resolve())
        except SpecError:
            continue  # unknown: load_scenario says so
        if key in first:
            problems.append(f"{flag}: {n!r} is given twice (as {first[key]!r} too)")
        first.setdefault(key, n)
    return problems


def load_scenario(path_or_name: str | os.PathLike[str]) -> Scenario:
    """Load and validate a scenario file or built-in scenario."""
    p = scenario_path(path_or_name)
    return validate(read_toml(p, "a scenario"), source=str(p), model=Scenario)  # type: ignore[return-value]


def apply(spec: Spec, scenario: Scenario, weeks: float, warmup: float, source: str = "<scenario>") -> Spec:
    """The factory ``spec`` under ``scenario``: its demand gains the scenario's shifts (moved
    by the warm-up) and the run covers ``warmup + weeks``."""
    if spec.demand is None:
        raise SpecError([f"{spec.name}: demand: the factory has no [demand]; a scenario needs make-to-order demand"])

    data = spec.model_dump(mode="python", by_alias=True)
    problems = []
    shifts = []
    for i, sh in enumerate(scenario.shifts):
        if sh.at >= weeks * WEEK:
            problems.append(f"{source}: shifts.{i}.at: at {format_duration(sh.at, with_seconds=True)} is at or beyond the end of the "
                            f"observation ({format_duration(weeks * WEEK, with_seconds=True)}); times count from the end of the warm-up")
        shifts.append({**sh.model_dump(mode="python"), "at": min(sh.at, weeks * WEEK * 0.999) + warmup})
    data["demand"]["shifts"] = shifts
    data["run"]["horizon"] = warmup + weeks * WEEK
    data["run"]["warmup"] = warmup
    try:
        spec2 = validate(data, source=f"{source} applied to {spec.name}")
    except SpecError as e:
        problems += [p.replace("demand.shifts", "shifts") for p in e.problems]
    if problems:
        raise SpecError(problems)
    return spec2
