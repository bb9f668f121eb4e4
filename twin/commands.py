"""What each ``twin`` command does (:mod:`twin.cli` parses the command line and calls these).

Kept apart from the parser so that ``twin --version``, ``--help`` and a mistyped option load
none of what the commands need (pandas, scipy, plotly, optuna).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__, ablate, builtins, live, livepage, optimize, optimize_report, serial, shards, snapshot, studies
from . import gate as gate_mod
from . import designs as designs_mod
from .bottleneck import shifting_table
from .floorview import replay_script, replay_section
from .units import DAY, HOUR, WEEK, format_duration, reading_unit
from .watch import Watch
from .compare import (
    FACTORIES,
    SCENARIOS,
    Grid,
    check_inputs,
    check_price_ranges,
    design_fronts,
    factory_spec,
    measure_warmup,
    nominal_labels,
    REPLAY_AFTER,
    REPLAY_BEFORE,
    prepare_uncertainty,
    replay_payload,
    run_designs,
    run_grid,
    run_uncertainty,
    runs_frame,
)
from .compare_report import write_report
from .calibrate import calibrate
from .eventlog import check_log_path, parse_map, read_log, write_log
from .logcheck import check
from .experiment import (
    mser_warmup,
    simulate,
    summarize,
    sweep,
    sweep_selection,
    sweep_table,
)
from .io import ResultSet, atomic_write_text, check_output_dir, check_output_file, dumps
from .names import safe_text
from .report import flow_edges, money_format, run_page, sweep_page
from .model import Model
from .runs import replication_seed, run_once
from .results import why_nothing
from .scenario import apply, given_twice, load_scenario
from .spec import SpecError, load, resolve, toml_values
from .state import TABLE as STATE_TABLE


def _say(text: str = "") -> None:
    """Print user-facing text on stdout with any control characters from user input escaped."""
    print(safe_text(str(text)))


_QUIET = [False]  # -q: progress bars and notes are left out


def _warn(text: str) -> None:
    if _QUIET[0] and not text.startswith("error:"):
        return
    sys.stderr.write(safe_text(text))


def _job_store(args: argparse.Namespace, argv: list[str]) -> shards.JobStore | None:
    """The job store of this run: a merge's (``args.store``, set by :func:`cmd_merge`), a shard's
    (``--shard I/N``: kept in ``--out``), or None for an ordinary run."""
    if getattr(args, "store", None) is not None:
        return args.store  # type: ignore[no-any-return]
    if getattr(args, "shard", None) is None:
        return None
    if not args.out:
        raise SpecError([f"--shard: give --out DIR, the folder where shard {args.shard[0]}/{args.shard[1]} keeps "
                         "its jobs for twin merge"])
    return shards.open_shard(check_output_dir(args.out), args.shard, argv)


def _shard_done(store: shards.JobStore, as_json: bool) -> int:
    """Mark a shard's folder complete and say what it ran and how to merge."""
    store.write_manifest(complete=True)
    if as_json:
        sys.stdout.write(dumps({"shard": store.shard, "of": store.count, "stages": store.stages,
                                "folder": str(store.folder)}))
        return 0
    ran = ", ".join(f"{st} {c['mine']} of {c['jobs']}" + (f" ({c['reused']} kept from before)" if c.get("reused") else "")
                    for st, c in store.stages.items())
    _say(f"shard {store.shard}/{store.count}: {ran or 'no'} jobs, stored in {store.folder}")
    _say(f"when all {store.count} shards are done: twin merge SHARD_DIR... --out DIR")
    return 0


