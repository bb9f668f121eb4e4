"""The side-by-side benchmark: factories × scenarios × replications (DESIGN §8, §11).

Each job builds one factory under one scenario and runs it with the replication's
seed; the seed is the same for every factory, so all of them receive the same
orders (common random numbers). Jobs are independent and run in-process or on
local processes; each finished job is stored in ``OUT/jobs/`` as it completes so
an interrupted grid can be resumed. Scenario times (``at``) count from the end of
the warm-up.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from scipy.stats import t as scipy_t

from . import designs as designs_mod
from . import floorplan
from . import uncertainty
from .adapt import daily
from .cost import BASIS_KEYS, prices_of, reprice
from .experiment import mser_warmup, simulate
from .floorview import floor_model
from .frames import buffer_table, flow_table, frames
from .io import dumps, remove_stale_temporaries, write_json
from .report import RANKED, SIGNIFICANCE, flow_edges
from .runs import map_jobs, progress_bar, replication_seed, run_once
from .shards import JobStore, share_of
from .scenario import Scenario, apply, load_scenario, scenario_path
from .spec import (
    MAX_SPEC_BYTES,
    Spec,
    SpecError,
    load,
    read_regular_file,
    resolve,
)
from .state import STATE_KEYS
from .watch import Watch
from .stats import holm, holm_levels, kaplan_meier, mean_ci, paired_diff, select_best, share_by, tost
from .units import DAY, HOUR

FACTORIES = ["static-line", "dark-factory", "microfactory"]
SCENARIOS = ["baseline", "surge", "slump", "mix_shift", "new_product", "disruption", "supply_shortage", "festival",
             "launch"]
# fixed column orders: a job read back from its JSON file (sorted keys) must give the same tables
DAILY_COLS = ["t_end", "demand", "output", "backlog"]
COST_COLS = ["term", "total", "per_unit"]
STATION_COLS = ["station", *STATE_KEYS, "utilisation", "availability", "oee"]
HEADLINE = ["good_units_per_week", "unit_cost", "conversion_cost", "oee", "lead_time_mean_s", "lead_time_p95_s",
            "wip_mean", "fill_rate", "peak_backlog", "time_to_recover_s", "unit_cost_transition",
            "unit_cost_after", "idle_capacity_after", "event_prebuild_units", "event_fill_rate"]


@dataclass(frozen=True)
class Job:
    factory: str
    scenario: str
    replication: int
    seed: int

    @property
    def key(self) -> str:
        """The job's file name in ``OUT/jobs``: built from names, always inside that folder."""
        return f"{_slug(self.factory)}__{_slug(self.scenario)}__{self.replication}"


def _slug(name: str) -> str:
    """``name`` if it is a plain word, else a safe file-name part with a hash of the whole name
    (a factory given as ``/abs/path.toml`` must not send job files outside ``--out``)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) and "__" not in name:
        return name
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).stem)[-40:].strip("_.") or "x"
    return f"{tail}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"


JOB_KEYS = {"factory", "scenario", "replication", "seed", "kpis", "daily", "costs", "stations", "cost_basis", "prices"}


def factory_spec(path: str, overrides: dict[str, Any] | None) -> Spec:
    """A factory's spec with the command's ``--set`` overrides applied (validated like any spec)."""
    spec = load(path)
    return spec.with_overrides(overrides, source=f"{path} --set") if overrides else spec


REPLAY_BEFORE = 6 * HOUR
"""A scenario's replay starts this long before its first shift ..."""
REPLAY_AFTER = 18 * HOUR
"""... and ends this long after it (a scenario without shifts: the first day after the warm-up)."""


def replay_window(scenario: Scenario, warmup: float, horizon: float) -> Watch:
    """What a compare job's first replication watches: the hours around the scenario's first
    shift (the first day after the warm-up without one), flows over the observation window (s)."""
    if scenario.shifts:
        t = warmup + min(sh.at for sh in scenario.shifts)
        lo, hi = max(warmup, t - REPLAY_BEFORE), min(horizon, t + REPLAY_AFTER)
    else:
        lo, hi = warmup, min(horizon, warmup + DAY)
    return Watch(lo, hi, warmup)


def replay_payload(spec: Spec, res: Any) -> dict[str, Any]:
    """A watched run's replay as plain data: ``data`` (:func:`twin.frames.frames` over its window),
    ``model`` (:func:`twin.floorview.floor_model`), ``flows`` and ``buffers`` (records of
    :func:`twin.frames.flow_table` and :func:`twin.frames.buffer_table`)."""
    rec = res.record
    plan = floorplan.plan(spec)
    states = res.states  # one run's, or the first replication's of several
    if "replication" in states.columns:
        states = states[states["replication"] == 0].drop(columns="replication")
    data = frames(rec, states, plan, rec.window[0], rec.window[1])
    peak = np.max(np.asarray(data["levels"]), axis=0).tolist() if data["levels"] else []
    model = floor_model(spec, plan, bufmax={n: int(v) for n, v in zip(data["stations"], peak)})
    return {"data": data, "model": model, "flows": flow_table(rec).to_dict(orient="list"),
            "edges": [list(e) for e in flow_edges(spec)], "stations": [s.name for s in spec.stations],
            "buffers": buffer_table(rec)}


