"""``python -m benchmarks.reprice [--quick]``: what a price draw of ``twin compare --uncertainty``
costs when the runs are priced again (exact re-pricing of their cost bases) against simulating
them again, in one run on the same jobs.

One behavioural world is the grid's jobs (the three reference factories × the scenarios ×
replications); a price draw changes every price range of ``lines/uncertainty.toml``. Both paths
are timed in CPU seconds of this process, and the re-priced money KPIs of one draw are checked
against a re-simulation with the same prices set (``--set``): they must agree to 1e-9 relative.
"""

from __future__ import annotations

import argparse
import math
import time

from twin import uncertainty
from twin.compare import FACTORIES, price_worlds, run_world_job
from twin.cost import prices_of
from twin.scenario import load_scenario
from twin.spec import load, resolve

WEEK = 604800.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="baseline only, 2 weeks, 2 replications")
    ap.add_argument("--price-draws", type=int, default=200)
    args = ap.parse_args(argv)
    scenarios = ["baseline"] if args.quick else ["baseline", "surge"]
    weeks = 2.0 if args.quick else 6.0
    reps = 2
    pars, src = uncertainty.load()
    specs = {f: load(resolve(f)) for f in FACTORIES}
    d = uncertainty.draws(pars, src, specs, 1, seed=1, price_draws=args.price_draws)
    scen = {s: {**load_scenario(s).model_dump(mode="python"), "name": s} for s in scenarios}
    t0 = time.process_time()
    jobs = [run_world_job(d.worlds[0][f], f, scen[s], r, 1000 + r, weeks, WEEK, 0)
            for s in scenarios for f in FACTORIES for r in range(reps)]
    sim = time.process_time() - t0
    t0 = time.process_time()
    combos, _ = price_worlds(jobs, pars, d)
    price = (time.process_time() - t0) / len(d.v)
    # the check: draw 0's prices set on the specs and simulated again
    worst = 0.0
    want = {}
    for f in FACTORIES:
        spec = d.worlds[0][f]
        p0 = uncertainty.priced(prices_of(spec), pars, d, 0, f)
        over = {}
        for j in d.price:
            par = pars.parameter[j]
            if par.factory in ("*", f):
                over[par.path] = uncertainty.value_of(par, float(d.v[0, d.price.index(j)]))
        assert p0 is not None
        again = [run_world_job(spec.with_overrides(over), f, scen[s], r, 1000 + r, weeks, WEEK, 0)
                 for s in scenarios for r in range(reps)]
        for s in scenarios:
            v = [a["kpis"]["unit_cost"] for a in again if a["scenario"] == s]
            want[(s, f)] = sum(v) / len(v)
    got = combos[combos["price_draw"] == 0].set_index(["scenario", "factory"])["unit_cost"]
    for key, v in want.items():
        worst = max(worst, abs(float(got[key]) - v) / max(1.0, abs(v)))
    print(f"one world: {len(jobs)} jobs ({', '.join(scenarios)}; {weeks:g} weeks, {reps} replications, 3 factories)")
    print(f"  simulating the world:        {sim:8.3f} s CPU")
    print(f"  re-pricing it, per draw:     {price * 1e3:8.3f} ms CPU ({len(d.v)} draws)")
    print(f"  a price draw is {sim / price:,.0f}x cheaper by re-pricing (target: >= 20x)")
    print(f"  re-priced unit cost vs re-simulated with the prices set: worst relative gap {worst:.1e}")
    if not (worst <= 1e-9 and math.isfinite(worst)):
        print("FAIL: re-pricing does not match the re-simulation")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
