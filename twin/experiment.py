"""Replications with common random numbers and Student-t confidence intervals."""

from __future__ import annotations

import itertools
import json
import math
import os
from typing import Any

import numpy as np
import pandas as pd

from . import serial
from .dists import parse_duration
from .model import PROGRESS_STEPS
from .results import Results
from .limits import MAX_SWEEP_RUNS
from .shards import JobStore, share_of
from .snapshot import Snapshot
from .snapshot import load as load_snapshot
from .runs import EXECUTORS, _progress, check_run_times, map_jobs, progress_bar, replication_seed, run_once
from .spec import MAX_REPLICATIONS, MAX_SEED, Spec, SpecError, load, validate
from .stats import STATION_FIELDS, mean_ci, mser, select_best, summarize, t975
from .units import HOUR
from .watch import Watch



def optimize(*args: Any, **kwargs: Any) -> Any:
    """:func:`twin.optimize.optimize` (optuna is imported on the first call, not with twin)."""
    from .optimize import optimize as run

    return run(*args, **kwargs)


__all__ = ["run_once", "simulate", "stack", "sweep", "sweep_table", "optimize", "map_jobs", "replication_seed",
           "mean_ci", "summarize", "t975", "STATION_FIELDS", "EXECUTORS", "check_run_times", "progress_bar"]


def checked_spec(spec: Any, source: str = "<spec>") -> Spec:
    """``spec`` as a valid :class:`Spec`: a Spec is validated again as a whole (a field assigned
    after loading, ``spec.stations[0].servers = 0``, is checked like one in a file), a path or a
    built-in name is loaded, a dict validated; anything else is a :class:`SpecError`."""
    if isinstance(spec, Spec):
        return validate(spec.model_dump(mode="python", by_alias=True), source=source)
    if isinstance(spec, (str, os.PathLike)):
        return load(spec)
    if isinstance(spec, dict):
        return validate(spec, source=source)
    raise SpecError([f"{source}: expected a twin.Spec (twin.load or twin.validate), a spec file's path, a "
                     f"built-in factory's name or a dict, got {type(spec).__name__}"])