def run_job(factory_path: str, factory: str, scenario: dict[str, Any], replication: int, seed: int,
            weeks: float, warmup: float, overrides: dict[str, Any] | None = None,
            replay: bool = False) -> dict[str, Any]:
    """Run one (factory, scenario, replication); return plain data (picklable, JSON-able).
    ``replay``: watch the run (the same results) and return its replay (:func:`replay_payload`)."""
    sc = Scenario.model_validate(scenario)
    spec = apply(factory_spec(factory_path, overrides), sc, weeks, warmup)
    horizon = spec.run.horizon
    res = run_once(spec, horizon, warmup, seed, watch=replay_window(sc, warmup, horizon) if replay else None)
    k = res.kpis.iloc[0].to_dict()
    k["conversion_cost"] = k["unit_cost"] - k["cost_material"]
    assert res.record is not None  # run_once keeps it
    days = daily(res.record, res.lots, res.scraps, horizon, step=DAY, orders=res.orders)
    st = res.stations.reset_index()
    return {
        "factory": factory,
        "scenario": scenario["name"],
        "replication": replication,
        "seed": seed,
        "kpis": k,
        "daily": {c: days[c].tolist() for c in DAILY_COLS},
        "costs": res.costs[COST_COLS].to_dict(orient="list"),
        "stations": st[STATION_COLS].to_dict(orient="list"),
        # what the run counted and the prices it was charged: the job can be priced again
        "cost_basis": res.cost_basis,
        "prices": prices_of(spec),
        **({"replay": {k: v for k, v in replay_payload(spec, res).items() if k != "buffers"}} if replay else {}),
    }


def run_world_job(spec: Spec, factory: str, scenario: dict[str, Any], replication: int, seed: int,
                  weeks: float, warmup: float, draw: int) -> dict[str, Any]:
    """One job of a parameter-uncertainty study: ``spec`` as drawn, under ``scenario``; only the KPIs."""
    s = apply(spec, Scenario.model_validate(scenario), weeks, warmup)
    res = run_once(s, s.run.horizon, warmup, seed)
    k = res.kpis.iloc[0].to_dict()
    k["conversion_cost"] = k["unit_cost"] - k["cost_material"]
    return {"draw": draw, "factory": factory, "scenario": scenario["name"], "replication": replication,
            "seed": seed, "kpis": {key: v for key, v in k.items() if key != "bottleneck"},
            "cost_basis": res.cost_basis, "prices": prices_of(s)}


PRICE_DRAWS = 200
"""Price draws per behavioural world of ``--uncertainty`` (free: they re-price the world's runs)."""


def prepare_uncertainty(grid: Grid, draws_n: int, file: str | None = None,
                        price_draws: int = PRICE_DRAWS) -> dict[str, Any]:
    """Load the uncertainty file and draw (and validate) every parameter set before anything runs."""
    pars, src, scen, specs = _ranges_for(grid, file)
    d = uncertainty.draws(pars, src, specs, draws_n, grid.seed, price_draws)
    return {"pars": pars, "src": src, "scen": scen, "draws": d}


MONEY_KPIS = ("unit_cost", "conversion_cost", "unit_cost_transition", "unit_cost_after")
"""The measures that prices move (re-priced per price draw); the others are a world's own."""


def _ranges_for(grid: Grid, file: str | None) -> tuple[Any, str, Any, dict[str, Any]]:
    """The uncertainty file's parameters matched to the grid's factories (:class:`SpecError`
    naming an entry that matches nothing), its name, the scenarios and the factories' specs."""
    pars, src = uncertainty.load(file)
    paths, scen = check_inputs(grid)
    specs = {f: factory_spec(paths[f], grid.overrides.get(f)) for f in grid.factories}
    return uncertainty.resolve(pars, src, specs), src, scen, specs


def check_price_ranges(grid: Grid, file: str) -> None:
    """Load ``file`` and match its entries to the grid's factories, as :func:`prepare_uncertainty`
    does, without drawing."""
    _ranges_for(grid, file)


