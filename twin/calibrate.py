"""Fit a spec to a line's event log (``twin calibrate``): what each station's times, failures,
repairs, setups, scrap, retests and detours were, measured from the log's events, and the spec
that says so (DESIGN §12). The log's format and reader are :mod:`twin.eventlog`'s.
"""

from __future__ import annotations

import math
import textwrap
import tomllib
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import pandas as pd

from . import toml_text
from .fit import best, best_censored
from .spec import validate
from .state import State
from .units import HOUR

MIN_OBS = 30  # fewer observations than this: the fit is flagged as weak


# --------------------------------------------------------------------------- measurements
def _intervals(df: pd.DataFrame, a: str, b: str, by: list[str]) -> pd.DataFrame:
    """Pair the k-th ``a`` event with the k-th ``b`` event of the same ``by`` key (vectorised):
    rows of station, server, lot, product, qty, t0, t1."""
    cols = ["station", "server", "lot", "product", "qty"]
    sa = df[df["event"] == a]
    sb = df[df["event"] == b]
    if sa.empty or sb.empty:
        return pd.DataFrame(columns=cols + ["t0", "t1"])
    ka = sa.assign(_k=sa.groupby(by, dropna=False, sort=False).cumcount())
    kb = sb.assign(_k=sb.groupby(by, dropna=False, sort=False).cumcount())
    # keys with NaN (an empty lot on a server event) must still match: compare them as text
    keys = []
    for c in by:
        ka[f"_{c}"] = ka[c].astype(str)
        kb[f"_{c}"] = kb[c].astype(str)
        keys.append(f"_{c}")
    mg = ka.merge(kb[keys + ["_k", "t"]], on=keys + ["_k"], suffixes=("", "_b"))
    out = mg[cols].copy()
    out["t0"] = mg["t"].to_numpy()
    out["t1"] = mg["t_b"].to_numpy()
    return out.reset_index(drop=True)


def _overlap(iv: pd.DataFrame, down: pd.DataFrame) -> np.ndarray:
    """Down time of the same server inside each interval (processing excludes repairs)."""
    res = np.zeros(len(iv))
    if down.empty or iv.empty:
        return res
    key_iv = iv["station"].astype(str) + "|" + iv["server"].astype(str)
    key_dn = down["station"].astype(str) + "|" + down["server"].astype(str)
    for k, d in down.groupby(key_dn.to_numpy()):
        idx = np.nonzero((key_iv == k).to_numpy())[0]
        if not len(idx):
            continue
        d0, d1 = d["t0"].to_numpy(), d["t1"].to_numpy()
        t0, t1 = iv["t0"].to_numpy()[idx], iv["t1"].to_numpy()[idx]
        # down spells are few and sorted; each interval overlaps at most a handful of them
        lo = np.searchsorted(d1, t0, side="right")
        hi = np.searchsorted(d0, t1, side="left")
        for j, (a, b) in enumerate(zip(lo, hi)):
            if b > a:
                res[idx[j]] = np.clip(np.minimum(d1[a:b], t1[j]) - np.maximum(d0[a:b], t0[j]), 0, None).sum()
    return res


