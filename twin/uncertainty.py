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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from . import builtins
from .cost import is_price_path
from .names import Name
from .spec import _M, Spec, SpecError, read_toml, validate
from .stats import clopper_pearson, effective_n, latin_hypercube, noise_share, prcc, win_shares


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
        if self.scale is not None and lo <= 0:  # type: ignore[operator]
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


def match(data: Any, parts: list[str]) -> list[tuple[Any, Any]]:
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


def _put(data: Any, par: Parameter, x: float) -> int:
    """Set ``par`` to ``x`` in ``data`` in place (a value, or a factor on each matched value of a
    ``scale`` parameter); return how many values changed."""
    n = 0
    for cont, key in match(data, par.path.split(".")):
        if par.scale is not None:
            if isinstance(cont[key], bool) or not isinstance(cont[key], (int, float)):
                continue
            cont[key] = cont[key] * x
        else:
            cont[key] = x
        n += 1
    return n


def _apply(data: dict[str, Any], par: Parameter, u: float) -> int:
    """Set ``par`` at position ``u`` in [0, 1) of its range in ``data``; return how many values changed."""
    return _put(data, par, value_of(par, u))


def set_value(data: dict[str, Any], par: Parameter, x: float) -> dict[str, Any]:
    """A copy of plain spec data (a whole spec's, or :func:`twin.cost.prices_of`) with ``par`` set
    to ``x`` (or, for a ``scale`` parameter, each matched value times ``x``); a parameter that
    matches nothing there is an error naming it."""
    out = copy.deepcopy(data)
    if _put(out, par, x) == 0:
        raise SpecError([f"parameter {par.name!r}: path {par.path!r} matches nothing"])
    return out


def value_of(par: Parameter, u: float) -> float:
    """The parameter's value (or factor) at position ``u`` of its range."""
    lo, hi = par.scale if par.scale is not None else (par.low, par.high)
    return float(lo + u * (hi - lo))  # type: ignore[operator]


def is_price(par: Parameter) -> bool:
    """Whether a parameter is a price (:func:`twin.cost.is_price_path`): drawn after the runs, by
    re-pricing them, instead of by simulating again."""
    return is_price_path(par.path)


@dataclass
class Draws:
    """The plausible worlds of a study: ``u`` (worlds × behaviour parameters, positions in [0, 1)),
    one validated spec per factory and world in ``worlds``, and ``v`` (price draws × price
    parameters) that every world's runs are priced under. ``behaviour`` and ``price`` index the
    file's parameters."""

    behaviour: list[int]
    price: list[int]
    u: np.ndarray
    worlds: list[dict[str, Spec]]
    v: np.ndarray


def resolve(pars: UncertaintyFile, source: str, specs: dict[str, Spec]) -> UncertaintyFile:
    """``pars`` with each entry's ``factory`` read as one of the comparison's factories (``specs``
    keys): by key, or by the file name without ``.toml`` or the spec's own name (``tiny`` for
    ``tiny.toml``). An entry that matches nothing is an error naming it: a factory that is neither
    in the comparison nor a built-in reference factory (whose entries apply when it is compared),
    or a ``*`` path that matches no factory's spec."""
    problems: list[str] = []
    known = set(builtins.factories())
    out: list[Parameter] = []
    for i, p in enumerate(pars.parameter):
        f = p.factory
        if f != "*" and f not in specs:
            alias = [k for k, sp in specs.items() if f in (Path(k).stem, Path(k).name, sp.name)]
            if len(alias) == 1:
                p = p.model_copy(update={"factory": alias[0]})
            elif f not in known:
                problems.append(f"{source}: parameter.{i} ({p.name}): factory {f!r} is not in this comparison "
                                f"(its factories: {', '.join(specs)}); name one of them, or '*' for every one")
        elif f == "*" and not any(_apply(s.model_dump(mode="python", by_alias=True), p, 0.5) for s in specs.values()):
            problems.append(f"{source}: parameter.{i} ({p.name}): path {p.path!r} (factory '*') matches nothing in "
                            f"any factory of this comparison ({', '.join(specs)})")
        out.append(p)
    if problems:
        raise SpecError(problems)
    if not any(p.factory == "*" or p.factory in specs for p in out):
        raise SpecError([f"{source}: no parameter concerns a factory of this comparison ({', '.join(specs)}): "
                         "the study would vary nothing"])
    return pars.model_copy(update={"parameter": out})


