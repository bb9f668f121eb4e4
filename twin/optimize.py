"""``twin optimize``: search a design space under constraints (DESIGN §8).

The search itself is optuna's: TPE with constraints for one objective, an exhaustive grid
when a small integer/categorical space fits in the trial budget, NSGA-II for two
objectives. Every trial is a set of spec overrides run for ``replications`` on the same
replication seeds (common random numbers), in batches through the experiment executors.
Design constraints (over spec values) are checked before a trial runs; outcome
constraints (over KPIs) are optuna constraints. Noise is handled at the end: the best few
feasible designs are run again with more replications on fresh common seeds and the
winner is reported with paired differences against the runners-up. What it writes (tables,
the best spec, the report page) is :mod:`twin.optimize_report`.

Constraints are parsed by a small grammar (numbers, dotted names, ``+ - * /``,
parentheses, one comparison), never by ``eval``: :mod:`twin.objectives`.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from . import serial, studies
from .objectives import (  # noqa: F401  (re-exported: the optimiser's language, read here by callers)
    COMPARISONS,
    GRID_LIMIT,
    MAX_NESTING,
    Constraint,
    Dimension,
    Expr,
    parse_constraint,
    parse_dimension,
    parse_objective,
)
from .results import Results
from .runs import map_jobs, progress_bar, replication_seed, run_once
from .scenario import Scenario, apply
from .spec import Spec, SpecError
from .stats import mean_ci, paired_diff
from .units import HOUR, WEEK

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------- running designs
def _spec_value(spec: Spec, path: str) -> float:
    """A numeric value of the spec at a dotted path (list items by name or index)."""
    cur: Any = spec.model_dump(mode="python", by_alias=True)
    for part in path.split("."):
        if isinstance(cur, list):
            names = [x.get("name") if isinstance(x, dict) else None for x in cur]
            if part in names:
                cur = cur[names.index(part)]
            elif part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            else:
                raise KeyError(path)
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(path)
    if isinstance(cur, dict) and "mean" in cur:
        cur = cur["mean"]
    if isinstance(cur, bool) or not isinstance(cur, (int, float)):
        raise KeyError(path)
    return float(cur)


def _design(spec: Spec, params: dict[str, Any], horizon: float, warmup: float,
            scenario: Scenario | None = None) -> Spec:
    """The spec of one design (under ``scenario``, observed ``horizon - warmup`` s)."""
    s = spec.with_overrides(params, source="<optimize>") if params else spec
    if scenario is not None:
        s = apply(s, scenario, (horizon - warmup) / WEEK, warmup, source=f"scenario {scenario.name}")
    return s


def _numeric_kpis(res: Results) -> dict[str, float]:
    """A run's numeric KPIs, with ``conversion_cost`` (unit cost less material) where costed."""
    k = res.kpis.iloc[0].to_dict()
    if "unit_cost" in k and "cost_material" in k:
        k["conversion_cost"] = k["unit_cost"] - k["cost_material"]
    return {key: float(v) for key, v in k.items() if isinstance(v, (int, float, np.floating, np.integer))}


def _job(spec: Spec, params: dict[str, Any], horizon: float, warmup: float, seed: int,
         scenario: Scenario | None = None) -> dict[str, float]:
    """One replication of one design (under ``scenario``, observed ``horizon - warmup``): its numeric KPIs."""
    return _numeric_kpis(run_once(_design(spec, params, horizon, warmup, scenario), horizon, warmup, seed))


