"""Engine speed and scale (``python -m benchmarks.speed [--quick]``).

1. R1: 5 stations in series, exponential(mean 1 s) processing, buffers of 2, saturated
   source; twin (full state recording) and a bare-SimPy script run in this process
   until ``units`` units have finished; the ratio bare/twin time is twin's speed
   relative to bare SimPy (target >= 0.8).
2. Year scale: the dark factory at baseline demand (~10 M phones in lots of 50) for a
   simulated year on one core, results included (target <= 60 s); ``--quick`` runs
   4 weeks and extrapolates.
3. Lot vs unit level (full mode): one week of the dark factory with each lot's time
   drawn in one step (moment-matched gamma) and as the sum of its units' draws;
   throughput must agree within 1 % and lead time within 5 %.
4. Growth (full mode): doubling horizon, stations and servers in turn; the cost per
   million part-steps should stay flat (linear growth).
5. Parallel (full mode): a compare grid with ``--jobs 1`` and ``--jobs 2``.
6. Event floor: one ``twin compare --quick`` job of each reference factory (baseline, 1 + 10
   weeks): its SimPy events, its run time, and the time bare SimPy needs for as many of its
   cheapest events (a process resumed by a timeout), against the CPU time a job may take for
   ``--quick`` to finish in 60 s, and the full grid in 5 min, on 2 cores. It shows how much of
   a job is SimPy's own loop, what the model's own code costs per event, and what it may cost
   for those targets to be reachable with the same events.
7. Serial fast path: R1-like lines (10 allocations of its buffers x 10 replications, 4 h each)
   by SimPy events and by the exact max-plus recursion (twin.serial), side by side in one run
   on the same seeds: CPU time of the runs alone and with their results tables, and whether
   every KPI is identical (target: the recursion >= 20x the engine's lot throughput).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

import twin
from twin import compare
from twin.units import WEEK
from twin.experiment import run_once
from twin.model import Model
from twin.results import build
from twin.scenario import apply, load_scenario

R1_STATIONS = 5


def r1_spec() -> twin.Spec:
    stations = [{"name": f"s{i}", "process_time": {"dist": "exponential", "mean": 1.0}, "buffer": 2}
                for i in range(R1_STATIONS)]
    return twin.validate({"name": "R1", "source": {"kind": "saturated"}, "stations": stations})


def bare_simpy(units: int, seed: int = 1) -> float:
    """Bare SimPy R1: one process per station, Store buffers (capacity 2 + the machine's own slot)."""
    env = simpy.Environment()
    rngs = [np.random.default_rng([seed, i]) for i in range(R1_STATIONS)]
    stores = [simpy.Store(env, capacity=2) for _ in range(R1_STATIONS - 1)]
    done = [0]
    finished = env.event()

    def station(i: int):
        rng = rngs[i]
        while True:
            if i > 0:
                part = yield stores[i - 1].get()
            else:
                part = object()
            yield env.timeout(rng.exponential(1.0))
            if i < R1_STATIONS - 1:
                yield stores[i].put(part)
            else:
                done[0] += 1
                if done[0] >= units and not finished.triggered:
                    finished.succeed()

    for i in range(R1_STATIONS):
        env.process(station(i))
    t0 = time.perf_counter()
    env.run(until=finished)
    return time.perf_counter() - t0


def twin_r1(units: int, seed: int = 1) -> tuple[float, float]:
    """twin R1 with full recording until ``units`` finish; returns (run seconds, incl. results seconds)."""
    spec = r1_spec()
    model = Model(spec, seed)
    finished = model.env.event()
    sink_finish = model.sink.finish
    count = [0]

    def finish(lot):
        sink_finish(lot)
        count[0] += lot.qty
        if count[0] >= units and not finished.triggered:
            finished.succeed()

    model.sink.finish = finish
    t0 = time.perf_counter()
    model.env.run(until=finished)
    t1 = time.perf_counter()
    build(model.finish(model.env.now))
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def year_scale(weeks: float, seed: int = 1, unit_sampling: bool = False, lot_size: int | None = None):
    """Run the dark factory at baseline for ``weeks`` (plus no warm-up); return (wall s, kpis, lots)."""
    spec = twin.load("dark-factory")
    if lot_size is not None:
        data = spec.model_dump(mode="python", by_alias=True)
        for p in data["products"]:
            p["lot_size"] = lot_size
        spec = twin.validate(data)
    horizon = weeks * WEEK
    t0 = time.perf_counter()
    res = run_once(spec, horizon, 0.0, seed, unit_sampling=unit_sampling)
    return time.perf_counter() - t0, res.kpis.iloc[0], len(res.record.releases)


def lot_vs_unit(seed: int = 1) -> None:
    t_lot, k_lot, n_lot = year_scale(1, seed)
    t_unit, k_unit, _ = year_scale(1, seed, unit_sampling=True)
    tp = k_unit["throughput_per_hour"] / k_lot["throughput_per_hour"] - 1
    lt = k_unit["lead_time_mean_s"] / k_lot["lead_time_mean_s"] - 1
    print("Lot vs unit level, dark factory, 1 week, lots of 50:")
    print(f"  lot draw (gamma)     {k_lot['throughput_per_hour']:9.1f} units/h  lead time {k_lot['lead_time_mean_s'] / 3600:6.2f} h"
          f"   {t_lot:6.2f} s")
    print(f"  sum of unit draws    {k_unit['throughput_per_hour']:9.1f} units/h  lead time {k_unit['lead_time_mean_s'] / 3600:6.2f} h"
          f"   {t_unit:6.2f} s")
    print(f"  difference           throughput {100 * tp:+.2f} % (target within 1 %), lead time {100 * lt:+.2f} % (target within 5 %)")
    t_one, k_one, n_one = year_scale(1, seed, lot_size=1)
    print(f"  lots of 1 unit       {k_one['throughput_per_hour']:9.1f} units/h  lead time {k_one['lead_time_mean_s'] / 3600:6.2f} h"
          f"   {t_one:6.2f} s  ({n_one:,} lots; one-piece flow has no transfer batch, so its lead time is shorter)")


def growth(base_units: int = 20_000) -> None:
    """Double horizon, stations and servers in turn on a saturated exponential line."""
    def line(n_st: int, servers: int):
        st = [{"name": f"s{i}", "servers": servers, "process_time": {"dist": "exponential", "mean": 1.0}, "buffer": 2}
              for i in range(n_st)]
        return twin.validate({"name": "g", "source": {"kind": "saturated"}, "stations": st})

    base_h = base_units * 1.45  # ~units at ~0.69/s throughput of R1
    rows = []
    for label, n_st, servers, horizon in [("base (5 stations, 1 server)", 5, 1, base_h),
                                          ("horizon x2", 5, 1, 2 * base_h),
                                          ("stations x2", 10, 1, base_h),
                                          ("servers x2", 5, 2, base_h)]:
        spec = line(n_st, servers)
        dt = float("inf")
        for _ in range(3):  # best of three: timing noise on a shared machine is one-sided
            m = Model(spec, 1, horizon)
            t0 = time.perf_counter()
            m.run(horizon)
            dt = min(dt, time.perf_counter() - t0)
        steps = sum(s.units for st in m.stations.values() for s in st.servers)
        events = steps + len(m.rec.states)  # every part-step and every recorded state change
        rows.append((label, steps, events, dt))
    print("Growth: doubling one dimension at a time (saturated exponential line); linear growth = flat cost per event")
    print(f"  {'case':<30}{'part-steps':>12}{'events':>11}{'wall s':>9}{'s per 1M events':>17}{'x base':>8}")
    for label, steps, events, dt in rows:
        print(f"  {label:<30}{steps:>12,}{events:>11,}{dt:>9.2f}{dt / events * 1e6:>17.2f}{dt / rows[0][3]:>8.2f}")


def parallel() -> None:
    grid = compare.Grid(compare.FACTORIES, ["baseline"], 4, 4.0, WEEK, 1)
    times = {}
    for jobs in (1, 2):
        t0 = time.perf_counter()
        compare.run_grid(grid, jobs=jobs)
        times[jobs] = time.perf_counter() - t0
    print(f"Parallel compare grid (3 factories x 4 replications x 4 weeks): --jobs 1 {times[1]:.1f} s, "
          f"--jobs 2 {times[2]:.1f} s, speed-up {times[1] / times[2]:.2f} (target >= 1.7 on 2 cores)")


def bare_timeouts(events: int, processes: int = 100, seed: int = 1) -> float:
    """Seconds bare SimPy takes for ``events`` timeouts spread over ``processes`` processes
    (the cheapest SimPy event: one heap push and pop and one generator resumed)."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    per = max(1, events // processes)

    def proc(delays: list[float]):
        for d in delays:
            yield env.timeout(d)

    for _ in range(processes):
        env.process(proc(rng.exponential(1.0, per).tolist()))
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0


def event_floor(weeks: float = 10.0, warmup: float = WEEK, seed: int = 1) -> None:
    """Events of one ``--quick`` compare job per factory against bare SimPy's time for as many."""
    n_scen = len(compare.SCENARIOS)
    jobs = len(compare.FACTORIES) * n_scen * 2  # twin compare --quick: 2 replications
    allowed = 60.0 * 2 / jobs  # CPU s a job may take for 60 s on 2 cores (startup and report aside)
    # the full grid: 5 replications of 2 + 26 weeks in 5 min; scaled to this job's length
    full_jobs = len(compare.FACTORIES) * n_scen * 5
    allowed_full = 300.0 * 2 / full_jobs * (warmup / WEEK + weeks) / 28.0
    base = load_scenario("baseline")
    print(f"Event floor: one twin compare --quick job (baseline, {warmup / WEEK:g} + {weeks:g} weeks); "
          f"60 s for {jobs} jobs on 2 cores allows {allowed:.2f} s a job, the full grid in 5 min "
          f"{allowed_full:.2f} s for as many weeks")
    print(f"  {'factory':<14}{'events':>11}{'run s':>8}{'us/event':>10}{'bare SimPy s':>14}{'results s':>11}"
          f"{'logic us/event':>16}{'allowed quick':>15}{'allowed full':>14}")
    for fac in compare.FACTORIES:
        spec = apply(twin.load(fac), base, weeks, warmup)
        horizon = spec.run.horizon
        model = Model(spec, seed, horizon)
        t0 = time.perf_counter()
        rec = model.run(horizon, warmup)
        t1 = time.perf_counter()
        build(rec)
        t2 = time.perf_counter()
        events = next(model.env._eid)  # SimPy numbers every scheduled event; no public counter
        bare = bare_timeouts(events)
        logic = (t1 - t0 - bare) / events * 1e6  # what the model's own code costs per event now
        room = (allowed - (t2 - t1) - bare) / events * 1e6
        room_full = (allowed_full - (t2 - t1) - bare) / events * 1e6
        print(f"  {fac:<14}{events:>11,}{t1 - t0:>8.2f}{(t1 - t0) / events * 1e6:>10.2f}{bare:>14.2f}"
              f"{t2 - t1:>11.2f}{logic:>16.2f}{room:>15.2f}{room_full:>14.2f}")


def serial_fast_path(horizon: float = 4 * 3600.0, reps: int = 10) -> None:
    """Section 7: the SimPy engine and twin.serial on the same R1-like runs."""
    from twin import serial

    base = r1_spec()
    allocations = [[2, 2, 2, 2], [0, 0, 0, 0], [1, 3, 3, 1], [4, 0, 0, 4], [0, 4, 4, 0], [8, 0, 0, 0],
                   [0, 0, 0, 8], [1, 1, 1, 1], [3, 3, 3, 3], [None, 2, None, 2]]
    specs = [base.with_overrides({f"stations.s{i + 1}.buffer": b for i, b in enumerate(a)}) for a in allocations]
    runs = [(sp, s) for sp in specs for s in range(1, reps + 1)]
    t = time.process_time()
    recs = [Model(sp, s, horizon).run(horizon, 0.0) for sp, s in runs]
    t_events = time.process_time() - t
    t = time.process_time()
    engine = [build(r) for r in recs]
    t_events_all = t_events + time.process_time() - t
    lots = sum(len(r.finishes) for r in recs)
    cols = [serial._column(sp, s) for sp, s in runs]
    t = time.process_time()
    serial._recursion(cols, horizon)
    t_cols = time.process_time() - t
    t = time.process_time()
    for c in cols[:reps]:
        serial._recursion([serial._column(c.spec, c.seed)], horizon)
    t_one = (time.process_time() - t) * len(runs) / reps
    t = time.process_time()
    fast = serial.run_many(runs, horizon, 0.0)
    t_fast_all = time.process_time() - t
    same = all(a.kpis.equals(b.kpis) and a.stations.equals(b.stations) for a, b in zip(engine, fast))
    print(f"Serial fast path: R1 (5 stations, exp(1 s)), {len(allocations)} buffer allocations x {reps} "
          f"replications, {horizon / 3600:g} h each, {lots:,} lots; CPU s")
    print(f"  SimPy events        {t_events:8.2f} s   {lots / t_events:12,.0f} lots/s")
    print(f"  recursion, 1 by 1   {t_one:8.2f} s   {lots / t_one:12,.0f} lots/s   x{t_events / t_one:5.1f}")
    print(f"  recursion, {len(runs)} cols {t_cols:8.2f} s   {lots / t_cols:12,.0f} lots/s   x{t_events / t_cols:5.1f}"
          "   (target >= 20x)")
    print(f"  with results tables {t_events_all:8.2f} s -> {t_fast_all:.2f} s   x{t_events_all / t_fast_all:5.1f}   "
          f"every KPI and station table identical: {same}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 R1 units, 4-week year-scale run, no extra studies")
    ap.add_argument("--units", type=int, default=None)
    args = ap.parse_args(argv)
    units = args.units or (20_000 if args.quick else 200_000)
    steps = units * R1_STATIONS
    bare = min(bare_simpy(units) for _ in range(3 if args.quick else 2))
    runs = [twin_r1(units) for _ in range(3 if args.quick else 2)]
    tw = min(r[0] for r in runs)
    tw_all = min(r[1] for r in runs)
    print(f"R1 ({R1_STATIONS} stations, exp(1 s), buffers 2, saturated), {units:,} units = {steps:,} part-steps")
    print(f"  bare SimPy          {bare:8.3f} s   {steps / bare:12,.0f} part-steps/s")
    print(f"  twin (recording)    {tw:8.3f} s   {steps / tw:12,.0f} part-steps/s")
    print(f"  twin + results      {tw_all:8.3f} s")
    print(f"  ratio bare/twin     {bare / tw:8.2f}   (target >= 0.8)")
    weeks = 4 if args.quick else 52
    wall, k, lots = year_scale(weeks)
    year = wall * 52 / weeks
    print(f"Year scale: dark factory at baseline, lots of 50, {weeks} weeks simulated in {wall:.1f} s "
          f"({k['good_units']:,.0f} good units, {lots:,} lots); a year {'projected' if args.quick else 'took'} "
          f"{year:.1f} s (target <= 60 s), {k['throughput_per_hour'] * 8760 / 1e6:.2f} M units/year")
    event_floor()
    serial_fast_path(horizon=3600.0 if args.quick else 4 * 3600.0)
    if not args.quick:
        lot_vs_unit()
        growth()
        parallel()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