def run_uncertainty(grid: Grid, draws_n: int, file: str | None = None, jobs: int = 1, progress: bool = False,
                    executor: str = "local", scheduler: str | None = None,
                    prepared: dict[str, Any] | None = None, price_draws: int = PRICE_DRAWS,
                    designs: dict[str, list[designs_mod.Candidate]] | None = None,
                    nominal: dict[str, str] | None = None, store: JobStore | None = None) -> dict[str, Any] | None:
    """``twin compare --uncertainty N``: ``draws_n`` behavioural worlds of the uncertainty file by Latin
    hypercube (seeded by the grid's seed), each run over the grid's scenarios and replications on
    the same seeds, then priced under ``price_draws`` Latin-hypercube draws of its price parameters
    by exact re-pricing (no simulation); returns the runs, the draws and their analysis (see
    :func:`twin.uncertainty.analyse`). With ``designs`` (factory → candidates; ``nominal``: each
    factory's own label), every candidate runs in every world too, and ``designed`` holds the
    answer read on the design each factory takes in each world and price draw by the design
    protocol's rule (:func:`designed`); the top-level answer stays that of the nominal designs.
    A shard's run (``store``) runs its share of the worlds' jobs and returns None."""
    prep = prepared or prepare_uncertainty(grid, draws_n, file, price_draws)
    pars, src, scen, d = prep["pars"], prep["src"], prep["scen"], prep["draws"]
    designs, nominal = designs or {}, nominal or {}
    variants: dict[tuple[int, str], list[tuple[str, Spec]]] = {}
    for k in range(draws_n):
        for f in grid.factories:
            w = d.worlds[k][f]
            variants[(k, f)] = ([(c.label, w.with_overrides(c.set, source=f"{src}: draw {k} of {f}, {c.label}"))
                                 for c in designs[f]] if f in designs else [("", w)])
    todo = [(label, spec, k, j) for k in range(draws_n) for j in grid.jobs() for label, spec in variants[(k, j.factory)]]
    args = [(spec, j.factory, {**scen[j.scenario].model_dump(mode="python"), "name": j.scenario},
             j.replication, j.seed, grid.weeks, grid.warmup, k) for _, spec, k, j in todo]
    rows: list[dict[str, Any] | None] = [None] * len(args)
    bar = JobsBar(share_of(store, len(args)), 0, enabled=progress, label="uncertainty")
    for i, r in map_jobs(run_world_job, args, jobs=jobs, executor=executor, scheduler=scheduler, store=store,
                         stage="uncertainty"):
        rows[i] = {**r, "design": todo[i][0]}
        bar.step()
    bar.close()
    if store is not None and store.sharding:
        return None
    done = [r for r in rows if r is not None]
    runs = pd.DataFrame([{"draw": r["draw"], "factory": r["factory"], "scenario": r["scenario"],
                          "design": r["design"], "replication": r["replication"], "seed": r["seed"], **r["kpis"]}
                         for r in done])
    combos, x = price_worlds(done, pars, d)
    own = {f: nominal.get(f, "") for f in grid.factories}
    base = "baseline" if "baseline" in grid.scenarios else grid.scenarios[0]
    nom, chosen, shares = designed(combos, own, base)
    reps = runs[[own[f] == g for f, g in zip(runs["factory"], runs["design"])]].rename(columns={"draw": "world"})
    analysis = uncertainty.analyse(nom, x, reps, pars, RANKED)
    if designs:
        per_world = uncertainty.analyse(chosen, x, reps, pars, RANKED)
        analysis["designed"] = {**{k: per_world[k] for k in ("probabilities", "uncertainty_ci", "effective_n", "ties")},
                                "chosen": shares, "rule": f"least mean {designs_mod.OBJECTIVE} over the scenarios "
                                f"with a {base} fill rate of at least {designs_mod.FILL_FLOOR:.0%}"}
    params = [{"name": p.name, "factory": p.factory, "path": p.path, "reason": p.reason,
               "kind": "price" if uncertainty.is_price(p) else "behaviour",
               **({"scale": list(p.scale)} if p.scale is not None else {"low": p.low, "high": p.high})}
              for p in pars.parameter]
    values = pd.DataFrame({pars.parameter[j].name: [uncertainty.value_of(pars.parameter[j], float(v))
                                                    for v in d.u[:, c]] for c, j in enumerate(d.behaviour)})
    values.insert(0, "draw", range(draws_n))
    n_price = max(1, len(d.v))
    return {"runs": runs, "values": values, "combos": nom, **analysis,
            "meta": {"draws": draws_n, "price_draws": len(d.v), "combinations": draws_n * n_price,
                     "file": src, "seed": grid.seed,
                     "method": "Latin hypercube (scipy qmc) over the behavioural parameters, one simulated world "
                               "each, common random numbers across worlds; each world's runs priced again under "
                               f"{len(d.v)} Latin-hypercube draws of the price parameters (exact re-pricing); "
                               "shares with Clopper-Pearson 95 % intervals on Kish's effective sample size; "
                               "sensitivity by partial rank correlation (PRCC) and multiple-regression swing",
                     "designs": "nominal: each factory as the design protocol sized it at the nominal values"
                                + ("; beside it (designed), each factory's candidate that the protocol's rule "
                                   "picks in each world and price draw" if designs else ""),
                     "parameters": params}}