def measure(df: pd.DataFrame) -> dict[str, Any]:
    """What a log says: processing, setup, repair and maintenance intervals, time to failure,
    time between planned maintenances, routes, releases."""
    down = _intervals(df, "fail", "repair", ["station", "server"])
    pm = _intervals(df, "maint_start", "maint_end", ["station", "server"])
    # every stop of a machine renews it; planned ones end a life before its failure
    renewals = pd.concat([down.assign(_pm=False), pm.assign(_pm=True)], ignore_index=True).sort_values(
        "t0", kind="stable")
    minor = _intervals(df, "minor_start", "minor_end", ["station", "server"])
    proc = _intervals(df, "start", "end", ["station", "server", "lot"])
    stops = pd.concat([renewals[["station", "server", "t0", "t1"]], minor[["station", "server", "t0", "t1"]]],
                      ignore_index=True).sort_values("t0", kind="stable")
    proc["work"] = (proc["t1"] - proc["t0"]) - _overlap(proc, stops)
    # operating time between minor stops: the work between the end of one and the start of the next
    minor_every: dict[str, list[float]] = defaultdict(list)
    for (st, srv), g in minor.groupby(["station", "server"]):
        work = proc[(proc["station"] == st) & (proc["server"] == srv)]
        w0, w1 = work["t0"].to_numpy(), work["t1"].to_numpy()
        g = g.sort_values("t0")
        for a, b in zip(g["t1"].to_numpy()[:-1], g["t0"].to_numpy()[1:]):
            minor_every[st].append(float(np.clip(np.minimum(w1, b) - np.maximum(w0, a), 0, None).sum()))
    setups = _intervals(df, "setup_start", "setup_end", ["station", "server", "lot"])
    blocked = _intervals(df, "blocked", "unblocked", ["station", "server", "lot"])
    # operating time to failure: busy time since the last renewal (a repair or a planned
    # maintenance), per server; a life ended by planned maintenance is censored
    ttf: dict[str, list[float]] = defaultdict(list)
    pm_age: dict[str, list[float]] = defaultdict(list)  # operating time at each planned maintenance
    censored: dict[str, list[float]] = defaultdict(list)  # lives cut short by maintenance or the log's end
    for (st, srv), g in proc.groupby(["station", "server"]):
        ren = renewals[(renewals["station"] == st) & (renewals["server"] == srv)]
        work = g.sort_values("t0")
        w0, w1 = work["t0"].to_numpy(), work["t1"].to_numpy()
        last = 0.0
        for f0, f1, planned in ren[["t0", "t1", "_pm"]].itertuples(index=False):
            busy = float(np.clip(np.minimum(w1, f0) - np.maximum(w0, last), 0, None).sum())
            if planned:
                pm_age[st].append(busy)
                censored[st].append(busy)
            else:
                ttf[st].append(busy)
            last = f1
        censored[st].append(float(np.clip(w1 - np.maximum(w0, last), 0, None).sum()))
    # routes of the lots that completed theirs (last event a leave, not an arrival elsewhere)
    lot_ev = df[df["lot"].notna()]
    last_ev = lot_ev.groupby("lot", sort=False)["event"].last()
    complete = set(last_ev.index[last_ev.to_numpy() == "leave"])
    starts = lot_ev[(lot_ev["event"] == "start") & lot_ev["lot"].isin(complete)]
    seqs = starts.groupby(["product", "lot"], sort=False)["station"].agg(tuple)
    routes, passes, loops = _routes_and_loops(seqs)
    arrivals = df[df["event"] == "arrive"]
    first = arrivals.drop_duplicates("lot", keep="first")
    lost = df[df["event"] == "lost"].drop_duplicates("lot", keep="first")
    leave = df[df["event"] == "leave"]
    # units scrapped at a station: what its work ended with less what left it, over the lots whose
    # every pass there has left (a lot still inside at the end of the log is not counted)
    scrap: dict[str, tuple[float, float]] = {}
    ends = df[df["event"] == "end"]
    e_sum = ends.groupby(["station", "lot"])["qty"].agg(["sum", "count"]).add_suffix("_end")
    l_sum = leave.groupby(["station", "lot"])["qty"].agg(["sum", "count"]).add_suffix("_leave")
    both = e_sum.join(l_sum, how="inner")
    both = both[both["count_end"] == both["count_leave"]]
    for st, g in both.groupby(level="station"):
        scrap[str(st)] = (float(g["sum_end"].sum()), float((g["sum_end"] - g["sum_leave"]).clip(lower=0).sum()))
    # queue (arrived, not started) per station: its maximum is the buffer when upstream blocks
    queue_max: dict[str, int] = {}
    for st, g in df[df["event"].isin(["arrive", "start", "setup_start"])].groupby("station"):
        # a lot leaves the queue when its server takes it (setup or start); at equal times the
        # take comes first (a freed place is what lets the blocked lot arrive)
        take = (g["event"] != "arrive").to_numpy()
        first_take = take & ~g["lot"].where(take).duplicated().to_numpy()
        delta = np.where(g["event"] == "arrive", 1, np.where(first_take, -1, 0))
        order = np.lexsort((delta, g["t"].to_numpy()))
        q = np.cumsum(delta[order])
        queue_max[st] = int(q.max()) if len(q) else 0
    return {"proc": proc, "setups": setups, "down": down, "pm": pm, "pm_age": pm_age, "blocked": blocked,
            "ttf": ttf, "censored": censored, "minor": minor, "minor_every": minor_every,
            "passes": passes, "loops": loops, "routes": routes, "releases": first, "lost": lost, "leave": leave, "queue_max": queue_max,
            "scrap": scrap,
            "horizon": float(df["t"].max())}


