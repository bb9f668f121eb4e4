"""Optimisation speed (``python -m benchmarks.optimization [--quick]``).

The buffer-allocation case of the tests: a saturated three-station exponential line
(mean times 1.0, 1.2 and 0.9 s) sharing four buffer places between its two buffers. The
exact throughput of every allocation comes from the line's Markov chain (the solver of
``tests/test_optimize.py``), so the benchmark knows the optimum. It prints

- trials per minute of ``twin.optimize`` with TPE (the grid is switched off by giving a
  trial budget smaller than the space), and
- the time (and trials) until the best design found so far is within 1 % of the exact
  optimum.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import twin
from twin import optimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_optimize import tandem_throughput  # noqa: E402 - the exact solver lives with the tests

MEANS = [1.0, 1.2, 0.9]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (CI)")
    args = ap.parse_args(argv)
    spec = twin.validate({"name": "tandem", "source": {"kind": "saturated"}, "stations": [
        {"name": n, "process_time": {"dist": "exponential", "mean": m}, **({"buffer": 0} if n != "a" else {})}
        for n, m in zip("abc", MEANS)]})
    mu = [1 / m for m in MEANS]
    places = 4
    exact = {(b, c): tandem_throughput(mu, [b, c]) * 3600 for b in range(places + 1) for c in range(places + 1)
             if b + c <= places}
    optimum = max(exact.values())
    trials = 12  # fewer than the 15 feasible designs: TPE, not the exhaustive grid
    horizon = 5000.0 if args.quick else 20000.0
    space = [optimize.parse_dimension(f"stations.{s}.buffer=0..{places}") for s in "bc"]
    t0 = time.perf_counter()
    res = optimize.optimize(spec, space, [("throughput_per_hour", "maximize")],
                            [f"stations.b.buffer + stations.c.buffer <= {places}"], trials=trials,
                            replications=2, horizon=horizon, warmup=200.0, seed=1, jobs=1, confirm=1)
    wall = time.perf_counter() - t0
    rows = res["trials"]
    within = next((i + 1 for i, r in enumerate(rows)
                   if exact[(r["stations.b.buffer"], r["stations.c.buffer"])] >= 0.99 * optimum), None)
    per_trial = wall / len(rows)
    print(f"optimisation benchmark: {len(rows)} trials of 2 replications x {horizon:g} s in {wall:.1f} s "
          f"({60 / per_trial:.1f} trials/min, one process)")
    if within is None:
        print("  no trial came within 1 % of the exact optimum")
    else:
        print(f"  within 1 % of the exact optimum ({optimum:.1f} units/h) after {within} trials, "
              f"about {within * per_trial:.1f} s")
    b = res["best"]["params"]
    print(f"  pick {b} exact {exact[(b['stations.b.buffer'], b['stations.c.buffer'])]:.1f} units/h "
          f"({exact[(b['stations.b.buffer'], b['stations.c.buffer'])] / optimum:.2%} of the optimum)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
