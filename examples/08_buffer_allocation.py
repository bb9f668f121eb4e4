"""Buffer allocation: share a fixed number of buffer places between the stations of a
four-station line so that it makes the most, with twin.optimize (optuna), and compare the
pick with its runners-up on fresh common seeds.

    python examples/08_buffer_allocation.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import twin
from twin import optimize, optimize_report

# a saturated four-station line with exponential times; the third station is the slowest
LINE = {
    "name": "four-station line",
    "source": {"kind": "saturated"},
    "stations": [
        {"name": "a", "process_time": {"dist": "exponential", "mean": 1.0}},
        {"name": "b", "process_time": {"dist": "exponential", "mean": 1.1}, "buffer": 0},
        {"name": "c", "process_time": {"dist": "exponential", "mean": 1.25}, "buffer": 0},
        {"name": "d", "process_time": {"dist": "exponential", "mean": 0.9}, "buffer": 0},
    ],
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="example-out")
    args = ap.parse_args(argv)
    spec = twin.validate(LINE)
    places = 6
    space = [optimize.parse_dimension(f"stations.{s}.buffer=0..{places}") for s in "bcd"]
    result = twin.experiment.optimize(
        spec, space, [("throughput_per_hour", "maximize")],
        [f"stations.b.buffer + stations.c.buffer + stations.d.buffer <= {places}"],
        trials=12 if args.quick else 40, replications=2 if args.quick else 3,
        horizon=5000.0 if args.quick else 30000.0, warmup=200.0, seed=1, jobs=1 if args.quick else 2)
    print(optimize_report.describe(result))
    best = result["best"]
    print("best:", best["params"], f"{best['kpis']['throughput_per_hour']['mean']:.1f} units/h")
    for r in result["runners_up"]:
        d = r["vs_best"]
        print("then:", r["params"], f"best - this {d['diff_mean']:+.1f} ± {d['ci95']:.1f} units/h")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "08_buffer_allocation.html").write_text(optimize_report.html_page(result, "Buffer allocation"))
    (out / "08_best.toml").write_text(optimize_report.best_spec(spec, result).to_toml())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