def log_kpis(df: pd.DataFrame, m: dict[str, Any] | None = None) -> dict[str, Any]:
    """Throughput (units/h), lead time (s) and per-station state fractions observed in a log."""
    m = m or measure(df)
    h = m["horizon"]
    leave = m["leave"]
    last = {p: r for p, c in m["routes"].items() for r in [c.most_common(1)[0][0][-1]]}
    done = leave[(leave["station"].to_numpy() == leave["product"].map(last).to_numpy()) & (leave["qty"] > 0)]
    rel = m["releases"].set_index("lot")["t"]
    units = float(done["qty"].sum())
    lt = (done["t"].to_numpy() - rel.reindex(done["lot"]).to_numpy())
    w = done["qty"].to_numpy(dtype=float)
    # units, as the simulation counts its lost share
    n_lost = float(m["lost"]["qty"].fillna(1).sum())
    n_arrived = n_lost + float(m["releases"]["qty"].fillna(1).sum())
    out: dict[str, Any] = {"throughput_per_hour": units / h * HOUR if h > 0 else float("nan"),
                           "lost_share": n_lost / n_arrived if n_arrived else 0.0,
                           "lead_time_mean_s": float(np.average(lt, weights=w)) if w.sum() > 0 else float("nan"),
                           "stations": {}}
    for st, g in df[df["server"].notna()].groupby("station"):
        n = g["server"].nunique()
        tot = n * h
        pr = m["proc"][m["proc"]["station"] == st]
        dn = m["down"][m["down"]["station"] == st]
        pm = m["pm"][m["pm"]["station"] == st]
        su = m["setups"][m["setups"]["station"] == st]
        bl = m["blocked"][m["blocked"]["station"] == st]
        down = float((dn["t1"] - dn["t0"]).sum())
        maint = float((pm["t1"] - pm["t0"]).sum())
        busy = float(pr["work"].sum())
        setup = float((su["t1"] - su["t0"]).sum())
        blocked = float((bl["t1"] - bl["t0"]).sum())
        fr = {State.BUSY.key: busy / tot, State.SETUP.key: setup / tot, State.BLOCKED.key: blocked / tot,
              State.DOWN.key: down / tot, State.MAINTENANCE.key: maint / tot}
        fr[State.IDLE.key] = max(0.0, 1 - sum(fr.values()))
        out["stations"][st] = fr
    return out


def _collapse(seq: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x)


def _routes_and_loops(seqs: pd.Series) -> tuple[dict[str, Counter], Counter, dict[str, Counter]]:
    """From the station sequences of complete lots (by product and lot): the routes (stations
    most lots of a product visit, in order), the passes at each station, and the loops taken
    after a pass: ``loops[x][x]`` retests (x twice in a row), ``loops[x][y]`` detours to a
    station ``y`` off the route that came back to ``x``."""
    passes: Counter = Counter()
    loops: dict[str, Counter] = defaultdict(Counter)
    by_prod: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for (prod, _), seq in seqs.items():
        by_prod[prod].append(seq)
        passes.update(seq)
    routes: dict[str, Counter] = defaultdict(Counter)
    for prod, all_seqs in by_prod.items():
        seen = Counter(st for seq in all_seqs for st in set(seq))
        on_route = {st for st, n in seen.items() if n * 2 >= len(all_seqs)}
        for seq in all_seqs:
            for a, b in zip(seq, seq[1:]):
                if a == b:
                    loops[a][a] += 1
            col = _collapse(seq)
            for a, y, b in zip(col, col[1:], col[2:]):
                if y not in on_route and a == b:
                    loops[a][y] += 1
            routes[prod][_collapse(tuple(x for x in col if x in on_route))] += 1
    return routes, passes, loops


