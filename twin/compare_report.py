"""Write the outputs of ``twin compare``: kpis.json, tidy CSVs, report.md and report.html."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import __version__
from .units import WEEK
from .compare import (
    Grid,
    costs_frame,
    daily_frame,
    load_scenario,
    paired,
    runs_frame,
    selection,
    stations_frame,
    summary,
)
from . import uncertainty as uncertainty_mod
from .decision import breakevens, decisive, iso_cost, set_path_key
from .floorview import replays_section
from .io import ResultSet
from .report import (
    COLUMNS,
    SIGNIFICANCE,
    VERDICT_MEASURES,
    fig_backlog,
    fig_cost_waterfall,
    fig_fronts,
    fig_iso_cost,
    fig_oee,
    fig_sankey,
    fig_output,
    fig_states,
    fig_tornado,
    SCENARIO_PICK,
    html_page,
    markdown,
    overrides_text,
    reading,
    verdict,
)


def uncertainty_lines(unc: dict[str, Any], scenarios: list[str]) -> list[str]:
    """Plain sentences: per scenario and verdict measure (:data:`twin.report.VERDICT_MEASURES`), each
    factory's probability of being the best over the plausible worlds with its 95 % interval, the
    share of the leading pair's variance that is simulation noise, and the two parameters the
    leading pair's difference hangs on."""
    labels = {k: lab for k, lab, _, _ in COLUMNS}
    meta = unc["meta"]
    n = meta["draws"]
    n_price = meta.get("price_draws", 0)
    worlds = f"{n} behavioural worlds" + (f" × {n_price} price draws" if n_price else "")
    out = []
    for sc in scenarios:
        for key in VERDICT_MEASURES:
            probs = unc["probabilities"].get(sc, {}).get(key)
            if not probs or not any(v == v for v in probs.values()):
                continue
            cis = unc.get("uncertainty_ci", {}).get(sc, {}).get(key, {})
            ranked = sorted(probs.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else -1))
            (f1, p1), rest = ranked[0], ranked[1:]
            tied = unc.get("ties", {}).get(sc, {}).get(key, 0.0)
            if tied >= 0.999:
                out.append(f"{sc}, {labels.get(key, key)}: the factories tie in every plausible world.")
                continue

            def share(f: str, p: float, cis: dict[str, Any] = cis) -> str:
                ci = cis.get(f)
                return f"{p:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci and all(c == c for c in ci) else "")

            text = (f"{sc}, {labels.get(key, key)}: {f1} is the best in {share(f1, p1)} of {worlds}"
                    + (" (" + ", ".join(f"{f} {share(f, p)}" for f, p in rest) + ")" if rest else "")
                    + (f"; the best is shared in {tied:.0%} of them (ties split)" if tied > 0 else ""))
            if rest:
                f2 = rest[0][0]
                pair = next((k for k in (f"{f1} vs {f2}", f"{f2} vs {f1}")
                             if k in unc["tornado"].get(sc, {}).get(key, {})), None)
                rows = unc["tornado"].get(sc, {}).get(key, {}).get(pair, []) if pair else []
                top = [r for r in rows if isinstance(r["prcc"], float) and math.isfinite(r["prcc"])][:2]
                if top:
                    text += "; the difference to " + f2 + " hangs mostly on " + " and ".join(
                        f"{r['parameter']} (PRCC {r['prcc']:+.2f})" for r in top)
                ns = unc.get("noise_share", {}).get(sc, {}).get(key, {}).get(pair) if pair else None
                if ns is not None and ns == ns:
                    text += f"; simulation noise is {ns:.0%} of that difference's variance across worlds"
            out.append(text + ".")
    return out


def _money(v: float | None, currency: str = "$") -> str:
    if v is None or not math.isfinite(v):
        return "–"
    for div, unit in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
        if abs(v) >= div:
            return f"{currency}{v / div:.3g}{unit}"
    return f"{currency}{v:.3g}"


