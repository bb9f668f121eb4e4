"""Write your own dispatch rule and compare it with the built-ins on the same seeds.

The rule sends a lot to the lane (parallel machine) that would do the fewest
changeovers: the product switches in its queue plus the one this lot would cause,
ties broken by the shortest queue.

    python examples/02_custom_dispatch.py [--quick]
"""

from __future__ import annotations

import argparse

import twin


@twin.register("dispatch", "fewest_setups")
class FewestSetups:
    """A dispatch rule: ``__init__(station)`` and ``choose(lot) -> lane index``."""

    def __init__(self, station):
        self.lanes = station.lanes

    def choose(self, lot) -> int:
        best, best_key = 0, None
        for i, lane in enumerate(self.lanes):
            if not lane.active:
                continue
            seq = [s.last_product for s in lane.servers[:1]] + [q.product for q in lane.buffer.items]
            seq = [p for p in seq if p is not None]
            switches = sum(1 for a, b in zip(seq, seq[1:]) if a != b)
            switches += 1 if seq and seq[-1] != lot.product else 0
            key = (switches, len(lane.buffer))
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best


def spec(rule: str) -> twin.Spec:
    return twin.validate({
        "name": f"three presses, {rule}",
        "source": {"kind": "poisson", "rate_per_hour": 9},
        "products": [{"name": "a", "route": ["press"], "lot_size": 5, "share": 1},
                     {"name": "b", "route": ["press"], "lot_size": 5, "share": 1}],
        "stations": [{"name": "press", "lanes": 3, "dispatch": rule,
                      "process_time": {"dist": "gamma", "mean": 60, "cv": 0.3},
                      "setup": {"default": "10min"}}],
    })


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="unused (prints only); accepted like the other examples")
    args = ap.parse_args(argv)
    horizon, reps = ("3d", 3) if args.quick else ("4w", 10)
    print(f"{'rule':28s}{'lead time (h)':>20s}{'setup share':>14s}")
    for rule in ("fixed", "shortest_queue", "least_expected_completion", "fewest_setups"):
        res = twin.simulate(spec(rule), horizon=horizon, warmup="1d", replications=reps, seed=7)
        s = res.summary()
        lt = s["kpis"]["lead_time_mean_s"]
        setup = s["stations"]["press"]["setup"]
        print(f"{rule:28s}{lt['mean'] / 3600:12.2f} ± {lt['ci95'] / 3600:5.2f}{setup['mean']:14.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
