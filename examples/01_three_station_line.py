"""Build a three-station line in Python, run 10 replications, print KPIs with 95 % CIs
and plot the station states.

    python examples/01_three_station_line.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import twin


def build() -> twin.Spec:
    """A cutting, welding (two failing robots) and painting line; times in seconds."""
    return twin.Spec(
        name="three-station line",
        source=twin.Source(kind="poisson", rate_per_hour=50),
        stations=[
            twin.Station(name="cut", process_time=twin.Exponential(mean=50), buffer=twin.Buffer(capacity=3)),
            twin.Station(name="weld", servers=2, buffer=3,
                         process_time=twin.Gamma(mean=110, cv=0.5),
                         failures=twin.Failures(ttf=twin.Exponential(mean="6h"),
                                                ttr=twin.Lognormal(mean="20min", cv=0.6))),
            twin.Station(name="paint", process_time=45, buffer=2),  # a bare number is a constant
        ],
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short horizon (for tests)")
    ap.add_argument("--out", default="example-out", help="folder for the figure")
    args = ap.parse_args(argv)
    spec = build()
    res = twin.simulate(spec, horizon="1d" if args.quick else "2w", warmup="2h" if args.quick else "1d",
                        replications=10, seed=42)
    s = res.summary()
    for k in ("throughput_per_hour", "lead_time_mean_s", "wip_mean", "oee"):
        print(f"{k:22s} {s['kpis'][k]['mean']:10.3f} ± {s['kpis'][k]['ci95']:.3f}")
    print(f"{'bottleneck':22s} {s['bottleneck']}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig = twin.report.station_states(res, title=spec.name)
    fig.write_html(out / "01_station_states.html", include_plotlyjs=True)
    (out / "01_line.toml").write_text(spec.to_toml())  # the same line as a spec file
    print(f"wrote {out / '01_station_states.html'} and {out / '01_line.toml'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