def checked_count(name: str, value: Any, low: int, high: int) -> int:
    """An integer argument in ``[low, high]``: 2.0 is 2, but 2.5, True and "2" are refused
    (:class:`SpecError` naming ``name``), never truncated."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok and isinstance(value, (float, np.floating)) and float(value).is_integer():
        ok, value = True, int(value)
    if not ok:
        raise SpecError([f"{name}: must be a whole number, got {value!r}"])
    if not low <= int(value) <= high:
        raise SpecError([f"{name}: must be between {low} and {high}, got {int(value)}"])
    return int(value)


def mser_warmup(res: Results, spec: Spec) -> tuple[float, str]:
    """The warm-up (s) MSER finds in the hourly WIP of ``res`` (replications run from t = 0):
    the largest truncation over the replications, and a note of the method. Batches are 5 hours
    (MSER-5), or a week when the spec works to calendars, so that batches hold whole shift cycles."""
    weekly = bool(spec.calendars)
    batch = 168 if weekly else 5
    ts = res.timeseries
    groups = ts.groupby("replication") if "replication" in ts else [(0, ts)]
    d_hours = max(mser(g["wip"].to_numpy(), batch=batch) for _, g in groups)
    return float(d_hours) * HOUR, (f"MSER on {'weekly' if weekly else '5-hour'} batch means of the hourly WIP, "
                                     "the largest truncation over the replications")


def simulate(spec: Spec, horizon: float | str | None = None, warmup: float | str | None = None,
             seed: int | None = None, replications: int | None = None, progress: bool = False,
             state: Snapshot | str | None = None, watch: Watch | None = None) -> Results:
    """Run ``replications`` independent replications and stack their tables.

    Durations are seconds or strings with units; ``None`` takes the spec's ``[run]`` value.
    Each table gains a ``replication`` column. ``state``: start every replication from this
    snapshot of the line (:mod:`twin.snapshot`, a :class:`~twin.snapshot.Snapshot` or the path of
    its JSON file) at its time, with no warm-up; ``horizon`` then counts from the snapshot's time.
    ``watch``: the first replication also records what a replay draws (:mod:`twin.watch`, the same
    results), and its record is the stacked results' ``record``.
    """
    if state is not None and not isinstance(state, Snapshot):
        state = load_snapshot(state)
    spec = checked_spec(spec)
    h = spec.run.horizon if horizon is None else parse_duration(horizon)
    w = (spec.run.warmup if state is None else 0.0) if warmup is None else parse_duration(warmup)
    s = spec.run.seed if seed is None else checked_count("seed", seed, 0, MAX_SEED)
    n = spec.run.replications if replications is None else checked_count("replications", replications, 1,
                                                                           MAX_REPLICATIONS)
    check_run_times(h, w)
    parts: list[Results] = []
    with progress_bar(n * PROGRESS_STEPS, "simulating", enabled=progress) as bar:
        for r in range(n):
            done = r * PROGRESS_STEPS

            def tick(frac: float, done: int = done) -> None:
                bar.update(done + round(frac * PROGRESS_STEPS) - bar.n)

            parts.append(run_once(spec, h, w, replication_seed(s, r), progress=tick if bar.on else None, state=state,
                                  watch=watch if r == 0 else None))
            if r > 0:
                parts[-1].record = None  # only the watched replication's record is kept
    out = stack(parts, extra={"horizon": h, "warmup": w, "seed": s, "replications": n, "spec": spec.name})
    if watch is not None:
        out.record = parts[0].record
    return out


def stack(parts: list[Results], extra: dict[str, Any] | None = None) -> Results:
    def cat(name: str, keep_index: bool = False) -> pd.DataFrame:
        frames = []
        for r, p in enumerate(parts):
            df = getattr(p, name)
            df = df.reset_index() if keep_index else df.copy()
            df.insert(0, "replication", r)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)

    return Results(lots=cat("lots"), states=cat("states"), timeseries=cat("timeseries"), kpis=cat("kpis"),
                   stations=cat("stations", keep_index=True), costs=cat("costs"), orders=cat("orders"),
                   scraps=cat("scraps"), extra=dict(extra or {}))


def _kpi_row(res: Results) -> dict[str, Any]:
    return res.kpis.iloc[0].to_dict()


def _sweep_job(spec: Spec, horizon: float, warmup: float, seed: int) -> dict[str, Any]:
    return _kpi_row(run_once(spec, horizon, warmup, seed))


def sweep(spec: Spec, grid: dict[str, list[Any]], horizon: float | str | None = None,
          warmup: float | str | None = None, seed: int | None = None, replications: int | None = None,
          jobs: int = 1, executor: str = "local", scheduler: str | None = None,
          progress: bool = False, source: str = "<sweep>", engine: str = "auto",
          store: JobStore | None = None) -> pd.DataFrame:
    """Run ``spec`` at every combination of the override values in ``grid`` and return one
    row per point and replication: the grid's columns, ``replication`` and every KPI.

    ``grid`` maps dotted spec paths (as in :meth:`Spec.with_overrides`) to value lists, e.g.
    ``{"stations.smt.servers": [1, 2, 3], "demand.base_per_week": [150000, 200000]}``.
    Every point uses the same replication seeds (common random numbers), so differences
    between points are the parameters', not noise. Jobs run on ``executor`` as in
    :func:`map_jobs`; the rows come back in grid order whatever the executor. Summarise
    with :func:`sweep_table`. Durations are seconds or strings with units. Every point is
    validated before anything runs; :class:`SpecError` lists the problems of all of them
    (prefixed with ``source``). ``engine`` (:data:`twin.serial.ENGINES`): ``auto`` computes
    saturated serial lines by their exact recursion (:mod:`twin.serial`, the same results),
    ``simpy`` always runs events; ``df.attrs["engine"]`` and ``["engine_why_not"]`` say which ran.
    With a ``store`` (:class:`twin.shards.JobStore`), a shard runs its share of the runs and
    returns an empty frame; a merge takes every run from the shards.
    """

    spec = checked_spec(spec, source)
    h = spec.run.horizon if horizon is None else parse_duration(horizon)
    w = spec.run.warmup if warmup is None else parse_duration(warmup)
    s = spec.run.seed if seed is None else checked_count("seed", seed, 0, MAX_SEED)
    n = spec.run.replications if replications is None else checked_count("replications", replications, 1,
                                                                           MAX_REPLICATIONS)
    check_run_times(h, w, source)
    if not isinstance(grid, dict):
        raise SpecError([f"{source}: grid: a dict of dotted spec paths to lists of values, got {type(grid).__name__}"])
    empty = [k for k, v in grid.items() if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) == 0]
    if empty:
        raise SpecError([f"{source}: {k}: an axis needs a list of at least one value, got {grid[k]!r}" for k in empty])
    keys = list(grid)
    run_keys = [k for k in keys if k == "run" or k.startswith("run.")]
    if run_keys:
        raise SpecError([f"{source}: {k}: a sweep runs every point with the same run settings (common random "
                         "numbers); give the horizon, warm-up, seed and replications as arguments "
                         "(--horizon, --warmup, --seed, --replications)" for k in run_keys])
    n_points = math.prod(len(grid[k]) for k in keys)
    if n_points * n > MAX_SWEEP_RUNS:
        raise SpecError([f"{source}: the grid has {n_points:,} points x {n} replications = {n_points * n:,} runs, "
                         f"more than {MAX_SWEEP_RUNS:,}; narrow an axis ({', '.join(f'{k}: {len(grid[k]):,} values' for k in keys)}) "
                         "or search the space with twin optimize"])
    points = list(itertools.product(*(grid[k] for k in keys)))
    if len(set(map(_point_label, points))) < len(points):
        raise SpecError([f"{source}: a value is given twice: its points would pool copies of the same replications"])
    specs: list[Spec] = []
    problems: list[str] = []
    for p in points:
        try:
            specs.append(spec.with_overrides(dict(zip(keys, p)), source=source))
        except SpecError as e:
            problems += [x for x in e.problems if x not in problems]
    if problems:
        raise SpecError(problems)
    how, why_not = serial.choose(specs, engine)
    args = [(sp, h, w, replication_seed(s, r)) for sp in specs for r in range(n)]
    rows: list[dict[str, Any] | None] = [None] * len(args)
    if how == "serial":
        done = serial.map_runs(_kpi_row, [(a[0], a[3]) for a in args], h, w, jobs=jobs, executor=executor,
                               scheduler=scheduler, store=store, stage="sweep")
    else:
        done = map_jobs(_sweep_job, args, jobs=jobs, executor=executor, scheduler=scheduler, store=store,
                        stage="sweep")
    for i, k in _progress(done, progress, "sweep", total=share_of(store, len(args))):
        rows[i] = {**dict(zip(keys, map(_cell, points[i // n]))), "replication": i % n, **k}
    if store is not None and store.sharding:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    out.attrs["grid"] = keys
    out.attrs["engine"] = how
    out.attrs["engine_why_not"] = why_not
    return out


SWEEP_SELECTION = [("throughput_per_hour", "high"), ("lead_time_mean_s", "low"), ("unit_cost", "low"),
                   ("fill_rate", "high")]


def sweep_selection(df: pd.DataFrame, keys: list[str] | None = None, pcs: float = 0.95,
                    relative_delta: float = 0.01) -> dict[str, Any]:
    """Per KPI of :data:`SWEEP_SELECTION` present in a :func:`sweep` result: the best point by the
    Clark-Yang selection procedure with common random numbers (:func:`twin.stats.select_best`),
    with an indifference zone of ``relative_delta`` (1 %) of the best point's mean."""
    keys = list(keys or df.attrs.get("grid") or [])
    out: dict[str, Any] = {}
    for kpi, better in SWEEP_SELECTION:
        if kpi not in df or not pd.api.types.is_numeric_dtype(df[kpi]) or not df[kpi].notna().any():
            continue
        samples = {}
        for point, g in df.groupby(keys, sort=False):
            point = point if isinstance(point, tuple) else (point,)
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, point))
            samples[label] = g.sort_values("replication")[kpi].to_numpy(dtype=float)
        means = [float(np.nanmean(v)) for v in samples.values()]
        finite = [m for m in means if np.isfinite(m)]
        if not finite:
            continue
        best_mean = max(finite) if better == "high" else min(finite)
        delta = abs(best_mean) * relative_delta
        if delta > 0:  # a KPI that is zero everywhere (no costs given) has no best
            out[kpi] = select_best(samples, better, delta, pcs)
    return out


