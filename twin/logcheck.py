"""Judge a spec against a line's event log (``twin check``): the log's releases replayed through
the spec, each measure's prediction interval over replications against what the log shows, Holm
over the rows for the exit code (DESIGN §12). Measurements are :mod:`twin.calibrate`'s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .calibrate import log_kpis, measure
from .runs import replication_seed, run_once
from .spec import SpecError
from .state import State
from .stats import holm, holm_levels, mean_ci, t975

STATE_COLS = tuple(State[n].key for n in ("BUSY", "SETUP", "BLOCKED", "DOWN", "MAINTENANCE", "IDLE"))  # compared by twin check
CHECK_ALPHA = 0.05
"""``twin check``'s family-wise error rate: the chance that a right model differs somewhere."""
LEAD_TIME_FACTOR = 3.0
"""The lead-time error ``twin check`` must be able to see: a log whose runs scatter so much that a
factor of 3 would pass is reported as too short to judge ("cannot tell"), not as agreeing."""
STATE_FLOOR = 0.001  # state-fraction differences below 0.1 % of the time are not reported as differing


# --------------------------------------------------------------------------- check
def check(spec: Any, df: pd.DataFrame, replications: int = 10, seed: int = 1) -> dict[str, Any]:
    """Simulate ``spec`` over the log's horizon with the log's releases; compare with the log.

    Each row: the log's value, the runs' mean, CI and 95 % prediction interval of one run (the
    lead time on the log scale), the prediction p-value ``p`` and its Holm adjustment over all
    rows, and ``verdict``: ``DIFFERS`` (Holm-adjusted p below :data:`CHECK_ALPHA`), ``ok``, or
    ``cannot tell`` for a lead time the runs scatter too much to catch a factor of
    :data:`LEAD_TIME_FACTOR` (with ``log_length_needed``: how many times longer a log would do)."""
    from scipy.stats import t as student_t  # 0.8 s of CPU to import: only when a check runs

    m = measure(df)
    h = m["horizon"]
    stations = {st.name for st in spec.stations}
    strangers = sorted(set(df["station"]) - stations)
    if strangers:
        raise SpecError([f"the log's station(s) {', '.join(strangers)} are not in the spec (stations: "
                         f"{', '.join(sorted(stations))}); a check compares like with like"])
    names = [p.name for p in spec.products]
    rel = m["releases"]
    unknown = sorted(set(rel["product"]) - set(names))
    if unknown:
        raise SpecError([f"the log's product(s) {', '.join(unknown)} are not in the spec (products: {', '.join(names)})"])
    # a saturated line pulls its own work: replaying its releases would feed a line that runs
    # a little slower than the log's with exactly its pace (a queue at utilisation 1)
    # a log that records its turned-away arrivals (``lost``) replays them too, and the spec's
    # entrance decides again which are turned away
    lossy = len(m["lost"]) > 0
    arrived = pd.concat([rel, m["lost"]]).sort_values("t", kind="stable") if lossy else rel
    replay = None if spec.source.kind == "saturated" else [
        (float(r.t), names.index(r.product), int(r.qty) if not math.isnan(r.qty) else 1)
        for r in arrived.itertuples(index=False)]
    obs = log_kpis(df, m)
    sims: list[dict[str, Any]] = []
    for r in range(replications):
        res = run_once(spec, h, 0.0, replication_seed(seed, r), replay=replay, replay_lossy=lossy)
        k = res.kpis.iloc[0]
        st = res.stations
        sims.append({"throughput_per_hour": float(k["throughput_per_hour"]),
                     "lead_time_mean_s": float(k["lead_time_mean_s"]),
                     "lost_share": float(k["lost_share"]),
                     "stations": {n: {c: float(st.loc[n, c]) for c in STATE_COLS}
                                  for n in st.index}})
    rows: list[dict[str, Any]] = []

    def add(metric: str, observed: float, values: list[float], floor: float = 0.0, ratio: bool = False) -> None:
        x = np.array(values)
        mean, ci = mean_ci(x)
        n = len(x)
        # the log is one more realisation: judge it by the prediction interval of one run; a lead
        # time (positive, right-skewed: a long repair in one run) on the log scale, where an
        # error shows as a factor
        use_log = ratio and observed > 0 and bool((x > 0).all())
        y, o = (np.log(x), math.log(observed)) if use_log else (x, observed)
        centre = float(y.mean())
        scale = float(y.std(ddof=1) * math.sqrt(1 + 1 / n)) if n > 1 else float("nan")
        pi = float(t975(n - 1) * scale) if n > 1 else float("nan")
        gap = abs(o - centre)
        tol = max(floor if not use_log else 0.0, 1e-9 * max(1.0, abs(centre)))
        if gap <= tol:
            p = 1.0
        elif not (math.isfinite(scale) and scale > 0):
            p = 0.0  # no spread in the runs and the log lies outside it
        else:
            p = float(2 * student_t.sf(gap / scale, n - 1))
        lo, hi = (math.exp(centre - pi), math.exp(centre + pi)) if use_log and math.isfinite(pi) else (
            mean - pi, mean + pi)
        rows.append({"metric": metric, "log": observed, "sim_mean": mean, "sim_ci95": ci,
                     "sim_pi95": float(pi if not use_log else (hi - lo) / 2), "pi95": [lo, hi],
                     "scale": "log" if use_log else "linear", "p": p, "within_pi": bool(p >= 0.05),
                     "_scale": scale, "_log": use_log})

    add("throughput_per_hour", obs["throughput_per_hour"], [s["throughput_per_hour"] for s in sims])
    add("lead_time_mean_s", obs["lead_time_mean_s"], [s["lead_time_mean_s"] for s in sims], ratio=True)
    if lossy and replay is not None:
        add("lost_share", obs["lost_share"], [s["lost_share"] for s in sims])
    for st, fr in obs["stations"].items():
        for c in STATE_COLS:
            if st in sims[0]["stations"] and (c != State.MAINTENANCE.key or fr[c] > 0 or
                                              any(s["stations"][st][c] > 0 for s in sims)):
                # a state the simulation never shows has no spread: differences under
                # STATE_FLOOR of the time (seconds of timestamp rounding) count as agreement
                add(f"{st}.{c}", fr[c], [s["stations"][st][c] for s in sims], STATE_FLOOR)
    # the exit code answers one question for all rows: Holm keeps the chance that a right model
    # is reported as differing anywhere at 5 % (each row at 95 % would flag it in about a third
    # of one-day logs of a three-station line)
    # a row whose runs show no spread is judged exactly (equal within its floor, or not): it
    # cannot differ by chance, so it does not widen the family of the others
    random_rows = [math.isfinite(row["_scale"]) and row["_scale"] > 0 for row in rows]
    family = [row["p"] if rnd else float("nan") for row, rnd in zip(rows, random_rows)]
    adjusted = [pa if rnd else row["p"] for row, pa, rnd in zip(rows, holm(family), random_rows)]
    levels = holm_levels(family, CHECK_ALPHA)
    for row, pa, level in zip(rows, adjusted, levels):
        row["p_holm"] = pa
        row["verdict"] = "DIFFERS" if pa < CHECK_ALPHA else "ok"
        scale, use_log = row.pop("_scale"), row.pop("_log")
        if use_log and row["verdict"] == "ok" and math.isfinite(scale) and scale > 0:
            # the widest error this row could still miss at its Holm level: beyond a factor of 3
            # the log cannot judge the lead time, and says by how much longer it would have to be
            n = replications
            half = float(student_t.isf(level / 2, n - 1) * scale)
            row["undetectable_factor"] = math.exp(half)
            if half > math.log(LEAD_TIME_FACTOR):
                row["verdict"] = "cannot tell"
                row["log_length_needed"] = (half / math.log(LEAD_TIME_FACTOR)) ** 2
    return {"horizon": h, "replications": replications, "seed": seed, "replayed": replay is not None, "rows": rows}