def cmd_list(args: argparse.Namespace | None = None) -> int:
    """The built-in factories and scenarios, with what each is."""
    paths = builtins.factories()
    facs = {name: load(path) for name, path in paths.items()}
    scens = {name: load_scenario(name) for name in builtins.scenarios()}
    if args is not None and getattr(args, "json", False):
        sys.stdout.write(dumps({
            "factories": [{"name": n, "path": str(paths[n]), "spec_name": sp.name,
                           "description": sp.description} for n, sp in facs.items()],
            "scenarios": [{"name": n, "description": sc.description, "shifts": len(sc.shifts)}
                          for n, sc in scens.items()]}))
        return 0
    _say("factories (twin run NAME, twin compare --factories NAME ...):")
    for name, spec in facs.items():
        _say(f"  {name:<14} {spec.description.splitlines()[0] if spec.description else spec.name}")
    _say("scenarios (twin compare --scenarios NAME ...):")
    for name, sc in scens.items():
        _say(f"  {name:<14} {sc.description.split('(')[0].strip()}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if path.exists() and not args.force:
        raise SpecError([f"{path}: already exists (pass --force to overwrite)"])
    if path.suffix != ".toml":
        raise SpecError([f"{path}: a spec file name ends in .toml"])
    check_output_file(path, "twin init")
    atomic_write_text(path, files("twin").joinpath("templates/line.toml").read_text(encoding="utf-8"))
    _say(f"wrote {path}: a three-station line with comments; next: twin validate {path} && twin run {path}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        spec = load(args.spec)
    except SpecError as e:
        if not getattr(args, "json", False):
            raise
        sys.stdout.write(dumps({"spec": str(args.spec), "ok": False, "problems": e.problems, "warnings": []}))
        return 2
    _, warnings = spec.problems()
    if getattr(args, "json", False):
        sys.stdout.write(dumps({"spec": str(resolve(args.spec)), "ok": True, "problems": [], "name": spec.name,
                                "stations": len(spec.stations), "products": len(spec.products),
                                "warnings": [f"{p}: {m}" for p, m in warnings]}))
        return 0
    for p, m in warnings:
        _warn(f"warning: {resolve(args.spec)}: {p}: {m}\n")
    _say(f"{resolve(args.spec)}: ok ({len(spec.stations)} stations, {len(spec.products)} products)")
    return 0


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``PATH=VALUE`` pairs; VALUE is read as TOML (``3``, ``"8h"``, ``{dist = ...}``), else as a string."""

    out: dict[str, Any] = {}
    bad = []
    for item in items:
        if "=" not in item:
            bad.append(f"--set: {item!r}: expected PATH=VALUE, e.g. stations.smt.servers=3")
            continue
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = tomllib.loads(f"v = {v}")["v"]
        except tomllib.TOMLDecodeError:
            out[k.strip()] = v
    if bad:
        raise SpecError(bad)
    return out


def parse_vary(items: list[str]) -> dict[str, list[Any]]:
    """``PATH=V1,V2`` (or ``PATH=[V1, V2]``) pairs; each value is read as TOML, else as text."""

    out: dict[str, list[Any]] = {}
    bad = []
    for item in items:
        if "=" not in item:
            bad.append(f"--vary: {item!r}: expected PATH=V1,V2,..., e.g. stations.smt.servers=1,2,3")
            continue
        k, v = (x.strip() for x in item.split("=", 1))
        values = toml_values(v, f"--vary {k}")
        twice = [x for i, x in enumerate(values) if x in values[:i]]
        if not k:
            bad.append(f"--vary: {item!r}: the spec path before '=' is empty")
        elif not values:
            bad.append(f"--vary: {k}: no values")
        elif k in out:
            bad.append(f"--vary: {k}: given twice")
        elif twice:
            bad.append(f"--vary: {k}: the value {twice[0]!r} is given twice (its points would pool copies "
                       "of the same replications)")
        else:
            out[k] = values
    if bad:
        raise SpecError(bad)
    return out


def cmd_sweep(args: argparse.Namespace, argv: list[str]) -> int:
    path = resolve(args.spec)
    spec = load(path)
    if args.set:
        spec = spec.with_overrides(parse_sets(args.set), source=f"{path} --set")
    grid = parse_vary(args.vary)
    if args.scheduler is not None and args.executor != "dask":
        raise SpecError(["--scheduler: only used with --executor dask"])
    if args.out:
        check_output_dir(args.out)
    store = _job_store(args, argv)
    horizon = spec.run.horizon if args.horizon is None else args.horizon
    warmup = spec.run.warmup if args.warmup is None else args.warmup
    if horizon <= 0 or warmup >= horizon:
        raise SpecError([f"--warmup/--horizon: the warm-up ({warmup:g} s) must be shorter than the horizon "
                         f"({horizon:g} s)"])
    df = sweep(spec, grid, horizon=horizon, warmup=warmup, seed=args.seed, replications=args.replications,
               jobs=args.jobs or os.cpu_count() or 1, executor=args.executor, scheduler=args.scheduler,
               progress=not (args.json or args.quiet), source=f"{path} --vary",
               engine=args.engine, store=store)  # validates every point before running
    if store is not None and store.sharding:
        return _shard_done(store, args.json)
    tab = sweep_table(df)
    meta = {"twin_version": __version__, "spec": str(path), "spec_sha256": spec_hash(path),
            "command": "twin " + shlex.join(argv), "grid": grid, "horizon": horizon, "warmup": warmup,
            "seed": spec.run.seed if args.seed is None else args.seed,
            "replications": spec.run.replications if args.replications is None else args.replications,
            "engine": df.attrs["engine"], "engine_why_not": df.attrs["engine_why_not"]}
    points = tab.to_dict(orient="records")
    picks = sweep_selection(df)
    if args.out:
        with ResultSet(args.out, summary="kpis.json") as rs:
            rs.add_csv("sweep.csv", df)
            rs.add_csv("sweep_summary.csv", tab)
            rs.add_json("kpis.json", {"meta": meta, "points": points, "selection": picks})
            rs.add_text("report.html", sweep_page(tab, list(grid), picks, meta, f"twin sweep {spec.name}"))
            rs.publish()
    if args.json:
        sys.stdout.write(dumps({"meta": meta, "points": points, "selection": picks}))
        return 0
    keys = list(grid)
    _say(f"{spec.name}: {len(tab)} points x {meta['replications']} replications, horizon {format_duration(horizon)}, "
         f"warm-up {format_duration(warmup)}, seed {meta['seed']}, the same seeds at every point (mean ± 95 % CI)")
    _say("  " + serial.describe(meta["engine"], meta["engine_why_not"]))
    lt_scale, lt_unit = reading_unit(float(tab["lead_time_mean_s"].max()))
    cols = [("throughput_per_hour", "units/h", 1.0, "{:.1f}"), ("lead_time_mean_s", f"lead time {lt_unit}", lt_scale,
                                                                 "{:.1f}"),
            ("wip_mean", "WIP", 1.0, "{:.1f}"), ("oee", "OEE", 1.0, "{:.3f}")]
    if "unit_cost" in tab and tab["unit_cost"].notna().any() and df.get("cost_total", 0).astype(float).gt(0).any():
        cols.append(("unit_cost", "unit cost", 1.0, "{:.2f}"))
    head = "  " + "".join(f"{k.split('.')[-2] + '.' + k.split('.')[-1] if k.count('.') else k:>22}" for k in keys)
    head += "".join(f"{label:>22}" for _, label, _, _ in cols)
    _say(head)
    for row in points:
        line = "  " + "".join(f"{str(row[k]):>22}" for k in keys)
        for key, _, scale, fmt in cols:
            cell = fmt.format(row[key] * scale) + " ± " + fmt.format(row[f"{key}_ci95"] * scale)
            line += f"{cell:>22}"
        _say(line)
    for kpi, pick in picks.items():
        verdict = (f"probability of correct selection >= {pick['pcs']:.0%} when the best leads by "
                   f"{pick['delta']:.3g} or more" if pick["met"] else
                   f"not yet a guaranteed pick: {pick['n_needed']} replications would give a {pick['pcs']:.0%} "
                   f"probability of correct selection at a lead of {pick['delta']:.3g}")
        _say(f"  best {kpi}: {pick['best']} ({verdict}; Clark-Yang selection, common random numbers)")
    if args.out:
        _say(f"wrote {', '.join(str(Path(args.out) / w) for w in ('sweep.csv', 'sweep_summary.csv', 'kpis.json', 'report.html'))}")
    return 0


def spec_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def cmd_run(args: argparse.Namespace, argv: list[str]) -> int:
    path = resolve(args.spec)
    spec = load(path)
    if args.set:
        spec = spec.with_overrides(parse_sets(args.set), source=f"{path} --set")
    for p, m in spec.problems()[1]:
        _warn(f"warning: {path}: {p}: {m}\n")
    if args.out:
        check_output_dir(args.out)
    if args.event_log:
        check_output_file(args.event_log, "--event-log")
        check_log_path(args.event_log)
    state = None
    if args.write_state:
        check_output_file(args.write_state, "--write-state")
    if args.from_state:
        state = snapshot.load(args.from_state)
        errors = snapshot.problems(state, spec, args.from_state)
        if errors:
            raise SpecError(errors)
        if args.warmup is not None:
            raise SpecError(["--warmup: a run from a state starts there with no warm-up (--from-state)"])
    horizon = spec.run.horizon if args.horizon is None else args.horizon
    auto = args.warmup == "auto"
    warmup = spec.run.warmup if args.warmup is None else (0.0 if auto else args.warmup)
    if state is not None:
        warmup = 0.0
    t0 = state.time if state is not None else 0.0  # the run's window is t0 + [warmup, horizon]
    if horizon <= 0:
        raise SpecError([f"--horizon: must be > 0, got {horizon:g} s"])
    if warmup >= horizon:
        origin = "--warmup" if args.warmup is not None else f"{path}: run.warmup"
        raise SpecError([f"{origin}: warm-up ({warmup:g} s) must be shorter than the horizon ({horizon:g} s);"
                         " pass a shorter --warmup or a longer --horizon"])
    animate = bool(args.out) and not args.no_animate
    res = simulate(spec, horizon=horizon, warmup=warmup, seed=args.seed, replications=args.replications,
                   progress=not (args.json or args.quiet), state=state,
                   watch=_replay_window(args.animate, horizon, warmup, t0, spec) if animate and not auto else None)
    found, method = mser_warmup(res, spec) if state is None else (0.0, "")
    if auto:  # the same seeds again with the measured warm-up: the same runs, KPIs from its end
        warmup = found
        res = simulate(spec, horizon=horizon, warmup=warmup, seed=args.seed, replications=args.replications,
                       progress=not (args.json or args.quiet),
                       watch=_replay_window(args.animate, horizon, warmup, t0, spec) if animate else None)
    elif found > warmup:
        _warn(f"warning: {path}: the warm-up ({format_duration(warmup)}) is shorter than the {format_duration(found)} that MSER finds "
              "in the WIP series; KPIs may carry the start-up transient (try --warmup auto)\n")
    seed0 = replication_seed(spec.run.seed if args.seed is None else args.seed, 0)
    if args.event_log:
        traced = run_once(spec, horizon, warmup, seed0, trace=True, state=state)  # replication 0 again, with its trace
        assert traced.record is not None  # run_once keeps the record
        write_log(traced.record, args.event_log)
    if args.write_state:  # replication 0 again, stopped at its end, its state written
        model = Model(spec, seed0, t0 + horizon, state=state, state_source=str(args.from_state))
        model.run(t0 + horizon, t0 + warmup)
        atomic_write_text(args.write_state, model.snapshot().to_json())
    summary = summarize(res)
    summary["currency"] = spec.costs.currency
    shifting = shifting_table(res.states, t0 + warmup, t0 + horizon)
    summary["bottleneck_shifting"] = {str(n): {"sole": float(r["sole"]), "shifting": float(r["shifting"])}
                                      for n, r in shifting.iterrows()}
    summary["warmup"] = warmup
    summary["warmup_method"] = ("measured: " + method) if auto else ("a state start" if state is not None else "given")
    if state is not None:
        summary["from_state"] = {"file": str(args.from_state), "time": state.time}
    nothing = why_nothing(spec, summary)
    if nothing is not None:
        summary["nothing_made"] = nothing
    summary["meta"] = {"twin_version": __version__, "spec": str(path), "spec_sha256": spec_hash(path),
                       "overrides": args.set, "command": "twin " + shlex.join(argv)}
    if args.out:
        with ResultSet(args.out, summary="kpis.json") as rs:  # kpis.json last: it marks a complete set
            rs.add_csv("replications.csv", res.kpis)
            rs.add_csv("stations.csv", res.stations)
            rs.add_csv("lots.csv", res.lots)
            rs.add_csv("states.csv", res.states)
            rs.add_csv("timeseries.csv", res.timeseries)
            replay, flows = None, None
            if res.record is not None and res.record.window is not None:
                replay, flows, buffers = _replay(spec, res)
                rs.add_csv("buffers.csv", buffers)
                rs.add_csv("flows.csv", flows)
            rs.add_text("report.html", run_page(summary, res, f"twin run: {spec.name}",
                                                routes=[p.route for p in spec.products], shifting=shifting,
                                                edges=flow_edges(spec), replay=replay, flows=flows,
                                                stations=[st.name for st in spec.stations]))
            rs.add_json("kpis.json", summary)
            written = rs.publish()
        if not args.json:
            _warn(f"wrote {', '.join(str(w) for w in written)}; open {(Path(args.out) / 'report.html').resolve().as_uri()}\n")
    if args.json:
        sys.stdout.write(dumps(summary))
    else:
        _say(format_table(summary))
    return 0


def _replay_window(given: tuple[float, float] | None, horizon: float, warmup: float, t0: float,
                   spec: Any = None) -> Watch:
    """What the first replication watches for the replay: ``--animate``'s window (from the run's
    start ``t0``); else the hours around the spec's first scenario shift when it falls in the
    observation (as ``twin compare`` shows a scenario), or the first day after the warm-up; and
    the flows over the observation window."""
    at = [sh.at - t0 for sh in spec.shifts] if spec is not None else []
    at = [t for t in at if warmup <= t < horizon]
    if given is not None:
        lo, hi = given
    elif at:
        lo, hi = max(warmup, min(at) - REPLAY_BEFORE), min(horizon, min(at) + REPLAY_AFTER)
    else:
        lo, hi = warmup, min(horizon, warmup + DAY)
    if hi > horizon:
        raise SpecError([f"--animate: the window ends at {format_duration(hi)}, after the horizon "
                         f"({format_duration(horizon)})"])
    return Watch(t0 + lo, t0 + hi, t0 + warmup)


def _replay(spec: Any, res: Any) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The replay section of a run's report, its flows and its buffer levels (``flows.csv``,
    ``buffers.csv``), from the first replication's watched record."""
    r = replay_payload(spec, res)
    return replay_script() + replay_section(r["data"], r["model"]), pd.DataFrame(r["flows"]), r["buffers"]


def _name_list(values: list[str] | None, flag: str) -> list[str]:
    """Names given as separate words, comma lists or both (``a,b c``): every command takes
    both forms, so a list copied from one command works in another. Empty when the option
    was not given; an option given with no name at all is refused."""
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    if values is not None and not names:
        raise SpecError([f"{flag}: no name given"])
    return names


QUICK_WEEKS = 10.0
RECOVERY_WINDOW_WEEKS = 3.0
"""The quick profile watches every scenario's shift to its end and this long after it: a
recovery needs a good week held, so a shorter watch cannot see one."""


def quick_weeks(scenarios: list[str]) -> float:
    """Weeks the quick profile observes: at least :data:`QUICK_WEEKS`, and every scenario's last
    shift to its end plus :data:`RECOVERY_WINDOW_WEEKS` (the surge, weeks 3-11, gives 14)."""
    weeks = QUICK_WEEKS
    for name in scenarios:
        try:
            sc = load_scenario(name)
        except SpecError:
            continue  # reported with every other input problem when the grid is checked
        for sh in sc.shifts:
            end = sh.at + (sh.duration or 0.0)
            weeks = max(weeks, math.ceil(end / WEEK) + RECOVERY_WINDOW_WEEKS)
    return float(weeks)


def prepare_designs(grid: Grid, file: str) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """The candidate designs of the compared factories (``file``, "" for the reference factories'
    own) and which candidate each spec is; checked before anything runs."""
    dfile, src = designs_mod.load(file or None)
    cands = designs_mod.candidates(dfile, src, grid.factories)
    if not cands:
        raise SpecError([f"--designs: {src} names none of the compared factories ({', '.join(grid.factories)})"])
    paths, _ = check_inputs(grid)
    specs = {f: factory_spec(paths[f], grid.overrides.get(f)) for f in cands}
    problems = []
    for f, cs in cands.items():
        for c in cs:
            try:
                specs[f].with_overrides(c.set, source=f"{src}: {f}: {c.label}")
            except SpecError as e:
                problems += e.problems
    if problems:
        raise SpecError(problems)
    return cands, nominal_labels(specs, cands)


def _default_scenarios(grid: Grid, quick_weeks_apply: bool) -> None:
    """Without ``--scenarios``: the built-in scenarios that apply to every compared factory (a line
    fed by arrivals takes rate shifts, not a mix shift; a disruption needs its station), saying
    which were left out and why. Named scenarios that do not apply are errors (check_inputs)."""
    specs = []
    for f in grid.factories:
        try:
            specs.append(factory_spec(str(resolve(f)), grid.overrides.get(f)))
        except SpecError:
            return  # check_inputs names the problem
    kept: list[tuple[str, str | None]] = []
    left: list[tuple[str, str | None]] = []
    for name in grid.scenarios:
        sc = load_scenario(name)
        why = None
        for spec in specs:
            try:
                apply(spec, sc, grid.weeks, grid.warmup, source=name)
            except SpecError as e:
                why = e.problems[0].partition(": ")[2]  # the problem without the scenario's name
                break
        (left if why else kept).append((name, why))
    if not left:
        return
    if not kept:
        raise SpecError([f"--scenarios: none of the built-in scenarios applies to {', '.join(grid.factories)} "
                         f"({left[0][1]}); give your own with --scenarios FILE.toml"])
    grid.scenarios = [n for n, _ in kept]
    if quick_weeks_apply:  # the quick profile watches the last shift end: of the scenarios kept
        grid.weeks = quick_weeks(grid.scenarios)
    _warn("note: built-in scenarios that do not apply to these factories are left out (--scenarios names "
          "the ones to run):\n" + "".join(f"  {n}: {w}\n" for n, w in left))


def cmd_compare(args: argparse.Namespace, argv: list[str]) -> int:
    quick = args.quick
    scenarios = _name_list(args.scenarios, "--scenarios") or list(SCENARIOS)
    grid = Grid(
        factories=_name_list(args.factories, "--factories") or list(FACTORIES),
        scenarios=scenarios,
        replications=args.replications or (2 if quick else 5),
        weeks=args.weeks or (quick_weeks(scenarios) if quick else 26.0),
        warmup=(args.warmup if args.warmup not in (None, "auto") else (WEEK if quick else 2 * WEEK)),
        seed=args.seed,
        animate=not args.no_animate,
    )
    for item in args.set:  # [FACTORY:]PATH=VALUE; the factory part ends before the path's '='
        factory, colon, _ = item.partition("=")[0].partition(":")
        pair = item[len(factory) + 1:] if colon else item
        values = parse_sets([pair])
        for f in ([factory] if colon else grid.factories):
            grid.overrides.setdefault(f, {}).update(values)
    if args.scenarios is None:
        _default_scenarios(grid, quick and not args.weeks)
    jobs = args.jobs or os.cpu_count() or 1
    out = check_output_dir(args.out)
    store = _job_store(args, argv)
    if args.warmup == "auto":
        grid.warmup, grid.warmup_method = measure_warmup(grid)
        _warn(f"warm-up measured: {format_duration(grid.warmup)} ({grid.warmup_method})\n")
    if args.scheduler is not None and args.executor != "dask":
        raise SpecError(["--scheduler: only used with --executor dask"])
    prepared = (prepare_uncertainty(grid, args.uncertainty, args.uncertainty_file, args.price_draws)
                if args.uncertainty else None)
    if args.uncertainty_file is not None and not args.uncertainty:
        # checked now, not at the report after the whole grid: its ranges judge the break-evens
        check_price_ranges(grid, args.uncertainty_file)
        _warn(f"note: --uncertainty-file without --uncertainty N: {args.uncertainty_file}'s ranges only judge "
              "whether a break-even lies inside the plausible range; no worlds are drawn\n")
    if args.uncertainty and args.resume:
        _warn("note: --resume keeps the finished jobs of the reference grid; the uncertainty draws run again\n")
    cands, nominal = prepare_designs(grid, args.designs) if args.designs is not None else ({}, {})
    try:
        sharding = store is not None and store.sharding
        results = run_grid(grid, jobs=jobs, out=None if sharding else out, resume=args.resume,
                           progress=not args.quiet, executor=args.executor, scheduler=args.scheduler, store=store)
        unc = None
        fronts = None
        if cands:
            variants = run_designs(grid, cands, nominal, results, jobs=jobs, progress=not args.quiet,
                                   executor=args.executor, scheduler=args.scheduler, store=store)
            shifted = [s for s in grid.scenarios if load_scenario(s).shifts]
            fronts = None if sharding else design_fronts(variants, grid.scenarios, shifted)
        if args.uncertainty:
            unc = run_uncertainty(grid, args.uncertainty, jobs=jobs, progress=not args.quiet, executor=args.executor,
                                  scheduler=args.scheduler, prepared=prepared, price_draws=args.price_draws,
                                  designs=cands, nominal=nominal, store=store)
    except ImportError as e:
        raise SpecError([f"--executor dask: {e}"]) from None
    if store is not None and store.sharding:
        return _shard_done(store, getattr(args, "json", False))
    md = write_report(results, grid, out, command="twin " + shlex.join(argv), uncertainty=unc,
                      price_file=args.uncertainty_file, fronts=fronts)
    if getattr(args, "json", False):  # what was written to kpis.json, for a script to read
        sys.stdout.write((out / "kpis.json").read_text())
        return 0
    # the side-by-side tables on stdout (CI logs show them), then the answer and where it was written
    tables = md.split("## Reading")[0]
    if "## Verdict" in tables:  # the verdict closes the output instead
        head, _, rest = tables.partition("## Verdict")
        tables = head + rest[rest.index("\n## ") + 1:] if "\n## " in rest else head
    _say(tables)
    _say("Verdict (paired differences, Holm-corrected):")
    for ln in json.loads((out / "kpis.json").read_text())["meta"]["verdict"]["lines"]:
        _say(f"  - {ln}")
    written = ["report.html", "report.md", "kpis.json", "runs.csv", "daily.csv", "costs.csv", "stations.csv"]
    if unc is not None:
        written.append("uncertainty.csv")
    _say(f"wrote {', '.join(str(out / w) for w in written)}")
    _say(f"open {(out / 'report.html').resolve().as_uri()} in a browser")
    return 0


def cmd_optimize(args: argparse.Namespace, argv: list[str]) -> int:
    path = resolve(args.spec)
    spec = load(path)
    if args.set:
        spec = spec.with_overrides(parse_sets(args.set), source=f"{path} --set")
    problems = []
    space = []
    for item in args.vary:
        try:
            space.append(optimize.parse_dimension(item))
        except SpecError as e:
            problems += e.problems
    constraints = []
    for c in args.constraint:
        try:
            optimize.parse_constraint(c)
            constraints.append(c)
        except SpecError as e:
            problems += e.problems
    scenarios = []
    problems += given_twice(_name_list(args.scenarios, "--scenarios"))
    for name in dict.fromkeys(_name_list(args.scenarios, "--scenarios")):
        try:
            scenarios.append(load_scenario(name))
        except SpecError as e:
            problems += [f"--scenarios: {x}" for x in e.problems]
    objectives = [(k, "maximize") for k in args.maximize] + [(k, "minimize") for k in args.minimize]
    if not objectives:
        problems.append("--maximize/--minimize: name the KPI to optimise, e.g. --maximize throughput_per_hour")
    if args.scheduler is not None and args.executor != "dask":
        problems.append("--scheduler: only used with --executor dask")
    if (args.storage is None) != (args.study is None):
        problems.append("--storage/--study: a shared study needs both, the storage URL and the study's name")
    elif args.study is not None and (not args.study.strip() or safe_text(args.study, keep_newlines=False) != args.study
                                     or len(args.study) > 200):
        problems.append(f"--study: {safe_text(args.study[:80], keep_newlines=False)!r} is not a usable name "
                        "(1 to 200 printable characters)")
    if problems:
        raise SpecError(problems)
    out = check_output_dir(args.out) if args.out else None
    try:
        result = optimize.optimize(spec, space, objectives, constraints, trials=args.trials,
                                   replications=args.replications, horizon=args.horizon, warmup=args.warmup,
                                   seed=args.seed, jobs=args.jobs or os.cpu_count() or 1, executor=args.executor,
                                   scheduler=args.scheduler, confirm=args.confirm,
                                   progress=not (args.json or args.quiet), source=str(path),
                                   scenarios=scenarios, engine=args.engine, storage=args.storage,
                                   study_name=args.study)
    except ImportError as e:
        raise SpecError([f"--executor dask: {e}"]) from None
    except studies.ConfirmedElsewhere as e:
        # this process's trials are in the study; the report is the confirming process's to write
        _say(f"optimize: {e}")
        return 0
    body = {"best": result["best"], "runners_up": result["runners_up"], "trials": result["trials"],
            "pareto": result["pareto"],
            "meta": {**result["meta"], "twin_version": __version__, "spec": str(path), "spec_sha256": spec_hash(path),
                     "command": "twin " + shlex.join(argv), "description": optimize_report.describe(result)}}
    if out is not None:
        with ResultSet(out, summary="kpis.json") as rs:
            rs.add_csv("trials.csv", optimize_report.trials_frame(result))
            rs.add_text("best.toml", f"# the best design of: {body['meta']['command']}\n"
                        + optimize_report.best_spec(spec, result).to_toml())
            rs.add_text("report.html", optimize_report.html_page(result, f"twin optimize {spec.name}"))
            rs.add_json("kpis.json", body)
            rs.publish()
    if args.json:
        sys.stdout.write(dumps(body))
        return 0
    kpi0 = objectives[0][0]
    _say(optimize_report.describe(result))
    _say(f"  best: {', '.join(f'{k} = {v}' for k, v in result['best']['params'].items())}   "
         f"{kpi0} {_pm(result['best']['kpis'][kpi0], fmt='{:.4g}')}")
    for r in result["runners_up"]:
        d = r["vs_best"]
        _say(f"  then: {', '.join(f'{k} = {v}' for k, v in r['params'].items())}   {kpi0} "
             f"{_pm(r['kpis'][kpi0], fmt='{:.4g}')}   best − this {d['diff_mean']:+.3g} ± {d['ci95']:.2g}"
             f"{optimize_report._relative(d)}{'' if d['best_significantly_better'] else ' (not significant)'}")
    for note in result["meta"]["on_bound"]:
        _say(f"  note: {note}")
    if out is not None:
        _say(f"wrote {', '.join(str(out / w) for w in ('trials.csv', 'best.toml', 'kpis.json', 'report.html'))}")
    return 0



def _gate_target(args: argparse.Namespace, doc: dict[str, Any] | None
                 ) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """What a gate runs: its identity (kind, factories, scenarios, input hashes), its run options
    (given with --update-baseline, else the baseline's; a different one is refused) and a
    function that runs it and returns (seeds, cells)."""
    given = {k: getattr(args, k) for k in ("horizon", "warmup", "replications", "seed", "weeks")
             if getattr(args, k, None) is not None}
    if doc is not None:
        stored = doc["run"]
        for k, v in given.items():
            if stored.get(k) != v:
                raise SpecError([f"--{k}: the baseline {args.baseline} fixes the run options ({k} = {stored.get(k)}); "
                                 "pass them only with --update-baseline"])
    if (args.target is None) == (not args.compare):
        raise SpecError(["twin gate: give a spec (file or built-in name) or --compare, one of them"])
    progress = not (args.json or args.quiet)
    if args.target is not None:
        if args.factories or args.scenarios:
            raise SpecError(["--factories/--scenarios: only with --compare"])
        path = resolve(args.target)
        spec = load(path)
        if args.set:
            spec = spec.with_overrides(parse_sets(args.set), source=f"{path} --set")
        target = {"kind": "spec", "spec": args.target, "factories": [spec.name], "scenarios": ["run"],
                  "inputs": gate_mod.model_hash(spec)}
        run = dict(doc["run"]) if doc is not None else {
            "horizon": given.get("horizon", spec.run.horizon), "warmup": given.get("warmup", spec.run.warmup),
            "replications": given.get("replications", spec.run.replications), "seed": given.get("seed", spec.run.seed)}

        def go() -> tuple[list[int], list[dict[str, Any]]]:
            res = simulate(spec, horizon=run["horizon"], warmup=run["warmup"], seed=run["seed"],
                           replications=run["replications"], progress=progress)
            seeds = [replication_seed(run["seed"], r) for r in range(run["replications"])]
            return seeds, gate_mod.cells_from_frame(res.kpis, spec.name, "run")
        return target, run, go
    if args.set or "horizon" in given:
        raise SpecError(["--set/--horizon: a compare grid takes --weeks, --warmup and its factories' files"])
    scenarios = _name_list(args.scenarios, "--scenarios") or ["baseline"]
    factories = _name_list(args.factories, "--factories") or list(FACTORIES)
    run = dict(doc["run"]) if doc is not None else {
        "weeks": given.get("weeks", QUICK_WEEKS), "warmup": given.get("warmup", WEEK),
        "replications": given.get("replications", 5), "seed": given.get("seed", 1)}
    grid = Grid(factories=factories, scenarios=scenarios, replications=run["replications"], weeks=run["weeks"],
                warmup=run["warmup"], seed=run["seed"])
    check_inputs(grid)
    sig = grid.signature()
    target = {"kind": "compare", "factories": factories, "scenarios": scenarios,
              "inputs": {"spec_sha256": sig["spec_sha256"], "scenario_sha256": sig["scenario_sha256"]}}

    def go_grid() -> tuple[list[int], list[dict[str, Any]]]:
        results = run_grid(grid, jobs=args.jobs or os.cpu_count() or 1, progress=progress)
        df = runs_frame(results)
        seeds = [replication_seed(run["seed"], r) for r in range(run["replications"])]
        return seeds, gate_mod.cells_from_frame(df)
    return target, run, go_grid


def cmd_gate(args: argparse.Namespace) -> int:
    """Run a spec or a compare grid and judge its KPIs against a recorded baseline."""
    tolerances = gate_mod.parse_tolerances(args.tolerance)
    base = Path(args.baseline)
    for f, label in ((args.junit, "--junit"), (args.summary, "--summary")):
        if f is not None:
            check_output_file(f, label)
    doc = None
    if args.update_baseline:
        check_output_file(base, "--baseline")
    else:
        if not base.exists():
            raise SpecError([f"--baseline: {base}: no such file; record one first with --update-baseline"])
        doc = gate_mod.load_baseline(base)
    target, run, go = _gate_target(args, doc)
    if doc is not None:
        gate_mod.check_fits(doc, base, target)
        stored_tol = {k: float(v) for k, v in doc.get("tolerances", {}).items()}
        tolerances = {**stored_tol, **tolerances}
        unknown = sorted(k for k in tolerances if not any(k in c["kpis"] for c in doc["cells"]))
        if unknown:
            raise SpecError([f"--tolerance: {', '.join(unknown)}: not recorded in {base} (it has "
                             f"{', '.join(sorted({k for c in doc['cells'] for k in c['kpis']}))})"])
    seeds, cells = go()
    if doc is None:
        atomic_write_text(base, json.dumps(gate_mod.make_baseline(target, run, seeds, cells, tolerances),
                                           indent=1, allow_nan=True) + "\n")
        n = sum(len(c["kpis"]) for c in cells)
        _warn(f"recorded {base}: {len(cells)} factory × scenario cell(s), {n} KPIs, {len(seeds)} replications each; "
              f"gate against it with: twin gate {args.target or '--compare'} --baseline {base}\n")
        if args.json:
            sys.stdout.write(dumps({"recorded": str(base), "cells": cells}))
        return 0
    notes = []
    same = doc["target"].get("inputs") == target["inputs"] and doc.get("twin_version") == __version__
    if doc.get("twin_version") != __version__:
        notes.append(f"twin changed since the baseline ({doc.get('twin_version')} → {__version__}): judged statistically")
    if doc["target"].get("inputs") != target["inputs"]:
        notes.append("the model changed since the baseline (its input hash differs): judged statistically")
    if same:
        notes.append("same model, same twin, same seeds: every value must be identical")
    else:
        notes.append(f"paired differences over {len(seeds)} replications on the baseline's seeds; one-sided 95 % "
                     "intervals, Holm-corrected over every KPI checked; [90 % CI] shown")
    rows = gate_mod.judge(doc, cells, same, tolerances)
    verdict = gate_mod.outcome(rows)
    md = gate_mod.markdown(rows, notes)
    if args.summary is not None:
        atomic_write_text(args.summary, md)
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        try:
            with open(step, "a", encoding="utf-8") as fh:  # GitHub's file: appended to, as its docs ask
                fh.write(md)
        except OSError as e:
            _warn(f"warning: GITHUB_STEP_SUMMARY={step}: cannot append ({e.strerror or e})\n")
    if args.junit is not None:
        atomic_write_text(args.junit, gate_mod.junit(rows))
    if args.json:
        sys.stdout.write(dumps({"verdict": verdict, "notes": notes, "rows": rows,
                                "github_action_benchmark": gate_mod.benchmark_entries(rows)}))
    else:
        _say(md.rstrip("\n"))
    return 1 if verdict == "fail" else 0

def cmd_ablate(args: argparse.Namespace, argv: list[str]) -> int:
    q = ablate.quick_defaults() if args.quick else {}
    scenarios = _name_list(args.scenarios, "--scenarios") or list(q.get("scenarios") or SCENARIOS)
    warmup = args.warmup if args.warmup not in (None, "auto") else q.get("warmup", 2 * WEEK)
    if args.warmup == "auto":
        raise SpecError(["--warmup: 'auto' is for twin compare; give a duration, e.g. 2w"])
    if args.scheduler is not None and args.executor != "dask":
        raise SpecError(["--scheduler: only used with --executor dask"])
    out = check_output_dir(args.out) if args.out else None
    store = _job_store(args, argv)
    try:
        result = ablate.run(args.factory, scenarios, args.replications or q.get("replications", 5),
                            args.weeks or q.get("weeks", 26.0), warmup, seed=args.seed,
                            jobs=args.jobs or os.cpu_count() or 1, executor=args.executor,
                            scheduler=args.scheduler, progress=not args.quiet, store=store)
    except ImportError as e:
        raise SpecError([f"--executor dask: {e}"]) from None
    if result is None:
        assert store is not None
        return _shard_done(store, args.json)
    if out is not None:
        ablate.write(result, out)
    if args.json:
        sys.stdout.write(dumps({"factory": result["factory"], "meta": result["meta"], "ablation": result["ablation"]}))
        return 0
    m = result["meta"]
    _say(f"{m['factory']}: what each capability is worth (full − ablated, mean ± 95 % CI; * Holm-significant); "
         f"{m['replications']} replications, {m['weeks']:g} weeks")
    _say(ablate.markdown_table(result))
    if out is not None:
        _say(f"wrote {', '.join(str(out / w) for w in ('kpis.json', 'ablation.csv', 'runs.csv', 'report.html'))}")
    return 0


def cmd_merge(args: argparse.Namespace, parse: Any) -> int:
    """``twin merge DIR... --out OUT``: check the shards, then run their command with every job's
    result taken from them (nothing is simulated), so OUT holds the unsharded run's files."""
    store = shards.load_shards([Path(d) for d in args.shards])
    check_output_dir(args.out)
    if Path(args.out).resolve() in {Path(d).resolve() for d in args.shards}:
        raise SpecError([f"--out: {args.out} is one of the shards; the whole run goes into a folder of its own"])
    argv = [*store.command, "--out", args.out]  # what the unsharded run's files record
    try:
        inner, run = parse(argv)
    except ValueError as e:
        raise SpecError([f"{args.shards[0]}: its command 'twin {shlex.join(store.command)}': {e}"]) from None
    inner.store = store
    inner.quiet = bool(getattr(inner, "quiet", False) or args.quiet)
    _QUIET[0] = _QUIET[0] or inner.quiet
    return int(run(inner, argv))


def cmd_calibrate(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    df = read_log(args.log, parse_map(args.map))
    text, warnings = calibrate(df, name=args.name, source=str(args.log))
    atomic_write_text(args.out, text)
    if getattr(args, "json", False):  # for a script: the written spec as data and the warnings
        sys.stdout.write(dumps({"out": str(args.out), "spec": tomllib.loads(text), "warnings": warnings}))
        return 0
    for w in warnings:
        _warn(f"warning: {w}\n")
    _say(f"wrote {args.out} (fits and sample sizes in its comments); check it with: twin check {args.out} {args.log}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    spec = load(args.spec)
    df = read_log(args.log, parse_map(args.map))
    res = check(spec, df, replications=args.replications, seed=args.seed)
    differs = [r["metric"] for r in res["rows"] if r["verdict"] == "DIFFERS"]
    if args.json:
        sys.stdout.write(dumps(res))
        return 1 if differs else 0  # a gate too: a CI step fails when the model and the line disagree
    how = "the log's releases replayed" if res["replayed"] else "the spec's saturated source"
    _say(f"{args.spec} against {args.log}: {res['horizon'] / HOUR:.1f} h with {how}, {res['replications']} "
          "replications (simulated mean ± 95 % CI; the log is judged against the prediction interval of one run, "
          "Holm over every row: a right model differs anywhere in 5 % of logs)")
    _say(f"  {'measure':<28}{'log':>12}{'simulated':>24}   ")
    for r in res["rows"]:
        scale = HOUR if r["metric"] == "lead_time_mean_s" else 1.0
        name = "lead_time_mean_h" if scale != 1.0 else r["metric"]
        _say(f"  {name:<28}{r['log'] / scale:>12.4g}{r['sim_mean'] / scale:>14.4g} ± {r['sim_ci95'] / scale:<8.2g}"
              f"{r['verdict']}")
    for r in res["rows"]:
        if r["verdict"] == "cannot tell":
            _warn(f"note: {r['metric']}: the runs scatter so much that this log cannot tell a lead time "
                  f"{r['undetectable_factor']:.1f}× off from the right one; a log about "
                  f"{math.ceil(r['log_length_needed'])}× as long ({format_duration(res['horizon'] * r['log_length_needed'])}) "
                  "could see a factor of 3\n")
    if differs:
        _warn(f"{len(differs)} of {len(res['rows'])} measures differ ({', '.join(differs)}): exit 1\n")
    return 1 if differs else 0


def _speed(text: str) -> float | None:
    """``--speed``: ``3600x`` (or ``3600``) times faster than the line, ``max``: no waiting."""
    t = text.strip().lower()
    if t == "max":
        return None
    try:
        v = float(t[:-1] if t.endswith("x") else t)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise SpecError([f"--speed: {text!r} is not a speed-up like 3600x, 1x or max"])
    return v


def cmd_replay(args: argparse.Namespace) -> int:
    df = read_log(args.log, parse_map(args.map))
    speed = _speed(args.speed)
    n = live.replay(df, args.broker, args.topic_prefix, speed)
    _warn(f"published {n:,} events of {args.log} on {args.topic_prefix}/events\n")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    spec = load(args.spec)
    errors = snapshot.problems(snapshot.Snapshot(), spec, args.spec)
    if errors:  # a line the snapshot cannot carry cannot be mirrored
        raise SpecError(errors)
    live.parse_broker(args.broker)
    if args.forecasts:
        check_output_file(args.forecasts, "--forecasts")
    twin = live.LiveTwin(spec, args.every, args.horizon, args.replications, args.seed, args.heartbeat)
    page = livepage.serve(args.serve, spec) if args.serve else None
    out = open(args.forecasts, "a", encoding="utf-8") if args.forecasts else None  # noqa: SIM115 - appended as it goes
    try:
        rc = live.run_live(twin, args.broker, args.topic_prefix, args.until_idle, out,
                           on_state=page.update if page is not None else None)
    finally:
        if out is not None:
            out.close()
        if page is not None:
            page.close()
    if args.score:
        scored = live.score_live(twin)
        if scored is None:
            _warn("no forecast's horizon has passed yet: nothing to score\n")
        else:
            _say(_scores_text([scored]))
    return rc


def _scores_text(scores: list[Any]) -> str:
    lines = [f"  {'horizon':<10}{'forecasts':>10}{'P10-P90 coverage':>20}{'95 % CI':>18}{'PIT coverage':>15}{'CRPS':>10}"]
    for s in scores:
        lines.append(f"  {format_duration(s.horizon):<10}{s.n:>10}{s.coverage:>19.1%} "
                     f"{'[' + format(s.coverage_ci[0], '.0%') + ', ' + format(s.coverage_ci[1], '.0%') + ']':>17}"
                     f"{s.pit_coverage:>15.1%}{s.crps:>10.2f}")
    lines.append("  nominal coverage 80 %; PIT coverage counts an outcome equal to a band edge by the randomised PIT "
                 "(integer counts tie with the band's edges); CRPS in good units, lower is better")
    return "\n".join(lines)


def cmd_backtest(args: argparse.Namespace) -> int:
    spec = load(args.spec)
    errors = snapshot.problems(snapshot.Snapshot(), spec, args.spec)
    if errors:
        raise SpecError(errors)
    df = read_log(args.log, parse_map(args.map))
    horizons = args.horizon or [HOUR, 4 * HOUR, 8 * HOUR]
    try:
        scores = live.backtest(spec, df, args.every, horizons, args.replications, args.seed)
    except live.EventError as e:
        raise SpecError([f"{args.log}: {e}"]) from None
    if args.json:
        sys.stdout.write(dumps({"log": str(args.log), "spec": str(args.spec), "every": args.every,
                                "scores": [s.as_dict() for s in scores]}))
        return 0
    _say(f"{args.spec} forecasting {args.log} every {format_duration(args.every)} "
         f"({args.replications} runs per forecast, seed {args.seed}):")
    _say(_scores_text(scores))
    return 0


def _shifting_text(summary: dict[str, Any]) -> str:
    sb = summary.get("bottleneck_shifting") or {}
    top = sorted(sb.items(), key=lambda kv: -(kv[1]["sole"] + kv[1]["shifting"]))[:3]
    if not top:
        return ""
    return " (active-period method: " + ", ".join(f"{n} sole {v['sole']:.0%} + shifting {v['shifting']:.0%}"
                                                  for n, v in top) + ")"


def _pm(d: dict[str, float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    m, h = d["mean"], d["ci95"]
    if m != m:  # NaN
        return "n/a"
    s = fmt.format(m * scale)
    if h == h:
        s += " ± " + fmt.format(h * scale)
    return s


def _pm_time(d: dict[str, float]) -> str:
    """A duration KPI (s) in the unit a person reads best: s, min or h."""
    scale, unit = reading_unit(d["mean"])
    return f"{_pm(d, scale, '{:.2f}' if unit == 'h' else '{:.1f}')} {unit}"


# the station table of `twin run`: (field, heading, width)
_STATION_COLUMNS = [*((i.key, i.heading, max(8, len(i.heading) + 2)) for i in STATE_TABLE.values()),
                    ("availability", "avail", 8), ("technical_availability", "tech.av", 9), ("oee", "OEE", 8)]
_AVAIL_NOTE = ("  avail = ISO 22400 availability (producing ÷ planned busy time: idle, blocked and starved time "
               "count against it); tech.av = time not down ÷ planned busy time (the machine's own reliability)")


def _lost_line(k: dict[str, Any]) -> str:
    """Arrivals turned away at a full first buffer (a Poisson source), beside throughput: they
    are demand the line never saw, and the throughput alone does not show them."""
    if not k.get("lost_units", {}).get("mean", 0.0) > 0:
        return ""
    return (f"  lost arrivals   {_pm(k['lost_units'], fmt='{:,.0f}')} units, "
            f"{_pm(k['lost_share'], 100.0, '{:.1f}')} % of arrivals (turned away at a full first buffer)")


def format_table(summary: dict[str, Any]) -> str:
    k = summary["kpis"]
    quality = [f"{_pm(k[key], fmt='{:,.0f}')} {label}" for key, label in
               (("scrap_units", "scrapped"), ("rework_units", "reworked"), ("escaped_units", "escaped"))
               if key in k and k[key]["mean"] > 0]
    lines = [
        f"{summary.get('spec', '')}: {summary['replications']} replications, horizon "
        f"{format_duration(summary['horizon'])}, "
        + (f"from the state at t = {format_duration(summary['from_state']['time'])} ({summary['from_state']['file']})"
           if "from_state" in summary else f"warm-up {format_duration(summary['warmup'])}")
        + f", seed {summary['seed']} (mean ± 95 % CI)",
        f"  throughput      {_pm(k['throughput_per_hour'], fmt='{:.2f}')} units/h",
        f"  good units      {_pm(k['good_units'], fmt='{:,.0f}')}" if "good_units" in k else "",
        _lost_line(k),
        f"  defects         {'; '.join(quality)} units" if quality else "",
        f"  lead time mean  {_pm_time(k['lead_time_mean_s'])}",
        f"  lead time p95   {_pm_time(k['lead_time_p95_s'])}",
        f"  WIP             {_pm(k['wip_mean'], fmt='{:.2f}')} units",
        f"  OEE             {_pm(k['oee'])} (bottleneck availability × effectiveness × the line's quality ratio)",
        f"  unit cost       {_pm(k['unit_cost'], fmt=money_format(summary.get('currency', 'USD')))} per good unit"
        if k.get('cost_total', {}).get('mean') else "",
        # a line fed by arrivals: its fill rate is the share let in, which the lost line already says
        f"  fill rate       {_pm(k['fill_rate'])}" if "fill_rate" in k and not _lost_line(k) else "",
        f"  bottleneck      {summary['bottleneck']}" + _shifting_text(summary),
        "",
        f"  {'station':<18}" + "".join(f"{label:>{w}}" for _, label, w in _STATION_COLUMNS),
    ]
    # drop the optional rows a spec without costs or orders does not have (keep the blank separator)
    lines = [ln for i, ln in enumerate(lines) if ln != "" or i == len(lines) - 2]
    if summary["replications"] <= 2:
        lines.insert(1, f"  caution: {summary['replications']} replication(s) give wide intervals; use more for decisions")
    if summary.get("nothing_made"):
        lines.insert(1, f"  nothing made: {summary['nothing_made']}")
    for name, st in summary["stations"].items():
        row = f"  {name[:17]:<18}"
        for f, _, w in _STATION_COLUMNS:
            row += f"{st[f]['mean']:>{w}.3f}"
        lines.append(row)
    lines.append(_AVAIL_NOTE)
    return "\n".join(lines)