def price_worlds(done: list[dict[str, Any]], pars: uncertainty.UncertaintyFile, d: uncertainty.Draws
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every world × price draw × scenario × factory (× candidate design, ``design``, "" without
    candidates): the measures as means over the world's
    replications, money measures priced again under the draw; and the parameter values of each
    world × price draw (behaviour from the world, prices from the draw)."""
    groups: dict[tuple[int, str, str, str], list[dict[str, Any]]] = {}
    for r in done:
        groups.setdefault((r["draw"], r["scenario"], r["factory"], r.get("design", "")), []).append(r)
    n_price = len(d.v)
    rows = []
    for (k, sc, f, design), js in groups.items():
        js.sort(key=lambda r: r["replication"])
        keys = [c for c, v in js[0]["kpis"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        fixed = {c: float(np.nanmean([float(j["kpis"][c]) for j in js]))
                 if any(math.isfinite(float(j["kpis"][c])) for j in js) else float("nan") for c in keys}
        for m in range(max(1, n_price)):
            row = {"world": k, "price_draw": m, "scenario": sc, "factory": f, "design": design, **fixed}
            if n_price:
                prices = uncertainty.priced(js[0]["prices"], pars, d, m, f)
                priced = [reprice(j["kpis"], j["cost_basis"], prices) for j in js]
                for c in MONEY_KPIS:
                    if c in fixed:
                        v = [float(p[c]) for p in priced]
                        row[c] = float(np.nanmean(v)) if any(math.isfinite(x) for x in v) else float("nan")
            rows.append(row)
    combos = pd.DataFrame(rows)
    names = {j: pars.parameter[j].name for j in range(len(pars.parameter))}
    xs = []
    for k in range(len(d.worlds)):
        for m in range(max(1, n_price)):
            row = {"world": k, "price_draw": m}
            for col, j in enumerate(d.behaviour):
                row[names[j]] = uncertainty.value_of(pars.parameter[j], float(d.u[k, col]))
            for col, j in enumerate(d.price if n_price else []):
                row[names[j]] = uncertainty.value_of(pars.parameter[j], float(d.v[m, col]))
            xs.append(row)
    return combos, pd.DataFrame(xs)


def designed(combos: pd.DataFrame, nominal: dict[str, str], baseline: str) -> tuple[pd.DataFrame, pd.DataFrame,
                                                                                 dict[str, dict[str, float]]]:
    """From combos with candidate designs: the rows of the nominal designs (``nominal``: factory →
    its label), the rows of the design each factory takes in each world and price draw by the
    design protocol's rule (:func:`twin.designs.choose`: least mean conversion cost over the
    scenarios with a ``baseline`` fill rate at the floor), and how often each candidate is taken
    (factory → label → share of world × price draws). Both frames have one row per world ×
    price draw × scenario × factory, like combos without designs."""
    nom = combos[[nominal.get(f) == d for f, d in zip(combos["factory"], combos["design"])]]
    picks: dict[tuple[int, int, str], str] = {}
    for (k, m, f), g in combos.groupby(["world", "price_draw", "factory"], sort=False):
        obj = {d: designs_mod.objective_of(dict(zip(gd["scenario"], gd[designs_mod.OBJECTIVE])))
               for d, gd in g.groupby("design", sort=False)}
        base = g[g["scenario"] == baseline]
        fill = dict(zip(base["design"], base["fill_rate"])) if len(base) else {}
        pick = designs_mod.choose(obj, fill)
        if pick is not None:
            picks[(k, m, f)] = pick
    keep = [picks.get((k, m, f)) == d for k, m, f, d in
            zip(combos["world"], combos["price_draw"], combos["factory"], combos["design"])]
    chosen = combos[keep]
    counts: dict[str, Counter[str]] = {}
    for (_, _, f), d in picks.items():
        counts.setdefault(f, Counter())[d] += 1
    shares = {f: {d: n / sum(c.values()) for d, n in c.most_common()} for f, c in counts.items()}
    return nom.reset_index(drop=True), chosen.reset_index(drop=True), shares


def nominal_labels(specs: dict[str, Spec], cands: dict[str, list[designs_mod.Candidate]]) -> dict[str, str]:
    """Which candidate each factory's spec is (its protocol pick): the one whose every set value the
    spec holds; a factory whose spec matches none of its candidates is an error naming it."""
    out, problems = {}, []
    for f, cs in cands.items():
        data = specs[f].model_dump(mode="python", by_alias=True)
        for c in cs:
            if all(any(cont[key] == v for cont, key in uncertainty.match(data, path.split(".")))
                   for path, v in c.set.items()):
                out[f] = c.label
                break
        else:
            problems.append(f"--designs: {f}: its spec is none of its candidates ({', '.join(c.label for c in cs)}); "
                            "the spec's own design must be one of them")
    if problems:
        raise SpecError(problems)
    return out


def run_designs(grid: Grid, cands: dict[str, list[designs_mod.Candidate]], nominal: dict[str, str],
                results: list[dict[str, Any]], jobs: int = 1, progress: bool = False, executor: str = "local",
                scheduler: str | None = None, store: JobStore | None = None) -> list[dict[str, Any]]:
    """Every candidate design of each factory run over the grid's scenarios and replications on the
    grid's seeds (the nominal one is the grid's own jobs, reused); each result carries ``design``.
    A shard's run (``store``) runs its share of the candidates' jobs."""
    paths, scen = check_inputs(grid)
    out = [{**r, "design": nominal[r["factory"]]} for r in results if r["factory"] in nominal]
    todo = [(c, j) for f, cs in cands.items() for c in cs if c.label != nominal[f] for j in grid.jobs()
            if j.factory == f]
    args = [(paths[j.factory], j.factory, {**scen[j.scenario].model_dump(mode="python"), "name": j.scenario},
             j.replication, j.seed, grid.weeks, grid.warmup, {**(grid.overrides.get(j.factory) or {}), **c.set})
            for c, j in todo]
    bar = JobsBar(share_of(store, len(args)), 0, enabled=progress, label="designs")
    for i, r in map_jobs(run_job, args, jobs=jobs, executor=executor, scheduler=scheduler, store=store,
                         stage="designs"):
        out.append({**r, "design": todo[i][0].label})
        bar.step()
    bar.close()
    return out


def design_fronts(results: list[dict[str, Any]], scenarios: list[str], shifted: list[str]) -> dict[str, Any]:
    """The Pareto fronts of each factory's candidates (:func:`twin.designs.fronts`): baseline
    conversion cost against the fill rate and the Kaplan-Meier median time to recover of the first
    scenario with a shift (the surge when it is compared). {} without both."""
    base = "baseline" if "baseline" in scenarios else scenarios[0]
    shift = "surge" if "surge" in shifted else (shifted[0] if shifted else None)
    if shift is None or shift == base:
        return {}
    runs = runs_frame(results)
    runs["design"] = [r["design"] for r in results]
    means: dict[str, dict[str, dict[str, float]]] = {}
    for (f, dsg), g in runs.groupby(["factory", "design"], sort=False):
        b, s = g[g["scenario"] == base], g[g["scenario"] == shift]
        ttr = recovery_cell(s)["mean"] if "recover_observed_s" in s and len(s) else float("nan")
        if ttr != ttr and len(s) and "time_to_recover_s" in s and s["time_to_recover_s"].isna().any():
            ttr = float("inf")  # fewer than half recovered: worse than any median
        means.setdefault(str(f), {})[str(dsg)] = {
            "cost": float(b["conversion_cost"].mean()) if len(b) else float("nan"),
            "fill": float(s["fill_rate"].mean()) if len(s) else float("nan"), "ttr": float(ttr)}
    return designs_mod.fronts(means, base, shift)


@dataclass
class Grid:
    """Everything a compare run needs to know to run (and to resume) its jobs."""

    factories: list[str]
    scenarios: list[str]
    replications: int
    weeks: float
    warmup: float
    seed: int
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per factory name, spec overrides (dotted path -> value) applied before the scenarios."""
    warmup_method: str = "given"
    """How the warm-up was chosen ("given", or the measurement of :func:`measure_warmup`)."""
    animate: bool = False
    """Watch each factory's and scenario's first replication for the report's replay (the same
    results; :func:`replay_window`)."""

    def signature(self) -> dict[str, Any]:
        """What the jobs' results depend on: the options and the content of every input file
        (an edited spec or scenario file makes stored jobs stale)."""
        sig = {"factories": self.factories, "scenarios": self.scenarios, "replications": self.replications,
               "weeks": self.weeks, "warmup": self.warmup, "seed": self.seed,
               "spec_sha256": {f: _file_sha(resolve(f)) for f in self.factories},
               "scenario_sha256": {s: _file_sha(scenario_path(s)) for s in self.scenarios}}
        if any(self.overrides.values()):
            sig["overrides"] = {f: v for f, v in self.overrides.items() if v}
        return sig

    def jobs(self) -> list[Job]:
        return [Job(f, s, r, replication_seed(self.seed, r))
                for s in self.scenarios for f in self.factories for r in range(self.replications)]