def breakeven_lines(be: dict[str, Any], summary_: dict[str, Any]) -> list[str]:
    """Plain sentences beside the verdict: per scenario, the cheapest factory and the prices (of the
    two that swing its lead most) at which a rival would be cheaper, with their estimates and ranges."""
    out = []
    for sc, measures in be.items():
        for key, pairs in measures.items():
            facs = summary_.get(sc, {})
            vals = {f: d.get(key, {}).get("mean", float("nan")) for f, d in facs.items()}
            vals = {f: v for f, v in vals.items() if v == v}
            if len(vals) < 2:
                continue
            best = min(vals, key=vals.__getitem__)
            flips = []
            for pair, row in pairs.items():
                a, _, b = pair.partition(" vs ")
                if best not in (a, b):
                    continue
                rival = b if a == best else a
                for path, r in row.items():
                    if r["value"] is None:
                        continue
                    flips.append((abs(r["value"] - r["nominal"]) / max(r["high"] - r["low"], 1e-12), rival, path, r))
            if not flips:
                out.append(f"{sc}: {best} is cheapest at every non-negative value of each priced parameter.")
                continue
            flips.sort(key=lambda t: t[0])
            parts = []
            for _, rival, _path, r in flips[:3]:
                up = r["value"] > r["nominal"]
                fmtv = (lambda v: f"×{v:.3g}") if r["scale"] else _money
                parts.append(f"{r['name']} {'rises above' if up else 'falls below'} {fmtv(r['value'])} "
                             f"(estimate {fmtv(r['nominal'])}, range {fmtv(r['low'])}–{fmtv(r['high'])}"
                             f"{'; inside it' if r['inside_range'] else ''}: then {rival} is cheaper)")
            out.append(f"{sc}: {best} is cheapest unless " + "; or ".join(parts) + ".")
    return out


def _iso_figure(results: list[dict[str, Any]], be: dict[str, Any], pars: Any, summ: dict[str, Any]) -> Any:
    """The iso-cost chart of the first scenario over the two prices whose ranges swing the cheapest
    factory's lead over its runner-up most (None with fewer than two such prices)."""
    if not be:
        return None
    sc = next(iter(be))
    rows = be[sc].get("conversion_cost", {})
    facs = summ.get(sc, {})
    vals = sorted((d.get("conversion_cost", {}).get("mean", float("nan")), f) for f, d in facs.items())
    vals = [v for v in vals if v[0] == v[0]]
    if len(vals) < 2:
        return None
    f1, f2 = vals[0][1], vals[1][1]
    row = rows.get(f"{f1} vs {f2}") or rows.get(f"{f2} vs {f1}") or {}
    top = decisive(row, 2)
    if len(top) < 2:
        return None
    by_key = {set_path_key(p): p for p in pars.parameter}
    (kx, rx), (ky, ry) = top
    iso = iso_cost(results, sc, by_key[kx], by_key[ky], n=31)
    return fig_iso_cost(iso, (rx["nominal"], ry["nominal"]), ((rx["low"], rx["high"]), (ry["low"], ry["high"])), sc)


def front_lines(fronts: dict[str, Any]) -> list[str]:
    """Plain sentences: per factory, its candidates on the front of baseline conversion cost against
    the shift's fill rate, cheapest first, with both numbers."""
    out = []
    for f, rows in fronts.get("factories", {}).items():
        on = sorted((r for r in rows if r["on_fill_front"]), key=lambda r: r["cost"])
        if on:
            out.append(f"{f}: " + "; ".join(f"{r['design']} ${r['cost']:.2f} a phone at {fronts['baseline']}, "
                                             f"{r['fill']:.1%} fill rate in the {fronts['shift']}" for r in on)
                       + f" ({len(on)} of {len(rows)} candidates on the front).")
    return out


