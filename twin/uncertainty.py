"""How sure is the ranking? Parameter uncertainty of the comparison (DESIGN §15).

The reference factories rest on estimated parameters. Each estimate that drives a headline
row carries a plausible range with its reason in an uncertainty file (``lines/uncertainty.toml``:
a value between ``low`` and ``high``, or a ``scale`` factor on the spec's own values). For
``twin compare --uncertainty N``, :func:`draws` places N parameter sets in those ranges by Latin
hypercube (every range cut into N strata, each hit once), every set is run on the same seeds
(common random numbers), and :func:`analyse` reports for each scenario and measure the share of
plausible worlds in which each factory is the best (ties split), and a tornado: the parameters
whose rank correlation (Spearman) with each pair's difference is largest, with the swing of the
difference from the low to the high end of the range (a univariate least-squares slope).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from . import builtins
from .names import Name
from .spec import _M, Spec, SpecError, read_toml, validate
from .stats import latin_hypercube, spearman, win_probabilities


class Parameter(_M):
    """One uncertain parameter: a range for a spec path of one factory (or of every factory)."""

    name: Name
    """How the report names it (``cell capex``)."""
    factory: str
    """The factory it belongs to, or ``*`` for a parameter every factory shares (one draw for all)."""
    path: str = Field(min_length=1)
    """A dotted spec path as for ``--set``; ``*`` matches every list item or table entry."""
    low: float | None = None
    """Lowest plausible value (with ``high``): the path is set to a value in [low, high]."""
    high: float | None = None
    """Highest plausible value."""
    scale: tuple[float, float] | None = None
    """Instead of low/high: a factor range on the spec's own values (each matched value keeps its own)."""
    reason: str = Field(min_length=1)
    """Why this range: its source, or the reasoning of the estimate."""
    kind: Literal["uniform"] = "uniform"
    """Values are spread uniformly over the range."""

    @model_validator(mode="after")
    def _range(self) -> "Parameter":
        if (self.scale is None) == (self.low is None or self.high is None):
            raise ValueError("give either low and high, or scale = [low factor, high factor]")
        lo, hi = self.scale if self.scale is not None else (self.low, self.high)
        if not lo < hi:  # type: ignore[operator]
            raise ValueError(f"the range must run from low to high, got [{lo:g}, {hi:g}]")
        if self.scale is not None and lo <= 0:
            raise ValueError("scale factors must be > 0")
        return self


class UncertaintyFile(_M):
    """The plausible ranges of a comparison's estimated parameters."""

    parameter: list[Parameter] = Field(min_length=1)
    """The parameters, each with its range and reason."""


def load(path: str | Path | None = None) -> tuple[UncertaintyFile, str]:
    """The uncertainty file at ``path`` (default: the reference factories' own) and its name."""
    p = Path(path) if path is not None else builtins.uncertainty_file()
    return validate(read_toml(p, "an uncertainty file"), source=str(p), model=UncertaintyFile), str(p)  # type: ignore[return-value]


def _match(data: Any, parts: list[str]) -> list[tuple[Any, Any]]:
    """Every (container, key) that ``parts`` reaches in plain spec data: list items by name, index
    or ``*``, table entries by key or ``*``; missing and empty entries are skipped."""
    nodes = [data]
    for i, part in enumerate(parts):
        pairs: list[tuple[Any, Any]] = []
        for cur in nodes:
            if isinstance(cur, list):
                names = [el.get("name") if isinstance(el, dict) else None for el in cur]
                if part == "*":
                    idx = list(range(len(cur)))
                elif part in names:
                    idx = [names.index(part)]
                elif part.isdigit() and int(part) < len(cur):
                    idx = [int(part)]
                else:
                    idx = []
                pairs += [(cur, k) for k in idx]
            elif isinstance(cur, dict):
                keys = list(cur) if part == "*" else ([part] if part in cur else [])
                pairs += [(cur, k) for k in keys if cur[k] is not None]
        if i == len(parts) - 1:
            return pairs
        nodes = [c[k] for c, k in pairs]
    return []


def _apply(data: dict[str, Any], par: Parameter, u: float) -> int:
    """Set ``par`` at position ``u`` in [0, 1) of its range in ``data``; return how many values changed."""
    lo, hi = par.scale if par.scale is not None else (par.low, par.high)
    x = lo + u * (hi - lo)  # type: ignore[operator]
    n = 0
    for cont, key in _match(data, par.path.split(".")):
        if par.scale is not None:
            if isinstance(cont[key], bool) or not isinstance(cont[key], (int, float)):
                continue
            cont[key] = cont[key] * x
        else:
            cont[key] = x
        n += 1
    return n