def measure_warmup(grid: Grid, replications: int = 2) -> tuple[float, str]:
    """The warm-up (s) for ``grid``: each factory runs its first scenario from t = 0 for the
    observation length (``replications`` on the grid's seeds), MSER finds the end of the start-up
    transient in its WIP (:func:`twin.experiment.mser_warmup`), and the longest, rounded up to whole
    days, is kept for every factory (the same warm-up for all: a fair comparison)."""
    paths, scen = check_inputs(grid)
    first = scen[grid.scenarios[0]]
    found = 0.0
    method = ""
    for f in grid.factories:
        spec = apply(factory_spec(paths[f], grid.overrides.get(f)), first, grid.weeks, 0.0)
        res = simulate(spec, horizon=spec.run.horizon, warmup=0.0, seed=grid.seed, replications=replications)
        w, method = mser_warmup(res, spec)
        found = max(found, w)
    found = math.ceil(found / DAY) * DAY
    return found, (f"measured: {method}, under '{grid.scenarios[0]}', the longest of the factories, "
                   "rounded up to whole days")


def check_inputs(grid: Grid) -> tuple[dict[str, str], dict[str, Scenario]]:
    """Load and cross-check every factory and scenario before any job runs (all problems at once)."""
    problems: list[str] = []
    paths: dict[str, str] = {}
    scen: dict[str, Scenario] = {}
    specs: dict[str, Spec] = {}
    for what, names, where in (("--factories", grid.factories, resolve), ("--scenarios", grid.scenarios, None)):
        seen: dict[str, str] = {}
        for n in names:
            try:
                key = str((where(n) if where else scenario_path(n)).resolve())
            except SpecError:
                key = n
            if key in seen:
                problems.append(f"{what}: {n!r} is given twice (as {seen[key]!r} too); each would pool copies of "
                                "the same replications and shrink the intervals")
            seen[key] = n
    unknown = sorted(set(grid.overrides) - set(grid.factories))
    if unknown:
        problems.append(f"--set: {', '.join(unknown)}: not among the compared factories "
                        f"({', '.join(grid.factories)})")
    for f in grid.factories:
        try:
            paths[f] = str(resolve(f))
            specs[f] = factory_spec(paths[f], grid.overrides.get(f))
        except SpecError as e:
            problems += e.problems
    for s in grid.scenarios:
        try:
            scen[s] = load_scenario(s)
        except SpecError as e:
            problems += e.problems
    for spec in specs.values():
        for s, sc in scen.items():
            src = str(scenario_path(s))
            try:
                apply(spec, sc, grid.weeks, grid.warmup, source=src)
            except SpecError as e:
                problems += [p for p in e.problems if p not in problems]
    if problems:
        raise SpecError(problems)
    return paths, scen