def draws(pars: UncertaintyFile, source: str, specs: dict[str, Spec], n: int, seed: int,
          price_draws: int = 0) -> Draws:
    """``n`` behavioural worlds by Latin hypercube over the parameters that are not prices (each
    factory's spec with them set, validated before anything runs) and ``price_draws`` Latin-hypercube
    sets of the price parameters (their own stream: adding price draws does not move the worlds).
    A parameter whose path matches nothing in its factory is an error naming it."""
    problems: list[str] = []
    for i, p in enumerate(pars.parameter):
        if p.factory != "*" and p.factory not in specs:
            continue  # a factory this comparison does not include
        for f in (list(specs) if p.factory == "*" else [p.factory]):
            data = specs[f].model_dump(mode="python", by_alias=True)
            if _apply(data, p, 0.5) == 0 and p.factory != "*":
                problems.append(f"{source}: parameter.{i} ({p.name}): path {p.path!r} matches nothing in {f}")
    if problems:
        raise SpecError(problems)
    behaviour = [j for j, p in enumerate(pars.parameter) if not is_price(p)]
    price = [j for j, p in enumerate(pars.parameter) if is_price(p)]
    u = latin_hypercube(n, len(behaviour), seed) if behaviour else np.zeros((n, 0))
    v = (latin_hypercube(price_draws, len(price), seed + 7919) if price and price_draws > 0
         else np.zeros((0, len(price))))
    out: list[dict[str, Spec]] = []
    for k in range(n):
        world: dict[str, Spec] = {}
        for f, spec in specs.items():
            data = copy.deepcopy(spec.model_dump(mode="python", by_alias=True))
            for c, j in enumerate(behaviour):
                p = pars.parameter[j]
                if p.factory in ("*", f):
                    _apply(data, p, float(u[k, c]))
            try:
                world[f] = validate(data, source=f"{source}: draw {k} of {f}")
            except SpecError as e:
                problems += e.problems
        out.append(world)
    if problems:
        raise SpecError(problems[:20])
    return Draws(behaviour, price, u, out, v)


def priced(prices: dict[str, Any], pars: UncertaintyFile, d: Draws, m: int, factory: str) -> dict[str, Any]:
    """A factory's prices under price draw ``m`` of ``d`` (the parameters that concern it set)."""
    out = copy.deepcopy(prices)
    for c, j in enumerate(d.price):
        p = pars.parameter[j]
        if p.factory in ("*", factory):
            _put(out, p, value_of(p, float(d.v[m, c])))
    return out


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