def _cell(value: Any) -> Any:
    """A grid value as a table cell: numbers and text as they are, tables and arrays as their
    JSON text (so points can be grouped and written to CSV)."""
    return value if isinstance(value, (int, float, str, bool)) else json.dumps(value, sort_keys=True)


def _point_label(point: tuple[Any, ...]) -> str:
    return json.dumps([_cell(v) for v in point], sort_keys=True)


def sweep_table(df: pd.DataFrame, kpis: list[str] | None = None, keys: list[str] | None = None) -> pd.DataFrame:
    """Per grid point of a :func:`sweep` result: the mean of each KPI and its 95 % Student-t
    half-width (``<kpi>_ci95``) over replications. ``keys``: the grid's columns (default:
    those :func:`sweep` recorded in ``df.attrs["grid"]``); ``kpis``: default all numeric ones."""
    keys = list(keys or df.attrs.get("grid") or [])
    if not keys:
        raise ValueError("pass keys=[...]: the columns that identify a grid point")
    kpis = kpis or [c for c in df.columns if c not in keys and c not in ("replication", "bottleneck")
                    and pd.api.types.is_numeric_dtype(df[c])]
    out = []
    for point, g in df.groupby(keys, sort=False):
        row = dict(zip(keys, point))
        for k in kpis:
            row[k], row[f"{k}_ci95"] = mean_ci(g[k])
        out.append(row)
    return pd.DataFrame(out)