def designed_lines(unc: dict[str, Any], scenarios: list[str]) -> list[str]:
    """The uncertainty reading with each factory designed per world (``unc["designed"]``), and which
    candidates the protocol's rule took how often."""
    des = unc.get("designed")
    if not des:
        return []
    sub = {"meta": unc["meta"], "probabilities": des["probabilities"], "uncertainty_ci": des["uncertainty_ci"],
           "ties": des["ties"], "tornado": {}, "noise_share": {}}
    out = [f"Designed per world: in every world and price draw each factory takes its candidate by the design "
           f"protocol's rule ({des['rule']}); read on those designs:"]
    out += [f"designed per world, {ln}" for ln in uncertainty_lines(sub, scenarios)]
    for f, shares in des["chosen"].items():
        out.append(f"{f} takes " + ", ".join(f"{d} in {p:.0%}" for d, p in shares.items())
                   + " of the worlds × price draws.")
    return out


def write_report(results: list[dict[str, Any]], grid: Grid, out: Path, command: str = "",
                 uncertainty: dict[str, Any] | None = None, price_file: str | None = None,
                 fronts: dict[str, Any] | None = None) -> str:
    """Build every output file from the job results; returns the markdown report. With
    ``uncertainty`` (from :func:`twin.compare.run_uncertainty`) the report leads with how sure
    the ranking is, and kpis.json and uncertainty.csv carry the draws."""
    runs = runs_frame(results)
    daily = daily_frame(results)
    costs = costs_frame(results)
    stations = stations_frame(results)
    summ = summary(runs)
    pairs = paired(runs)
    picks = selection(runs)
    scen = {s: load_scenario(s) for s in grid.scenarios}
    descriptions = {s: sc.description for s, sc in scen.items()}
    shifts = {s: (grid.warmup + min(sh.at for sh in sc.shifts)) if sc.shifts else None for s, sc in scen.items()}
    drops = {s for s, sc in scen.items()
             if any(sh.kind in ("step", "ramp", "pulse") and sh.factor < 1 for sh in sc.shifts)}
    read = reading(summ, descriptions, drops, paired=pairs)
    changed = overrides_text(grid.overrides)

    sig = grid.signature()
    meta = {
        "twin_version": __version__,
        "command": command,
        "grid": sig,
        "warmup": grid.warmup,
        "warmup_method": grid.warmup_method,
        "spec_sha256": sig["spec_sha256"],
        "scenario_sha256": sig["scenario_sha256"],
        "description": (f"{grid.replications} replications of {len(grid.factories)} factories under "
                        f"{len(grid.scenarios)} scenarios, {grid.weeks:g} weeks after a {grid.warmup / WEEK:g}-week "
                        f"warm-up, seed {grid.seed}; all factories see the same orders (common random numbers); "
                        "cells are mean ± 95 % CI."
                        + (f" Changed from the reference specs: {changed}." if changed else "")),
    }
    n_cmp = sum(len(v) for m in pairs.values() for v in m.values())
    meta["method"] = (
        "Generated from the replications: each pair of factories is compared by the paired difference of "
        "replication r with replication r (the same seeds, so the same orders), with its 95 % Student-t CI. "
        f"A verdict is significant when its Holm-adjusted p-value is below {SIGNIFICANCE:g}, which keeps the "
        f"chance of any false verdict among all {n_cmp} paired comparisons of this report at {SIGNIFICANCE:.0%}. "
        "kpis.json also names, per scenario and measure, the best factory by the Clark-Yang Bonferroni "
        "selection procedure for common random numbers (probability of correct selection 95 % when the best is "
        "better by at least the stated indifference zone) and how many replications that guarantee needs.")
    if uncertainty is not None:
        meta["uncertainty"] = (uncertainty_lines(uncertainty, grid.scenarios)
                               + designed_lines(uncertainty, grid.scenarios))
        um = uncertainty["meta"]
        n_par = len(um["parameters"])
        n_price = sum(p["kind"] == "price" for p in um["parameters"])
        meta["uncertainty_method"] = (
            f"{um['draws']} behavioural worlds drawn by Latin hypercube in the plausible ranges of the "
            f"{n_par - n_price} estimated parameters that are not prices ({Path(um['file']).name}), each simulated "
            f"on the same seeds, and each priced again (exactly, without simulating) under {um['price_draws']} "
            f"Latin-hypercube draws of the {n_price} price ranges: {um['combinations']} combinations. A factory's "
            "share is the fraction of combinations in which its mean over the replications is the best (ties "
            "split), with a Clopper-Pearson 95 % interval on Kish's effective sample size (the price draws of one "
            "world share its runs, so they count for less than independent worlds). The parameters named are "
            "those with the largest partial rank correlation (PRCC) with the difference; the noise share is the "
            "part of the difference's variance across worlds that replication noise explains. The factories are "
            "the nominal designs (sized by the protocol at the estimates), not redesigned per world.")
    meta["verdict"] = verdict(summ, pairs, grid.replications)
    pars, _ = uncertainty_mod.load(price_file)
    be = breakevens(results, pars) if all("cost_basis" in r for r in results) else {}
    meta["breakeven"] = breakeven_lines(be, summ)
    if fronts:
        meta["fronts"] = front_lines(fronts)
    md = markdown(summ, descriptions, meta, read)
    base = grid.scenarios[0]
    bottlenecks = {sc: {f: str(d.get("bottleneck", "")) for f, d in facs.items()} for sc, facs in summ.items()}
    figs = [fig_output(daily, shifts, grid.warmup), fig_backlog(daily, shifts, grid.warmup),
            fig_cost_waterfall(costs), fig_states(stations), fig_oee(stations, bottlenecks)]
    if fronts:
        figs.insert(0, fig_fronts(fronts))
    iso = _iso_figure(results, be, pars, summ)
    if iso is not None:
        figs.insert(0, iso)
    if uncertainty is not None:
        figs.insert(0, fig_tornado(uncertainty["tornado"], uncertainty["probabilities"], base, "conversion_cost"))
    replays = {(r["factory"], r["scenario"]): r["replay"] for r in results if "replay" in r}
    for f in grid.factories:  # each factory's units through its line in the first scenario
        r = replays.get((f, base))
        if r is not None:
            figs.append(fig_sankey(pd.DataFrame(r["flows"]), [tuple(e) for e in r["edges"]], r["stations"],
                                   title=f"Material flow of the {f} ({base})"))
    page = html_page(summ, descriptions, meta, read, figs,
                     default_scenario=next((s for s, t in shifts.items() if t is not None), None),
                     extra=replays_section(replays, follow=SCENARIO_PICK) if replays else "")
    with ResultSet(out, summary="kpis.json") as rs:  # kpis.json last: it marks a complete report
        rs.add_csv("runs.csv", runs)
        rs.add_csv("daily.csv", daily)
        rs.add_csv("costs.csv", costs)
        rs.add_csv("stations.csv", stations)
        rs.add_text("report.md", md)
        rs.add_text("report.html", page)
        body = {"meta": meta, "summary": summ, "paired": pairs, "selection": picks, "reading": read, "breakeven": be}
        if fronts:
            body["pareto"] = fronts
        if uncertainty is not None:
            if "designed" in uncertainty:
                body["uncertainty_designed"] = uncertainty["designed"]
            body.update(uncertainty=uncertainty["probabilities"], uncertainty_ci=uncertainty["uncertainty_ci"],
                        uncertainty_effective_n=uncertainty["effective_n"], noise_share=uncertainty["noise_share"],
                        tornado=uncertainty["tornado"], uncertainty_ties=uncertainty["ties"],
                        uncertainty_meta=uncertainty["meta"])
            table = uncertainty["runs"].merge(uncertainty["values"], on="draw")
            rs.add_csv("uncertainty.csv", table)
        rs.add_json("kpis.json", body)
        rs.publish()
    return md