def analyse(combos: pd.DataFrame, x: pd.DataFrame, reps: pd.DataFrame, pars: UncertaintyFile,
            measures: list[tuple[str, str, str | None, str]], level: float = 0.95) -> dict[str, Any]:
    """How sure the ranking is, from ``combos`` (one row per world × price draw × scenario × factory:
    ``world``, ``price_draw``, the measures as means over the world's replications, priced under the
    draw), ``x`` (the parameter values of each world × price draw: ``world``, ``price_draw`` and a
    column per parameter name) and ``reps`` (every replication at the nominal prices, for the noise).

    Returns ``probabilities`` (scenario → measure → factory → share of combinations in which it is
    the best, ties split), ``uncertainty_ci`` (the same → [low, high]: Clopper-Pearson at ``level``
    on Kish's effective sample size, since the price draws of one world share its runs),
    ``effective_n``, ``ties``, ``noise_share`` (scenario → measure → "A vs B" → share of the variance
    of the worlds' mean difference that is replication noise) and ``tornado`` (scenario → measure →
    "A vs B" → parameters by |PRCC|, each with ``prcc`` and ``swing``: the multiple-regression
    partial effect over its range)."""
    out: dict[str, Any] = {k: {} for k in ("probabilities", "uncertainty_ci", "effective_n", "ties", "noise_share",
                                           "tornado")}
    names = [p.name for p in pars.parameter]
    keyed = combos.set_index(["world", "price_draw"]).sort_index()
    xk = x.set_index(["world", "price_draw"]).sort_index()
    worlds = sorted(set(combos["world"]))
    for sc in dict.fromkeys(combos["scenario"]):
        g = keyed[keyed["scenario"] == sc]
        facs = list(dict.fromkeys(g["factory"]))
        idx = g[g["factory"] == facs[0]].index
        for key, _, better, _ in measures:
            if better is None or key not in g:
                continue
            vals = np.column_stack([g[g["factory"] == f].reindex(idx)[key].to_numpy(dtype=float) for f in facs])
            if not np.isfinite(vals).any():
                continue  # not defined in this scenario (no recovery without a shift)
            w = win_shares(vals, better)
            counted = np.isfinite(w).all(axis=1)
            if not counted.any():
                continue
            probs, cis, neff = {}, {}, {}
            wk = pd.DataFrame(w, index=idx, columns=facs)[counted]
            for f in facs:
                share = float(wk[f].mean())
                mat = wk[f].groupby(level="world").apply(list)
                m = min(len(r) for r in mat)
                ne = effective_n(np.array([r[:m] for r in mat])) * len(wk) / (len(mat) * m)
                probs[f], neff[f] = share, ne
                cis[f] = list(clopper_pearson(share * ne, ne, level))
            out["probabilities"].setdefault(str(sc), {})[key] = probs
            out["uncertainty_ci"].setdefault(str(sc), {})[key] = cis
            out["effective_n"].setdefault(str(sc), {})[key] = neff
            rows_v = [dict(zip(facs, r)) for r in vals[counted]]
            out["ties"].setdefault(str(sc), {})[key] = top_ties(rows_v, better)
            X = xk.reindex(idx).reindex(columns=names).to_numpy(dtype=float)
            rg = reps[reps["scenario"] == sc]
            for i, a in enumerate(facs):
                for b in facs[i + 1:]:
                    diff = vals[:, i] - vals[:, facs.index(b)]
                    cols = [j for j, p in enumerate(pars.parameter) if p.factory in ("*", a, b) and p.name in x]
                    spread = pd.Series(diff, index=idx).groupby(level="world").agg(lambda v: np.nanmax(v) - np.nanmin(v)
                                                                                    if np.isfinite(v).any() else 0.0)
                    Xp, dp = X, diff
                    if not (spread > 0).any():
                        # prices do not move this measure: one point per world, behaviour parameters only
                        cols = [j for j in cols if not is_price(pars.parameter[j])]
                        first = ~pd.Index(idx.get_level_values("world")).duplicated()
                        Xp, dp = X[first], diff[first]
                    ok = np.isfinite(dp)
                    rho = prcc(Xp[:, cols], dp)
                    swing = [float("nan")] * len(cols)
                    if ok.sum() > len(cols) + 1:
                        A = np.column_stack([np.ones(int(ok.sum())), Xp[ok][:, cols]])
                        coef = np.linalg.lstsq(A, dp[ok], rcond=None)[0][1:]
                        for c, j in enumerate(cols):
                            p = pars.parameter[j]
                            lo, hi = value_of(p, 0.0), value_of(p, 1.0)
                            swing[c] = float(coef[c] * (hi - lo)) if math.isfinite(rho[c]) else float("nan")
                    rows: list[dict[str, Any]] = [{"parameter": names[j], "factory": pars.parameter[j].factory, "prcc": rho[c],
                             "swing": swing[c], "price": is_price(pars.parameter[j])}
                            for c, j in enumerate(cols)]
                    rows.sort(key=lambda r: -abs(r["prcc"]) if math.isfinite(r["prcc"]) else 0.0)
                    out["tornado"].setdefault(str(sc), {}).setdefault(key, {})[f"{a} vs {b}"] = rows
                    if key in rg:
                        ra = rg[rg["factory"] == a].pivot_table(index="world", columns="replication", values=key)
                        rb = rg[rg["factory"] == b].pivot_table(index="world", columns="replication", values=key)
                        d = (ra - rb).reindex(worlds)
                        out["noise_share"].setdefault(str(sc), {}).setdefault(key, {})[f"{a} vs {b}"] = \
                            noise_share(d.to_numpy(dtype=float))
    return out