def run_grid(grid: Grid, jobs: int = 1, out: Path | None = None, resume: bool = False,
             progress: bool = False, executor: str = "local", scheduler: str | None = None,
             store: JobStore | None = None) -> list[dict[str, Any]]:
    """Run every job of ``grid`` through an executor (see :func:`twin.experiment.map_jobs`:
    ``jobs`` local processes, 1 = in this process, or Dask).

    With a ``store`` (:class:`twin.shards.JobStore`), a shard runs (and returns) only its
    share of the jobs, and a merge takes every job from the shards; ``out`` is then not used.

    With ``out``, each finished job is written to ``out/jobs/KEY.json`` at once;
    with ``resume``, jobs already stored there are loaded instead of re-run.
    Results come back sorted by (scenario, factory, replication) whatever the
    completion order, so output files do not depend on scheduling.
    """
    paths, scen = check_inputs(grid)
    todo = grid.jobs()
    done: dict[str, dict[str, Any]] = {}
    job_dir = out / "jobs" if out is not None else None
    fresh = [d for d in (out, job_dir) if d is not None and not d.exists()]  # taken away if nothing is kept
    if job_dir is not None:
        sig_path = job_dir / "grid.json"
        if job_dir.exists():
            remove_stale_temporaries(job_dir)
        if resume and sig_path.exists():
            try:
                old = json.loads(read_regular_file(sig_path, MAX_SPEC_BYTES, "a job folder's grid.json"))
            except ValueError:
                raise SpecError([f"{sig_path}: --resume: the stored grid is damaged (not JSON); "
                                 "start again without --resume or with a new --out"]) from None
            sig = _jsonable(grid.signature())
            if old != sig:
                changed = sorted(k for k in set(old) | set(sig) if old.get(k) != sig.get(k)) if isinstance(old, dict) else []
                raise SpecError([f"{sig_path}: --resume: the stored jobs were made with other options or input "
                                 f"files (differs in: {', '.join(changed) or 'everything'}); use the same options "
                                 "and files, or a new --out"])
            for j in todo:
                stored = _load_job(job_dir / f"{j.key}.json", j)
                if stored is not None:
                    done[j.key] = stored
        write_json(sig_path, grid.signature())
    pending = [j for j in todo if j.key not in done]
    args = [(paths[j.factory], j.factory, {**scen[j.scenario].model_dump(mode="python"), "name": j.scenario},
             j.replication, j.seed, grid.weeks, grid.warmup, grid.overrides.get(j.factory) or None,
             grid.animate and j.replication == 0) for j in pending]
    bar = JobsBar(share_of(store, len(todo)), len(done), enabled=progress)

    def finish(j: Job, r: dict[str, Any]) -> None:
        done[j.key] = r
        if job_dir is not None:
            try:
                write_json(job_dir / f"{j.key}.json", r)
            except SpecError as e:
                kept = len(done) - 1
                if not kept:  # nothing to resume: leave no folder this run made
                    sig_path.unlink(missing_ok=True)
                    for d in reversed(fresh):
                        try:
                            d.rmdir()
                        except OSError:
                            break
                raise SpecError(e.problems + ([f"the {kept} jobs finished before are kept in {job_dir}: make room and "
                                               "run the same command again with --resume"] if kept else [])) from None
        bar.step()

    for i, r in map_jobs(run_job, args, jobs=jobs, executor=executor, scheduler=scheduler, store=store,
                         stage="grid"):
        finish(pending[i], r)
    bar.close()
    return [done[j.key] for j in todo if j.key in done]