@dataclass
class Problem:
    """Everything an optimisation needs, checked before anything runs."""

    spec: Spec
    space: list[Dimension]
    objectives: list[tuple[str, str]]  # (kpi, "maximize"/"minimize")
    constraints: list[Constraint] = field(default_factory=list)
    horizon: float = 0.0
    warmup: float = 0.0
    seed: int = 1
    replications: int = 3
    source: str = "<spec>"
    scenarios: list[Scenario] = field(default_factory=list)
    """Scenarios every design runs under: KPI ``k`` is then the equal-weight mean over them and
    ``SCENARIO.k`` each one's value."""
    fixed: dict[str, float] = field(default_factory=dict)
    """Values of the fixed spec paths the constraints name (read once by :func:`check`)."""
    formulas: dict[str, Expr] = field(default_factory=dict)
    """Objectives that are expressions of KPIs (not one KPI's name), by their text."""
    grid: list[dict[str, Any]] | None = None
    """Every feasible design of a discrete space up to :data:`GRID_LIMIT` designs (:func:`check`), else None."""
    engine: str = "auto"
    """:data:`twin.serial.ENGINES`: which engine runs the designs (the same results either way)."""
    runs_by_engine: Counter[str] = field(default_factory=Counter)
    """Runs each engine made, and (``why_not``) what kept the last batch off the serial fast path."""
    why_not: list[str] = field(default_factory=list)

    def env(self, params: dict[str, Any], kpis: dict[str, float] | None = None) -> dict[str, float]:
        """Names a constraint may use: varied paths, fixed spec paths, and KPIs."""
        out = dict(self.fixed)
        if kpis is not None:
            out.update(kpis)
        out.update((k, float(v)) for k, v in params.items())
        return out

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """The spec overrides of a design: each dimension's value at all its linked paths."""
        return {q: params[d.path] for d in self.space for q in d.paths if d.path in params}

    def design_ok(self, params: dict[str, Any]) -> bool:
        env = self.env(params)
        return all(c.holds(env) for c in self.constraints if c.kind == "design")


def check(problem: Problem) -> None:
    """Refuse bad paths, empty ranges, unknown KPIs and unmeetable design constraints (all at once)."""
    p = problem
    problems: list[str] = []
    if not p.space:
        problems.append("--vary: nothing to vary")
    if len(p.objectives) not in (1, 2):
        problems.append("--maximize/--minimize: give one objective, or two for a Pareto front")
    paths = [d.path for d in p.space]
    every = Counter(q for d in p.space for q in d.paths)
    problems += [f"--vary {q}: varied twice" for q, n in every.items() if n > 1]
    run_paths = [q for d in p.space for q in d.paths if q == "run" or q.startswith("run.")]
    problems += [f"--vary {q}: every design runs with the same run settings (common random numbers); give the "
                 "horizon, warm-up, seed and replications as options (--horizon, --warmup, --seed, --replications)"
                 for q in run_paths]
    for d in p.space:
        ends = [d.choices[0], d.choices[-1]] if d.kind == "categorical" else (
            [int(d.low), int(d.high)] if d.kind == "int" else [d.low, d.high])
        for v in ends if d.kind != "categorical" else d.choices:
            try:
                p.spec.with_overrides({q: v for q in d.paths}, source=f"{p.source} --vary")
            except SpecError as e:
                problems += [x for x in e.problems if x not in problems]
    names = [sc.name for sc in p.scenarios]
    problems += [f"--scenarios: {n} given twice" for n, k in Counter(names).items() if k > 1]
    for sc in p.scenarios:
        try:
            apply(p.spec, sc, (p.horizon - p.warmup) / WEEK, p.warmup, source=f"scenario {sc.name}")
        except SpecError as e:
            problems += [x for x in e.problems if x not in problems]
    if problems:
        raise SpecError(problems)
    # what KPIs a run of this spec gives: a one-hour probe
    probe = _job(p.spec, {}, min(p.horizon, HOUR), 0.0, p.seed)
    probe.setdefault("conversion_cost", math.nan)
    kpis = set(probe)
    kpis |= {f"{sc}.{k}" for sc in names for k in kpis}
    seen: dict[str, str] = {}
    for kpi, sense in p.objectives:
        obj = parse_objective(kpi)
        key = repr(obj.tree)
        if key in seen:
            problems.append(f"--maximize/--minimize {kpi!r}: the same objective is given twice"
                            + (f" ({seen[key]} and {sense})" if seen[key] != sense else "")
                            + "; a front needs two different objectives")
        seen[key] = sense
        if not obj.names():
            problems.append(f"--maximize/--minimize {kpi!r}: a constant; an objective needs at least one KPI")
        if obj.tree != ("name", kpi.strip()):
            p.formulas[kpi] = obj
        for n in sorted(obj.names()):
            if n not in kpis:
                problems.append(f"--maximize/--minimize: no KPI {n!r}"
                                + (f" (in {kpi!r})" if n != kpi else "")
                                + f"; the KPIs of this spec: {', '.join(sorted(k for k in kpis if '.' not in k))}"
                                + (" (and SCENARIO.KPI)" if p.scenarios else ""))
    for kpi, _ in p.objectives:
        f = p.formulas.get(kpi)
        used = f.names() if f is not None else set()
        if f is None or not used <= set(probe) or not all(math.isfinite(probe[n]) for n in used):
            continue
        with np.errstate(all="ignore"):
            v = f.value(probe)
        if not math.isfinite(v):
            problems.append(f"--maximize/--minimize {kpi!r}: is {v} on a probe run whose KPIs are all finite "
                            "(a division by zero?): an objective must be a finite number")
    for c in p.constraints:
        unknown = []
        uses_kpi = False
        for n in sorted(c.names):
            if n in paths:
                continue
            if n in kpis:
                uses_kpi = True
                continue
            try:
                p.fixed[n] = _spec_value(p.spec, n)
            except KeyError:
                unknown.append(n)
        if unknown:
            problems.append(f"--constraint {c.text!r}: {', '.join(unknown)}: neither a varied path, a numeric "
                            "spec value nor a KPI")
        c.kind = "outcome" if uses_kpi else "design"
    if problems:
        raise SpecError(problems)
    p.grid = _feasible_grid(p)
    if any(c.kind == "design" for c in p.constraints) and not (p.grid if p.grid is not None else _some_design_ok(p)):
        raise SpecError([f"--constraint: no design in the space meets {' and '.join(repr(c.text) for c in p.constraints if c.kind == 'design')}"])




