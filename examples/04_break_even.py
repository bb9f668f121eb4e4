"""Break-even study: at which annual volume is each reference factory cheapest?
Sweeps the baseline demand and plots unit (conversion) cost against volume.

    python examples/04_break_even.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import twin

FACTORIES = ["static-line", "dark-factory", "microfactory"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="example-out")
    args = ap.parse_args(argv)
    volumes = [4e6, 10e6] if args.quick else [3e6, 5e6, 7e6, 10e6, 12e6]  # phones per year
    horizon, warmup, reps = ("9d", "2d", 1) if args.quick else ("6w", "2w", 3)
    rows = []
    for f in FACTORIES:
        base = twin.load(f)
        for v in volumes:
            over = {"demand.base_per_week": v / 52.14}
            if base.capacity.policy == "modules":  # a modular plant starts with the cells this volume needs
                from twin.policies.capacity import lane_rate_per_hour
                need = v / 8760 / (lane_rate_per_hour(base) * base.capacity.target_utilisation)
                over["capacity.initial_lanes"] = max(1, min(base.planning.lanes, int(need) + 1))
            res = twin.simulate(base.with_overrides(over), horizon=horizon, warmup=warmup, replications=reps, seed=5)
            k = res.summary()["kpis"]
            conv = k["unit_cost"]["mean"] - k["cost_material"]["mean"]
            rows.append({"factory": f, "volume_m": v / 1e6, "conversion_cost": conv,
                         "ci": k["unit_cost"]["ci95"], "fill_rate": k["fill_rate"]["mean"]})
            print(f"{f:14s} {v / 1e6:5.1f} M/year: conversion cost {conv:7.2f} per unit, "
                  f"fill rate {100 * k['fill_rate']['mean']:.1f} %")
    df = pd.DataFrame(rows)
    for v, g in df.groupby("volume_m"):
        best = g.loc[g["conversion_cost"].idxmin()]
        print(f"at {v:.1f} M/year the cheapest is {best['factory']} ({best['conversion_cost']:.2f} per unit)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    twin.report.ci_band(df, "volume_m", "conversion_cost", "ci", group="factory",
                        title="Conversion cost per good unit vs annual volume",
                        y_title="per good unit").write_html(out / "04_break_even.html", include_plotlyjs=True)
    df.to_csv(out / "04_break_even.csv", index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