def saturated_release(df: pd.DataFrame, m: dict[str, Any]) -> bool:
    """Whether the line pulled its own work (a saturated source): at its first stations no
    more lots ever waited than there are servers (each server fetches the next lot when it
    is free), and those stations never idled. (Both are needed: a lightly loaded station
    has short queues too, but it idles.)"""
    rel = m["releases"]
    if len(rel) < MIN_OBS:
        return False
    fr = log_kpis(df, m)["stations"]
    for st in set(rel["station"]):
        servers = df.loc[(df["station"] == st) & df["server"].notna(), "server"].nunique()
        if m["queue_max"].get(st, 0) > servers or fr.get(st, {}).get(State.IDLE.key, 1.0) >= 0.02:
            return False
    return True


# --------------------------------------------------------------------------- calibrate
def calibrate(df: pd.DataFrame, name: str = "calibrated line", source: str = "") -> tuple[str, list[str]]:
    """A spec (TOML text with comments on every fit) and warnings, from a checked log."""

    m = measure(df)
    proc, routes = m["proc"], m["routes"]
    warnings: list[str] = []
    # products and routes
    products = []
    lost = m["lost"]
    # the product mix of what arrived, turned away or not
    shares = pd.concat([m["releases"]["product"], lost["product"]]).value_counts()
    station_order: list[str] = []
    for prod in sorted(routes):
        route, count = routes[prod].most_common(1)[0]
        total = sum(routes[prod].values())
        if count < total:
            warnings.append(f"product {prod}: {total - count} of {total} lots took another route; "
                            f"the most common one ({' > '.join(route)}) is used")
        qty = m["releases"].loc[m["releases"]["product"] == prod, "qty"]
        lot_size = int(qty.mode().iloc[0]) if len(qty) else 1
        products.append({"name": prod, "route": list(route), "lot_size": lot_size,
                         "share": round(float(shares.get(prod, 0)) / max(1, int(shares.sum())), 6)})
        for s in route:
            if s not in station_order:
                station_order.append(s)
    for st in sorted({y for x in m["loops"] for y in m["loops"][x]} - set(station_order)):
        station_order.append(st)  # a repair bench or other detour station, off every route
    blocked_into: set[str] = set()
    for r in m["blocked"].itertuples(index=False):
        for p in products:
            if p["name"] == r.product and r.station in p["route"]:
                i = p["route"].index(r.station)
                if i + 1 < len(p["route"]):
                    blocked_into.add(p["route"][i + 1])
    stations = []
    notes: dict[str, list[str]] = {}
    for st in station_order:
        g = proc[proc["station"] == st]
        n_servers = int(df.loc[(df["station"] == st) & df["server"].notna(), "server"].nunique())
        entry: dict[str, Any] = {"name": st, "servers": max(1, n_servers)}
        note = [f"{st}: {n_servers} server(s) seen; {len(g)} processed lots"]
        by_prod = {}
        for prod, gp in g.groupby("product"):
            q = gp["qty"].to_numpy(dtype=float)
            unit = gp["work"].to_numpy() / np.maximum(q, 1)
            if (q > 1).any():
                # a lot time is a sum of q unit times: unit mean = mean(d/q), unit cv = cv(d) * sqrt(q)
                mean = float(unit.mean())
                cv = float(gp["work"].std() / gp["work"].mean() * math.sqrt(float(np.mean(q)))) if len(gp) > 1 else 0.0
                by_prod[prod] = {"dist": "gamma", "mean": float(f"{mean:.6g}"), "cv": float(f"{cv:.6g}")} \
                    if cv > 0 else float(f"{mean:.6g}")
                note.append(f"  process_time {prod}: n={len(gp)} lots of ~{np.mean(q):.0f}, moment fit (gamma)")
            else:
                fit, rep = best(unit)
                by_prod[prod] = fit.spec()  # type: ignore[union-attr]
                note.append(f"  process_time {prod}: {rep}")
            if len(gp) < MIN_OBS:
                warnings.append(f"station {st}, product {prod}: only {len(gp)} processing times (< {MIN_OBS}); "
                                "the fit is weak")
                note.append(f"  WARNING: only {len(gp)} observations for {prod}")
        if len(by_prod) == 1:
            entry["process_time"] = next(iter(by_prod.values()))
        else:
            entry["process_time_by_product"] = by_prod
        n_lost = int((lost["station"] == st).sum())
        if n_lost:
            # an arrival is turned away only when the entrance is full: the most that waited is its size
            entry["buffer"] = m["queue_max"].get(st, 0)
            note.append(f"  buffer: {n_lost} arrivals were turned away (lost) with at most {entry['buffer']} lots "
                        "waiting here: a finite entrance")
        elif st in blocked_into:
            entry["buffer"] = m["queue_max"].get(st, 0)
            note.append(f"  buffer: upstream was blocked; at most {entry['buffer']} lots waited here")
        su = m["setups"][m["setups"]["station"] == st]
        if len(su):
            fit, rep = best((su["t1"] - su["t0"]).to_numpy())
            entry["setup"] = {"default": fit.spec()}  # type: ignore[union-attr]
            note.append(f"  setup: {rep}")
        mi = m["minor"][m["minor"]["station"] == st]
        if len(mi) >= 2 and len(m["minor_every"].get(st, [])):
            every_fit, every_rep = best(np.asarray(m["minor_every"][st]))
            dur_fit, dur_rep = best((mi["t1"] - mi["t0"]).to_numpy())
            entry["minor_stops"] = {"every": every_fit.spec(), "duration": dur_fit.spec()}  # type: ignore[union-attr]
            note.append(f"  minor stops: {len(mi)}; operating time between them {every_rep}; duration {dur_rep}")
        loops = m["loops"].get(st, {})
        if loops and m["passes"][st]:
            entry["routing"] = {y: float(f"{n / m['passes'][st]:.6g}") for y, n in sorted(loops.items())}
            note.append("  routing per pass: " + ", ".join(
                f"{'retest' if y == st else 'to ' + y} {n} of {m['passes'][st]}" for y, n in sorted(loops.items())))
        made, scrapped = m["scrap"].get(st, (0.0, 0.0))
        if scrapped > 0 and made > 0:
            share = scrapped / made
            entry["quality"] = {"defect_rate": float(f"{share:.6g}"), "inspect": "inline"}
            note.append(f"  scrap: {scrapped:.0f} of {made:.0f} units processed here did not leave ({share:.2%}): "
                        "inline inspection of defects made here (where a defect was made is not in the log)")
        fails = m["ttf"].get(st, [])
        dn = m["down"][m["down"]["station"] == st]
        ages = m["pm_age"].get(st, [])
        pms = m["pm"][m["pm"]["station"] == st]
        if len(fails):
            ttf_spec: Any
            if len(ages):
                # planned maintenance cuts lives short: fit failures and censored lives together
                ttf_fit, ttf_rep = best_censored(fails, m["censored"][st])
                ttf_spec = ttf_fit.spec()  # type: ignore[union-attr]
            else:
                ttf_fit, ttf_rep = best(fails)
                ttf_spec = ttf_fit.spec()  # type: ignore[union-attr]
                if ttf_fit is not None and ttf_fit.family == "exponential":
                    exp_mean = (sum(fails) + sum(m["censored"][st])) / len(fails)
                    ttf_spec = {"dist": "exponential", "mean": float(f"{exp_mean:.6g}")}
                    ttf_rep += f"; mean with censored tails {exp_mean:.1f} s"
            ttr_fit, ttr_rep = best((dn["t1"] - dn["t0"]).to_numpy())
            entry["failures"] = {"ttf": ttf_spec, "ttr": ttr_fit.spec(), "basis": "operating"}  # type: ignore[union-attr]
            note.append(f"  ttf (operating time): {ttf_rep}")
            note.append(f"  ttr: {ttr_rep}")
            if len(fails) < 10:
                warnings.append(f"station {st}: only {len(fails)} failures; time-to-failure and repair fits are weak")
                note.append(f"  WARNING: only {len(fails)} failures")
        if len(pms) and len(fails):
            pm_fit, pm_rep = best((pms["t1"] - pms["t0"]).to_numpy())
            cv = float(np.std(ages) / np.mean(ages)) if len(ages) > 1 and np.mean(ages) > 0 else 0.0
            if cv < 0.05:
                # age-based: maintenance starts at the first lot boundary after the interval,
                # so the shortest observed age is the closest to the interval itself
                interval, how = float(np.min(ages)), "shortest age at maintenance"
            else:
                interval, how = float(np.mean(ages)), "mean age at maintenance"
                warnings.append(f"station {st}: planned maintenance at irregular ages (cv {cv:.2f}), as condition-"
                                "based maintenance would be; modelled as preventive at the mean age")
            entry["maintenance"] = {"policy": "preventive", "interval": float(f"{interval:.6g}"),
                                    "duration": pm_fit.spec()}  # type: ignore[union-attr]
            note.append(f"  planned maintenance: {len(pms)}, every {interval:.1f} s of operating time ({how}; "
                        f"ages cv {cv:.3f}); duration {pm_rep}")
        elif len(pms):
            warnings.append(f"station {st}: {len(pms)} planned maintenances but no failures: not modelled "
                            "(planned maintenance in twin prevents failures)")
            note.append(f"  WARNING: {len(pms)} planned maintenances and no failures; not modelled")
        stations.append(entry)
        notes[st] = note
    rel = np.concatenate([m["releases"]["t"].to_numpy(), lost["t"].to_numpy()])
    src: dict[str, Any]
    ia = np.diff(np.sort(rel))
    ia = ia[ia > 0]
    src_note = ""
    if saturated_release(df, m):
        src = {"kind": "saturated"}
        src_note = (f"releases: {len(rel)} lots; no more waited at the first station than it has servers and it "
                    "never idled: a saturated source")
    elif len(ia) >= 2:
        fit, rep = best(ia)
        if fit.family == "exponential":  # type: ignore[union-attr]
            src = {"kind": "poisson", "rate_per_hour": float(f"{HOUR / fit.mean:.6g}")}  # type: ignore[union-attr]
        else:
            src = {"kind": "renewal", "interarrival": fit.spec()}  # type: ignore[union-attr]
        src_note = f"releases: {len(rel)} lots; interarrival {rep}"
        if len(lost):
            src_note += f"; {len(lost)} of them turned away at a full entrance (lost) and counted as arrivals"
        else:
            src_note += ("; no arrival was turned away (the log has no 'lost' events), so the entrance is left "
                         "unlimited: a line that turns work away at a full entrance should log it as 'lost'")
    else:
        src = {"kind": "saturated"}
    spec = {"name": name, "description": f"calibrated from {source}" if source else "calibrated from an event log",
            "source": src, "products": products, "stations": stations,
            "run": {"horizon": float(f"{m['horizon']:.6g}"), "warmup": 0.0, "replications": 5, "seed": 1}}
    head = [f"Calibrated by twin calibrate from {source or 'an event log'}: {len(df)} events,",
            f"{m['horizon'] / HOUR:.1f} h, {len(m['releases'])} lots. Fits are maximum likelihood, chosen by AIC;",
            "KS D is the Kolmogorov-Smirnov distance of the chosen fit (smaller is better).",
            *textwrap.wrap(src_note, 100)]
    text = toml_text.dumps(spec, lambda table, i: notes[station_order[i]] if table == "stations" else [])
    out = [f"# {x}" for x in head] + text.splitlines()
    # validate what we wrote: a calibration must give a runnable spec

    validate(tomllib.loads("\n".join(out)), source=f"{source or 'the log'} (the spec calibrated from it)")
    return "\n".join(out) + "\n", warnings