def _feasible_grid(p: Problem) -> list[dict[str, Any]] | None:
    """Every design of an all-integer/categorical space that meets the design constraints, or None
    when a dimension is real or the space has more than :data:`GRID_LIMIT` designs."""
    if math.prod(d.size for d in p.space) > GRID_LIMIT:
        return None
    grids = [d.values() for d in p.space]
    paths = [d.path for d in p.space]
    designs = (dict(zip(paths, combo)) for combo in itertools.product(*grids))  # type: ignore[arg-type]
    return [d for d in designs if p.design_ok(d)]


def _some_design_ok(p: Problem, samples: int = 4000) -> bool:
    """A random search for one design that meets the design constraints (a space too big to enumerate)."""
    rng = np.random.default_rng(0)
    for _ in range(samples):
        params: dict[str, Any] = {}
        for d in p.space:
            if d.kind == "int":
                params[d.path] = int(rng.integers(int(d.low), int(d.high) + 1))
            elif d.kind == "float":
                params[d.path] = float(rng.uniform(d.low, d.high))
            else:
                params[d.path] = d.choices[int(rng.integers(len(d.choices)))]
        if p.design_ok(params):
            return True
    return False


def _sampler(p: Problem, trials: int, seed: int | None = None
             ) -> tuple[optuna.samplers.BaseSampler, str, list[dict[str, Any]]]:
    """The sampler (drawing from ``seed``, default the problem's), its name, and the designs to
    enqueue (an exhaustive grid of the feasible designs when they fit in the trial budget: every one
    of them is tried, in order)."""
    seed = p.seed if seed is None else seed
    def constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
        return trial.user_attrs.get("constraints", [0.0])

    outcome = any(c.kind == "outcome" for c in p.constraints)
    if len(p.objectives) == 2:
        return (optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints if outcome else None),
                "NSGA-II", [])
    if p.grid is not None and len(p.grid) <= trials:
        # enqueued rather than optuna's GridSampler, which stops the study itself (it needs optimize())
        return optuna.samplers.RandomSampler(seed=seed), "grid", p.grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return (optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=min(10, max(3, trials // 4)),
                                           constraints_func=constraints if outcome else None), "TPE", [])


def _evaluate(p: Problem, designs: list[dict[str, Any]], replications: int, seed: int, jobs: int, executor: str,
              scheduler: str | None, bar: Any = None) -> list[list[dict[str, float]]]:
    """Every design × replication (× scenario; the same seeds for every design); per design, its
    replications' KPIs (with scenarios: ``SCENARIO.kpi`` each, and ``kpi`` their equal-weight mean)."""
    scs: list[Scenario | None] = list(p.scenarios) or [None]
    specs = {(i, j): _design(p.spec, p.overrides(d), p.horizon, p.warmup, sc)
             for i, d in enumerate(designs) for j, sc in enumerate(scs)}
    # each design's spec is built once, here; the jobs run it as it is
    args: list[tuple[Any, ...]] = [(specs[(i, j)], {}, p.horizon, p.warmup, replication_seed(seed, r), None)
                                   for i in range(len(designs)) for r in range(replications) for j in range(len(scs))]
    parts: list[list[list[dict[str, float]]]] = [[[{} for _ in scs] for _ in range(replications)] for _ in designs]
    n = len(scs)
    how, why = serial.choose(list(specs.values()), p.engine, source="--engine")
    p.runs_by_engine[how] += len(args)
    if why:
        p.why_not = why
    if how == "serial":
        runs = [(a[0], a[4]) for a in args]
        done = serial.map_runs(_numeric_kpis, runs, p.horizon, p.warmup, jobs=jobs, executor=executor,
                               scheduler=scheduler)
    else:
        done = map_jobs(_job, args, jobs=jobs, executor=executor, scheduler=scheduler)
    for i, k in done:
        parts[i // (replications * n)][(i // n) % replications][i % n] = k
        if bar is not None:
            bar.update(1)
    out = [[rep[0] for rep in d] for d in parts] if not p.scenarios else \
        [[_across(p.scenarios, rep) for rep in d] for d in parts]
    for d in out:
        for rep in d:
            for text, e in p.formulas.items():
                try:
                    rep[text] = e.value(rep)
                except KeyError:  # a KPI a run did not give (NaN objective: the trial fails)
                    rep[text] = math.nan
    return out


def _across(scenarios: list[Scenario], runs: list[dict[str, float]]) -> dict[str, float]:
    """One replication's KPIs under every scenario: each as ``SCENARIO.kpi``, and ``kpi`` their
    equal-weight mean (NaN when a scenario has none, e.g. "not recovered": no mean hides it)."""
    out: dict[str, float] = {}
    for sc, k in zip(scenarios, runs):
        out.update({f"{sc.name}.{key}": v for key, v in k.items()})
    for key in set().union(*(k.keys() for k in runs)):
        vals = [k.get(key, math.nan) for k in runs]
        out[key] = float(np.mean(vals)) if all(math.isfinite(v) for v in vals) else math.nan
    return out


def _mean(values: list[float]) -> tuple[float, float]:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x):
        return float("nan"), float("nan")
    if len(x) == 1:
        return float(x[0]), float("nan")
    return mean_ci(x)


def _score(p: Problem, params: dict[str, Any],
           reps: list[dict[str, float]]) -> tuple[list[float], list[float], dict[str, dict[str, float]]]:
    """Objective means, outcome-constraint violations (≤ 0 holds) and every KPI's mean ± CI."""
    keys = sorted(set().union(*(r.keys() for r in reps)))
    kpis = {}
    for k in keys:
        m, h = _mean([r.get(k, float("nan")) for r in reps])
        kpis[k] = {"mean": m, "ci95": h}
    means = {k: v["mean"] for k, v in kpis.items()}
    values = [means.get(k, float("nan")) for k, _ in p.objectives]
    env = p.env(params, means)
    viol = [c.violation(env) for c in p.constraints if c.kind == "outcome"]
    return values, viol, kpis


def optimize(spec: Spec, space: list[Dimension], objectives: list[tuple[str, str]],
             constraints: list[str] | None = None, trials: int = 30, replications: int = 3,
             horizon: float | None = None, warmup: float | None = None, seed: int = 1, jobs: int = 1,
             executor: str = "local", scheduler: str | None = None, confirm: int = 3,
             confirm_replications: int | None = None, progress: bool = False, source: str = "<spec>",
             scenarios: list[Scenario] | None = None, engine: str = "auto", storage: str | None = None,
             study_name: str | None = None) -> dict[str, Any]:
    """Search ``space`` for the design that best meets ``objectives`` (``[(kpi, "maximize"|"minimize")]``,
    one or two) under ``constraints`` (strings of the constraint grammar). ``horizon``/``warmup``
    in s (default the spec's). Returns ``{"best", "runners_up", "trials", "pareto", "meta"}``:
    ``best`` and each runner-up have ``params`` and ``kpis`` ({kpi: {"mean", "ci95"}}) from the
    confirmation runs (``confirm_replications``, default 2 × ``replications``, on seeds of their
    own), runners-up with ``vs_best`` paired differences of the first objective. With
    ``scenarios`` every design runs under each (observed ``horizon - warmup``, common seeds):
    an objective or constraint KPI ``k`` is the equal-weight mean over them, ``SCENARIO.k``
    one scenario's value (``"surge.fill_rate >= 0.95"``). ``engine`` as for :func:`twin.sweep`:
    designs that are saturated serial lines run by their exact recursion under ``auto``
    (``meta["engine"]`` counts the runs of each engine).

    With ``storage`` (``journal:PATH`` or a database URL, :mod:`twin.studies`) and ``study_name``
    the trials are those of a shared study that several processes run at once: ``trials`` is the
    study's budget, each process's sampler draws its own stream (which designs a process tries
    depends on timing; a grid's designs and every design's values do not), and the process that
    claims the confirmation runs it and stores its result, which a later call returns.
    :class:`twin.studies.ConfirmedElsewhere` is raised by a process that finds the confirmation
    claimed and not yet stored."""
    p = Problem(spec, list(space), list(objectives), [parse_constraint(c) for c in constraints or []],
                horizon=float(spec.run.horizon if horizon is None else horizon),
                warmup=float(spec.run.warmup if warmup is None else warmup), seed=seed,
                replications=replications, source=source, scenarios=list(scenarios or []), engine=engine)
    if not p.warmup < p.horizon:
        raise SpecError([f"--warmup/--horizon: the warm-up ({p.warmup:g} s) must be shorter than the horizon ({p.horizon:g} s)"])
    for kpi, sense in p.objectives:
        if sense not in ("maximize", "minimize"):
            raise SpecError([f"objective {kpi!r}: {sense!r} is neither maximize nor minimize"])
    check(p)
    shared = storage is not None
    if shared != (study_name is not None):
        raise SpecError(["--storage/--study: a shared study needs both, the storage URL and the study's name"])
    directions = [s for _, s in p.objectives]
    if shared:
        assert storage is not None and study_name is not None
        store = studies.open_storage(storage)
        # every process draws designs of its own, or two TPE startups would propose the same ones
        sampler, how, queue = _sampler(p, trials, seed=int.from_bytes(os.urandom(4), "little"))
        study = studies.open_study(store, storage, study_name, directions, sampler,
                                   {**_problem(p, trials), "confirm": confirm,
                                    "confirm_replications": confirm_replications or 2 * replications}, queue)
    else:
        sampler, how, queue = _sampler(p, trials)
        study = optuna.create_study(directions=directions, sampler=sampler)  # type: ignore[arg-type]
        for q in queue:
            study.enqueue_trial(q)
    if queue:
        trials = len(queue)

    def used() -> int:
        return studies.counted(study) if shared else len(rows)
    batch = max(1, math.ceil(jobs / replications))
    rows: list[dict[str, Any]] = []
    evaluated: dict[tuple[Any, ...], tuple[list[float], list[float], dict[str, Any]]] = {}
    skipped = 0
    conf_reps = confirm_replications or 2 * replications
    per_design = max(1, len(p.scenarios))
    total_jobs = (trials * replications + confirm * conf_reps) * per_design
    with progress_bar(total_jobs, "optimize (runs)", progress) as bar:
        while (n_used := used()) < trials and skipped < 20 * trials + 100:
            asked: list[tuple[Any, dict[str, Any]]] = []
            designs: list[dict[str, Any]] = []
            room = trials - n_used
            while len(asked) < min(batch, room) and skipped < 20 * trials + 100:
                t = study.ask()
                params = {d.path: d.suggest(t) for d in p.space}
                if not p.design_ok(params):
                    study.tell(t, state=optuna.trial.TrialState.PRUNED)
                    skipped += 1
                    continue
                k = tuple(params[d.path] for d in p.space)
                if k in evaluated or k in [tuple(q[d.path] for d in p.space) for q in designs]:
                    # a design already run: the sampler learns its value again, the budget is not spent
                    if k in evaluated:
                        values, viol, _ = evaluated[k]
                        t.set_user_attr("constraints", viol or [0.0])
                        study.tell(t, values if len(values) > 1 else values[0])
                    else:
                        study.tell(t, state=optuna.trial.TrialState.PRUNED)
                    skipped += 1
                    continue
                if shared and studies.rank(study, t) > trials:
                    # processes that asked at once: trial numbers are the storage's, so the lowest
                    # ones keep the budget and this one is given back (the loop asks again if one
                    # of theirs is skipped)
                    study.tell(t, state=optuna.trial.TrialState.PRUNED)
                    break
                asked.append((t, params))
                designs.append(params)
            if not asked:
                break
            key = [tuple(params[d.path] for d in p.space) for params in designs]
            todo = [i for i, k in enumerate(key) if k not in evaluated]
            results = _evaluate(p, [designs[i] for i in todo], replications, seed, jobs, executor, scheduler, bar)
            for i, r in zip(todo, results):
                evaluated[key[i]] = _score(p, designs[i], r)
            for (t, params), k in zip(asked, key):
                values, viol, kpis = evaluated[k]
                t.set_user_attr("constraints", viol or [0.0])
                row = {"trial": t.number, **params, **{f"{kpi}": kpis.get(kpi, {}).get("mean") for kpi, _ in p.objectives},
                       "feasible": all(v <= 0 for v in viol), **{f"kpi.{n}": v["mean"] for n, v in kpis.items()}}
                if shared:  # the row travels with the trial: the confirming process reads every one
                    t.set_user_attr(studies.ROW, row)
                    t.set_user_attr(studies.BY, studies.me())
                if any(v != v for v in values):
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                else:
                    study.tell(t, values if len(values) > 1 else values[0])
                rows.append(row)
        mine = len(rows)
        if shared:
            assert storage is not None and study_name is not None
            claimed, stored, holder = studies.claim(store, study_name)
            if stored is not None:
                stored["study"] = study
                return stored
            if not claimed:
                raise studies.ConfirmedElsewhere(study_name, len(studies.rows(study)), mine, holder)
            studies.wait_for_others(study)
            rows = studies.rows(study)
        bar.total = (len(rows) * replications + confirm * conf_reps) * per_design
        feasible = [r for r in rows if r["feasible"]]
        if not feasible:
            raise SpecError([f"--constraint: none of the {len(rows)} designs tried met "
                             + " and ".join(repr(c.text) for c in p.constraints if c.kind == "outcome")
                             + "; widen the space or relax the constraint. " + _closest(p, rows)])
        kpi0, sense0 = p.objectives[0]
        sign = -1.0 if sense0 == "maximize" else 1.0
        unique: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in sorted(feasible, key=lambda r: sign * r[kpi0]):
            unique.setdefault(tuple(row[d.path] for d in p.space), row)
        top = list(unique.values())[:max(1, confirm)]
        if len(p.objectives) == 2:
            top = _pareto_rows(list(unique.values()), p.objectives)[:max(1, confirm)] or top
        designs = [{d.path: r[d.path] for d in p.space} for r in top]
        conf_seed = seed + 1_000_003  # fresh common seeds: the pick is not judged on the runs that picked it
        conf = _evaluate(p, designs, conf_reps, conf_seed, jobs, executor, scheduler, bar)
    scored: list[dict[str, Any]] = []
    for params, reps in zip(designs, conf):
        _, viol, kpis = _score(p, params, reps)
        scored.append({"params": params, "kpis": kpis, "feasible": all(v <= 0 for v in viol), "reps": reps})
    scored.sort(key=lambda d: (not d["feasible"], sign * d["kpis"].get(kpi0, {}).get("mean", math.inf)))
    best = scored[0]
    runners = []
    for d in scored[1:]:
        diff = paired_diff([r.get(kpi0, math.nan) for r in best["reps"]], [r.get(kpi0, math.nan) for r in d["reps"]])
        better = diff["diff_mean"] * (-sign) > 0
        sig = diff["p"] == diff["p"] and diff["p"] < 0.05
        ref = abs(best["kpis"].get(kpi0, {}).get("mean", math.nan))
        rel = diff["diff_mean"] / ref if ref and ref == ref else math.nan
        runners.append({"params": d["params"], "kpis": d["kpis"], "feasible": d["feasible"],
                        "vs_best": {"kpi": kpi0, "diff_mean": diff["diff_mean"], "ci95": diff["ci95"], "n": diff["n"],
                                    "p": diff["p"], "best_significantly_better": bool(better and sig),
                                    "relative": rel}})
    pareto = _pareto_rows(rows, p.objectives) if len(p.objectives) == 2 else []
    meta = {"sampler": how, "trials": len(rows), "skipped": skipped,
            "replications": replications, "confirm_replications": conf_reps, "seed": seed,
            "horizon": p.horizon, "warmup": p.warmup,
            "objectives": [{"kpi": k, "sense": s} for k, s in p.objectives],
            "constraints": [{"text": c.text, "kind": c.kind} for c in p.constraints],
            "scenarios": [sc.name for sc in p.scenarios],
            "engine": dict(sorted(p.runs_by_engine.items())), "engine_why_not": p.why_not,
            "space": [{"path": d.path, "kind": d.kind, "low": d.low, "high": d.high, "choices": list(d.choices),
                       "also": list(d.also)} for d in p.space],
            "on_bound": on_bound(p.space, best["params"])}
    if shared:
        meta["study"] = {"name": study_name, "storage": studies.shown(storage or ""),
                         "trials_by_process": studies.by_process(study), "confirmed_by": studies.me()}
    result = {"best": {"params": best["params"], "kpis": best["kpis"], "feasible": best["feasible"]},
              "runners_up": runners, "trials": rows, "pareto": pareto, "meta": meta, "study": study}
    if shared:
        assert study_name is not None
        studies.store_result(store, study_name, result)
    return result


def _problem(p: Problem, trials: int) -> dict[str, Any]:
    """What a shared study is about, as JSON: processes that pose another problem may not join."""
    return {"spec_sha256": hashlib.sha256(p.spec.to_toml().encode()).hexdigest(),
            "space": [[d.path, d.kind, d.low, d.high, [str(c) for c in d.choices], list(d.also)] for d in p.space],
            "objectives": [list(o) for o in p.objectives], "constraints": [c.text for c in p.constraints],
            "horizon": p.horizon, "warmup": p.warmup, "seed": p.seed, "replications": p.replications,
            "scenarios": [sc.name for sc in p.scenarios], "engine": p.engine, "trials": trials}


def on_bound(space: list[Dimension], params: dict[str, Any]) -> list[str]:
    """A note for each numeric dimension whose best value is an end of its range: the optimum
    may lie beyond it, and only a wider range can tell."""
    notes = []
    for d in space:
        if d.kind == "categorical" or d.path not in params:
            continue
        v = float(params[d.path])
        end = "lower" if v <= d.low else "upper" if v >= d.high else None
        if end is not None:
            lo, hi = (int(d.low), int(d.high)) if d.kind == "int" else (d.low, d.high)
            notes.append(f"the best {d.path} = {params[d.path]:g} is the {end} end of its range {lo:g}..{hi:g}: the "
                         "optimum may lie beyond it; widen the range to know")
    return notes


def _closest(p: Problem, rows: list[dict[str, Any]]) -> str:
    """The tried design nearest to feasible (least summed violation) and what each unmet
    constraint's left side came to: what to widen, or what to relax, and by how much."""
    outcome = [c for c in p.constraints if c.kind == "outcome"]

    def env(r: dict[str, Any]) -> dict[str, float]:
        return p.env({d.path: r[d.path] for d in p.space},
                     {k[4:]: v for k, v in r.items() if k.startswith("kpi.") and isinstance(v, (int, float))})

    def total(r: dict[str, Any]) -> float:
        v = [c.violation(env(r)) for c in outcome]
        return sum(max(0.0, x) if x == x else math.inf for x in v)

    if not rows or not outcome:
        return ""
    r = min(rows, key=total)
    e = env(r)
    unmet = [f"{c.text} (left side {c.left.value(e):.4g})" for c in outcome if not c.holds(e)]
    design = ", ".join(f"{d.path} = {r[d.path]}" for d in p.space)
    return f"Closest: {design}, which misses {'; '.join(unmet)}"


def _pareto_rows(rows: list[dict[str, Any]], objectives: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The non-dominated feasible rows (two objectives)."""
    def vec(r: dict[str, Any]) -> tuple[float, ...]:
        return tuple(-r[k] if s == "maximize" else r[k] for k, s in objectives)

    feas = [r for r in rows if r["feasible"] and all(r[k] == r[k] for k, _ in objectives)]
    out = []
    for r in feas:
        v = vec(r)
        if not any(all(a <= b for a, b in zip(vec(q), v)) and vec(q) != v for q in feas):
            out.append(r)
    return sorted(out, key=lambda r: vec(r))


# --------------------------------------------------------------------------- outputs