def _load_job(path: Path, job: Job) -> dict[str, Any] | None:
    """A stored job's results, or None (with a note on stderr) when the file is missing,
    damaged or not this job's: it is run again."""
    if not path.exists():
        return None
    try:
        r = json.loads(read_regular_file(path, 64 * MAX_SPEC_BYTES, "a stored job"))
        if not (isinstance(r, dict) and JOB_KEYS <= set(r) and r["factory"] == job.factory
                and r["scenario"] == job.scenario and r["replication"] == job.replication and r["seed"] == job.seed):
            raise ValueError("not this job's results")
        if not (isinstance(r["cost_basis"], dict) and isinstance(r["cost_basis"].get("window"), dict)
                and set(BASIS_KEYS) <= set(r["cost_basis"]["window"])):
            raise ValueError("its cost basis is from another version of twin")
    except (ValueError, SpecError) as e:
        sys.stderr.write(f"note: {path} is damaged ({str(e).splitlines()[0][:80]}); running the job again\n")
        return None
    return r


def _file_sha(path: Path) -> str:
    return hashlib.sha256(read_regular_file(path, MAX_SPEC_BYTES, "an input file")).hexdigest()[:16]


def _jsonable(x: Any) -> Any:
    return json.loads(dumps(x))


class JobsBar:
    """Jobs done of a grid: a bar with ETA on a terminal; elsewhere (a CI log) one line per tenth."""

    def __init__(self, total: int, start: int, enabled: bool, label: str = "compare"):
        self.total, self.n, self.label = total, start, label
        self.enabled = enabled
        self.bar = progress_bar(total, f"{label} (jobs)", enabled)
        self.bar.update(start)
        self._next_line = 0

    def step(self) -> None:
        self.n += 1
        self.bar.update(1)
        if self.enabled and not self.bar.on and self.n * 10 >= self._next_line * self.total:
            sys.stderr.write(f"{self.label}: {self.n}/{self.total} jobs done\n")
            self._next_line = self.n * 10 // max(1, self.total) + 1

    def close(self) -> None:
        self.bar.__exit__(None, None, None)


# --------------------------------------------------------------------------- tables
def runs_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Tidy KPIs: one row per factory × scenario × replication."""
    rows = []
    for r in results:
        # sorted KPI columns: a job loaded back from JSON (--resume) gives the same file as a fresh one
        k = {key: (float("nan") if v is None else v) for key, v in sorted(r["kpis"].items())}
        rows.append({"factory": r["factory"], "scenario": r["scenario"], "replication": r["replication"],
                     "seed": r["seed"], **k})
    return pd.DataFrame(rows)


def _tidy(results: Iterable[dict[str, Any]], part: str, cols: list[str]) -> pd.DataFrame:
    """One table of every job's ``part`` (a list of records), keyed by factory, scenario, replication."""
    frames = []
    for r in results:
        d = pd.DataFrame(r[part])[cols]
        d.insert(0, "replication", r["replication"])
        d.insert(0, "scenario", r["scenario"])
        d.insert(0, "factory", r["factory"])
        frames.append(d)
    return pd.concat(frames, ignore_index=True)


def daily_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Daily demand, output and backlog of every job."""
    return _tidy(results, "daily", DAILY_COLS)


def costs_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Cost terms (total and per good unit) of every job."""
    return _tidy(results, "costs", COST_COLS)


