"""Engine speed: twin against a bare-SimPy script on the reference line R1.

R1: 5 stations in series, exponential(mean 1 s) processing, buffers of 2, saturated
source. Both run in this process until ``units`` units have finished; the ratio
bare/twin time is twin's speed relative to bare SimPy (target >= 0.8, with twin's
full state recording on). Run: ``python -m benchmarks.speed [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import simpy

import twin

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
    from twin.model import Model
    from twin.results import build

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
    model.counters_at_warmup = model.counters()
    model.env.run(until=finished)
    t1 = time.perf_counter()
    model.counters_at_end = model.counters()
    build(model, 0.0, model.env.now)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 units instead of 200,000")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
