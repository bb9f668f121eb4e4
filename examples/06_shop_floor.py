"""Shop-floor and supply losses on one small electronics line: what minor stops, a speed loss,
retests, a repair loop, a burn-in oven, one AGV and a component shortage each take away.

    python examples/06_shop_floor.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import twin


def line(**extra: object) -> twin.Spec:
    """SMT → test → burn-in → packing, with the losses named in ``extra`` switched on."""
    smt = dict(name="smt", process_time=twin.Lognormal(mean=20, cv=0.05))
    test = dict(name="test", process_time=18, buffer=4)
    oven = dict(name="burn_in", process_time="30min", servers=4, batch=twin.Batch(size=40, max_wait="10min"))
    if extra.get("losses"):
        smt.update(minor_stops=twin.MinorStops(every=twin.Exponential(mean="20min"), duration="2min"), speed_loss=1.05)
    if extra.get("loops"):
        test.update(routing={"test": 0.05, "repair": 0.03})
    stations = [twin.Station(**smt), twin.Station(**test), twin.Station(**oven),
                twin.Station(name="pack", process_time=10, buffer=4),
                twin.Station(name="repair", process_time=twin.Exponential(mean="10min"), servers=2)]
    spec: dict = dict(name="smt line", stations=stations, source=twin.Source(kind="poisson", rate_per_hour=120),
                      products=[twin.Product(name="board", route=["smt", "test", "burn_in", "pack"],
                                             bom={"chip": 1} if extra.get("supply") else {})])
    if extra.get("agv"):
        spec["transport"] = [twin.Transport(name="agv", vehicles=3, travel_time=20, load_time=10, unload_time=10,
                                            moves=[["burn_in", "pack"]])]
    if extra.get("supply"):
        spec["components"] = [twin.Component(name="chip", reorder_point=300, order_qty=600,
                                             supplier=twin.Supplier(lead_time=twin.Lognormal(mean="3h", cv=0.3)))]
    return twin.Spec(**spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="example-out")
    args = ap.parse_args(argv)
    horizon, reps = ("2d", 2) if args.quick else ("2w", 5)
    steps = [("ideal line", {}), ("+ minor stops, speed loss", {"losses": True}),
             ("+ retests, repair loop", {"losses": True, "loops": True}),
             ("+ three AGVs after the oven", {"losses": True, "loops": True, "agv": True}),
             ("+ a component store", {"losses": True, "loops": True, "agv": True, "supply": True})]
    print(f"{'line':28s} {'units/h':>9s} {'lead time h':>12s} {'smt OEE':>8s} {'smt eff.':>9s} {'no material':>12s}")
    last = None
    for label, extra in steps:
        res = twin.simulate(line(**extra), horizon=horizon, warmup="4h", replications=reps, seed=3)
        s = res.summary()
        k, smt = s["kpis"], s["stations"]["smt"]
        print(f"{label:28s} {k['throughput_per_hour']['mean']:9.1f} {k['lead_time_mean_s']['mean'] / 3600:12.2f} "
              f"{smt['oee']['mean']:8.3f} {smt['effectiveness']['mean']:9.3f} "
              f"{smt['starved_material']['mean']:12.3f}")
        last = res
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    twin.report.station_states(last).write_html(out / "shop_floor_states.html", include_plotlyjs=True)
    print(f"wrote {out / 'shop_floor_states.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