def stations_frame(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Per-station state fractions and OEE of every job."""
    return _tidy(results, "stations", STATION_COLS)


INDIFFERENCE = {"fill_rate": 0.01, "unit_cost": 0.10, "conversion_cost": 0.10, "lead_time_mean_s": 360.0,
                "peak_backlog": 1000.0, "time_to_recover_s": DAY, "idle_capacity_after": 0.01,
                "good_units_per_week": 1000.0, "throughput_per_hour": 1.0}
"""The smallest difference worth telling apart, per measure (its own units: $ per unit, share,
s, units): the indifference zone of the selection procedure."""


def _by_replication(g: pd.DataFrame, factory: str, key: str) -> np.ndarray:
    return g[g["factory"] == factory].sort_values("replication")[key].to_numpy(dtype=float)


def paired(runs: pd.DataFrame, measures: list[tuple[str, str, str | None, str]] | None = None) -> dict[str, Any]:
    """``{scenario: {measure: {"A vs B": {"diff_mean", "ci95", "n", "p", "p_holm", "ci95_holm",
    "equivalence"}}}}``: every pair of factories differenced replication by replication (the same
    seeds), A minus B, with its 95 % Student-t CI. ``p_holm`` is Holm's adjustment over one family:
    every comparison in the result, except that comparisons whose replication differences are the
    same numbers as an earlier one's (unit cost and conversion cost differ by the same material
    cost in every factory) are one test, not two. ``ci95_holm`` is the half-width at the level at
    which Holm tested the comparison; ``equivalence`` the two one-sided tests against the measure's
    indifference zone (:data:`INDIFFERENCE`)."""
    measures = measures or RANKED
    out: dict[str, Any] = {}
    tests: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    for sc, g in runs.groupby("scenario", sort=False):
        facs = list(dict.fromkeys(g["factory"]))
        for key, _, _, _ in measures:
            if key not in g:
                continue
            for i, a in enumerate(facs):
                for b in facs[i + 1:]:
                    xa, xb = _by_replication(g, a, key), _by_replication(g, b, key)
                    d: dict[str, Any] = paired_diff(xa, xb)
                    diff = xa - xb
                    if key in INDIFFERENCE:
                        d["equivalence"] = tost(diff, INDIFFERENCE[key], SIGNIFICANCE)
                    out.setdefault(str(sc), {}).setdefault(key, {})[f"{a} vs {b}"] = d
                    sig = (str(sc), a, b, tuple(np.round(diff, 9)))
                    if sig in seen and np.isfinite(diff).all():
                        seen[sig]["copies"].append(d)
                    else:
                        test: dict[str, Any] = {"d": d, "copies": []}
                        seen[sig] = test
                        tests.append(test)
    ps = [t["d"]["p"] for t in tests]
    size = sum(1 for q in ps if math.isfinite(q))
    for t, p, level in zip(tests, holm(ps), holm_levels(ps, SIGNIFICANCE)):
        d = t["d"]
        se, n = d.get("se", float("nan")), d["n"]
        hw = float(scipy_t.ppf(1 - level / 2, n - 1) * se) if n >= 2 and math.isfinite(level) else float("nan")
        for x in [d, *t["copies"]]:
            x["p_holm"] = p
            x["holm_level"] = level
            x["ci95_holm"] = hw
            x["holm_family"] = size
    return out


def selection(runs: pd.DataFrame, measures: list[tuple[str, str, str | None, str]] | None = None,
              pcs: float = 0.95) -> dict[str, Any]:
    """``{scenario: {measure: pick}}``: the best factory by :func:`twin.stats.select_best` with the
    indifference zone of :data:`INDIFFERENCE` (a factory with a missing value, e.g. never
    recovered, is not selected)."""
    measures = measures or RANKED
    out: dict[str, Any] = {}
    for sc, g in runs.groupby("scenario", sort=False):
        facs = list(dict.fromkeys(g["factory"]))
        for key, _, better, _ in measures:
            if key not in g or better is None or key not in INDIFFERENCE:
                continue
            samples = {f: _by_replication(g, f, key) for f in facs}
            out.setdefault(str(sc), {})[key] = select_best(samples, better, INDIFFERENCE[key], pcs)
    return out


RECOVERED_BY_DAYS = (7, 14, 28)
"""The days after a shift at which the share of replications recovered is reported."""


def recovery_cell(g: pd.DataFrame) -> dict[str, Any]:
    """Time to recover of one factory and scenario as the censored time it is: a replication that
    never recovered is censored at the last time its run could have seen a recovery
    (``recover_observed_s``). ``mean`` is the Kaplan-Meier median (NaN when fewer than half are
    known to have recovered), ``km_ci`` its 95 % interval, ``recovered_by`` the share recovered by
    day 7, 14 and 28; never a mean over the replications that recovered."""
    ttr = pd.to_numeric(g["time_to_recover_s"], errors="coerce").to_numpy(dtype=float)
    seen = pd.to_numeric(g["recover_observed_s"], errors="coerce").to_numpy(dtype=float)
    rec = np.isfinite(ttr)
    km = kaplan_meier(np.where(rec, ttr, seen), rec)
    return {"mean": km["median"], "ci95": float("nan"), "km_ci": km["ci"], "n": int(rec.sum()),
            "n_missing": int((~rec).sum()), "estimator": "Kaplan-Meier median",
            "recovered_by": {str(dd): share_by(km, dd * DAY) for dd in RECOVERED_BY_DAYS}}


def summary(runs: pd.DataFrame, kpis: list[str] | None = None) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{scenario: {factory: {kpi: {"mean", "ci95", "n"}}}}`` (NaN replications, e.g. "not recovered", are
    excluded from the mean and counted in ``n_missing``)."""
    kpis = kpis or [c for c in runs.columns if c not in ("factory", "scenario", "replication", "seed", "bottleneck")]
    out: dict[str, Any] = {}
    for (s, f), g in runs.groupby(["scenario", "factory"], sort=False):
        d: dict[str, Any] = {}
        for k in kpis:
            if k not in g:
                continue
            x = pd.to_numeric(g[k], errors="coerce").to_numpy(dtype=float)
            ok = x[np.isfinite(x)]
            m, h = mean_ci(ok) if len(ok) else (float("nan"), float("nan"))
            d[k] = {"mean": m, "ci95": h, "n": int(len(ok)), "n_missing": int(len(x) - len(ok))}
        if "time_to_recover_s" in d and d.get("recovered", {}).get("n", 0) == 0:
            # no shift in this scenario: recovery does not apply (not "not recovered")
            d["time_to_recover_s"]["n_missing"] = 0
        elif "time_to_recover_s" in d and "recover_observed_s" in g:
            d["time_to_recover_s"] = recovery_cell(g)
        d["bottleneck"] = str(g["bottleneck"].mode().iloc[0]) if "bottleneck" in g else ""
        out.setdefault(str(s), {})[str(f)] = d
    return out