def value_of(par: Parameter, u: float) -> float:
    """The parameter's value (or factor) at position ``u`` of its range."""
    lo, hi = par.scale if par.scale is not None else (par.low, par.high)
    return float(lo + u * (hi - lo))  # type: ignore[operator]


def draws(pars: UncertaintyFile, source: str, specs: dict[str, Spec], n: int, seed: int
          ) -> tuple[np.ndarray, list[dict[str, Spec]]]:
    """``n`` Latin-hypercube positions (n × parameters, in [0, 1)) and, for each, the factories'
    specs with the parameters set. Every drawn spec is validated before anything runs; a
    parameter whose path matches nothing in its factory is an error naming it."""
    problems: list[str] = []
    for i, p in enumerate(pars.parameter):
        targets = list(specs) if p.factory == "*" else [p.factory]
        if p.factory != "*" and p.factory not in specs:
            continue  # a factory this comparison does not include
        for f in targets:
            data = specs[f].model_dump(mode="python", by_alias=True)
            if _apply(data, p, 0.5) == 0 and p.factory != "*":
                problems.append(f"{source}: parameter.{i} ({p.name}): path {p.path!r} matches nothing in {f}")
    if problems:
        raise SpecError(problems)
    u = latin_hypercube(n, len(pars.parameter), seed)
    out: list[dict[str, Spec]] = []
    for k in range(n):
        world: dict[str, Spec] = {}
        for f, spec in specs.items():
            data = copy.deepcopy(spec.model_dump(mode="python", by_alias=True))
            for j, p in enumerate(pars.parameter):
                if p.factory in ("*", f):
                    _apply(data, p, float(u[k, j]))
            try:
                world[f] = validate(data, source=f"{source}: draw {k} of {f}")
            except SpecError as e:
                problems += e.problems
        out.append(world)
    if problems:
        raise SpecError(problems[:20])
    return u, out


def top_ties(worlds: list[dict[str, float]], better: str) -> float:
    """Share of worlds (with a value) in which the best value is shared by two or more designs."""
    n = tied = 0
    for w in worlds:
        ok = [v for v in w.values() if math.isfinite(v)]
        if not ok:
            continue
        n += 1
        top = max(ok) if better == "high" else min(ok)
        tied += sum(1 for v in ok if v == top) > 1
    return tied / n if n else float("nan")


def analyse(runs: pd.DataFrame, u: np.ndarray, pars: UncertaintyFile,
            measures: list[tuple[str, str, str | None, str]]
            ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """From runs with a ``draw`` column: ``probabilities`` (scenario → measure → factory → share of
    draws in which it is the best by its mean over replications), ``ties`` (scenario → measure →
    share of draws whose best is shared) and ``tornado`` (scenario → measure → "A vs B" →
    parameters sorted by |rho|, each with ``rho`` and ``swing``)."""
    probs: dict[str, Any] = {}
    ties: dict[str, Any] = {}
    tornado: dict[str, Any] = {}
    means = runs.groupby(["draw", "scenario", "factory"], sort=False).mean(numeric_only=True)
    n_draws = u.shape[0]
    for sc in dict.fromkeys(runs["scenario"]):
        facs = list(dict.fromkeys(runs.loc[runs["scenario"] == sc, "factory"]))
        for key, _, better, _ in measures:
            if better is None or key not in means:
                continue
            worlds = []
            for k in range(n_draws):
                worlds.append({f: float(means[key].get((k, sc, f), float("nan"))) for f in facs})
            p = win_probabilities(worlds, better)
            if not p:
                continue  # not defined in this scenario (no recovery without a shift)
            probs.setdefault(str(sc), {})[key] = p
            ties.setdefault(str(sc), {})[key] = top_ties(worlds, better)
            for i, a in enumerate(facs):
                for b in facs[i + 1:]:
                    diff = np.array([w[a] - w[b] for w in worlds])
                    rows = []
                    for j, p in enumerate(pars.parameter):
                        if p.factory not in ("*", a, b):
                            continue
                        x = np.array([value_of(p, float(v)) for v in u[:, j]])
                        rho = spearman(x, diff)
                        ok = np.isfinite(diff)
                        swing = float("nan")
                        if ok.sum() >= 3 and np.ptp(x[ok]) > 0:
                            slope = float(np.polyfit(x[ok], diff[ok], 1)[0])
                            lo, hi = value_of(p, 0.0), value_of(p, 1.0)
                            swing = slope * (hi - lo)
                        rows.append({"parameter": p.name, "factory": p.factory, "rho": rho, "swing": swing})
                    rows.sort(key=lambda r: -abs(r["rho"]) if math.isfinite(r["rho"]) else 0.0)
                    tornado.setdefault(str(sc), {}).setdefault(key, {})[f"{a} vs {b}"] = rows
    return probs, ties, tornado
