"""Demand and supply scenarios: shifts applied to a factory's spec (DESIGN §8). A scenario is a
spec transform, so it lives in the spec layer: every command (compare, ablate, optimize) applies
it the same way."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import Field

from . import builtins
from .units import WEEK, format_duration
from .dists import Duration, PositiveDuration
from .names import Name
from .spec import _M, ARRIVAL_SHIFTS, Shift, Spec, SpecError, read_toml, validate

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
    by the warm-up), or for a line without ``[demand]`` its source does (rate shifts and
    disruptions, :data:`~twin.spec.ARRIVAL_SHIFTS`), and the run covers ``warmup + weeks``."""
    data = spec.model_dump(mode="python", by_alias=True)
    problems = []
    shifts = []
    kept: list[int] = []  # the scenario's index of each shift passed on (a refused one is not)
    arrivals = spec.demand is None  # a line fed by arrivals: the shifts go to its source
    for i, sh in enumerate(scenario.shifts):
        if arrivals and sh.kind not in ARRIVAL_SHIFTS:
            problems.append(f"{source}: shifts.{i}.kind: a {sh.kind} shift needs make-to-order demand; {spec.name} has "
                            f"no [demand] (its {spec.source.kind} source takes {', '.join(ARRIVAL_SHIFTS)})")
            continue  # said once here, not again by the source's own check
        if arrivals and sh.kind != "disruption" and spec.source.kind not in ("poisson", "renewal"):
            problems.append(f"{source}: shifts.{i}.kind: a {sh.kind} shift changes the arrival rate; {spec.name} has "
                            f"a {spec.source.kind} source, which has none (only a disruption applies)")
            continue
        if sh.at >= weeks * WEEK:
            problems.append(f"{source}: shifts.{i}.at: at {format_duration(sh.at, with_seconds=True)} is at or beyond the end of the "
                            f"observation ({format_duration(weeks * WEEK, with_seconds=True)}); times count from the end of the warm-up")
        shifts.append({**sh.model_dump(mode="python"), "at": min(sh.at, weeks * WEEK * 0.999) + warmup})
        kept.append(i)
    data["source" if arrivals else "demand"]["shifts"] = shifts
    data["run"]["horizon"] = warmup + weeks * WEEK
    data["run"]["warmup"] = warmup
    try:
        spec2 = validate(data, source=f"{source} applied to {spec.name}")
    except SpecError as e:
        # the spec's paths name the scenario's shifts by the scenario's own numbering
        problems += [re.sub(r"\b(?:demand|source)\.shifts\.(\d+)", lambda g: f"shifts.{kept[int(g.group(1))]}", p)
                     .replace("demand.shifts", "shifts").replace("source.shifts", "shifts") for p in e.problems]
    if problems:
        raise SpecError(problems)
    return spec2
