"""Write the outputs of ``twin compare``: kpis.json, tidy CSVs, report.md and report.html."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import __version__
from .calendar import WEEK
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
from .io import ResultSet
from .report import (
    COLUMNS,
    SIGNIFICANCE,
    VERDICT_MEASURES,
    fig_backlog,
    fig_cost_waterfall,
    fig_oee,
    fig_output,
    fig_states,
    fig_tornado,
    html_page,
    markdown,
    overrides_text,
    reading,
    verdict,
)


def uncertainty_lines(unc: dict[str, Any], scenarios: list[str]) -> list[str]:
    """Plain sentences: per scenario and verdict measure (:data:`twin.report.VERDICT_MEASURES`), each
    factory's probability of being the best over the plausible worlds, and the two parameters the
    leading pair's difference hangs on."""
    labels = {k: lab for k, lab, _, _ in COLUMNS}
    n = unc["meta"]["draws"]
    out = []
    for sc in scenarios:
        for key in VERDICT_MEASURES:
            probs = unc["probabilities"].get(sc, {}).get(key)
            if not probs or not any(v == v for v in probs.values()):
                continue
            ranked = sorted(probs.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else -1))
            (f1, p1), rest = ranked[0], ranked[1:]
            tied = unc.get("ties", {}).get(sc, {}).get(key, 0.0)
            if tied >= 0.999:
                out.append(f"{sc}, {labels.get(key, key)}: the factories tie in every plausible world.")
                continue
            text = (f"{sc}, {labels.get(key, key)}: {f1} is the best in {p1:.0%} of {n} plausible worlds"
                    + (" (" + ", ".join(f"{f} {p:.0%}" for f, p in rest) + ")" if rest else "")
                    + (f"; the best is shared in {tied:.0%} of them (ties split)" if tied > 0 else ""))
            if rest:
                f2 = rest[0][0]
                rows = (unc["tornado"].get(sc, {}).get(key, {}).get(f"{f1} vs {f2}")
                        or unc["tornado"].get(sc, {}).get(key, {}).get(f"{f2} vs {f1}") or [])
                top = [r for r in rows if isinstance(r["rho"], float) and math.isfinite(r["rho"])][:2]
                if top:
                    text += "; the difference to " + f2 + " hangs mostly on " + " and ".join(
                        f"{r['parameter']} (rank correlation {r['rho']:+.2f})" for r in top)
            out.append(text + ".")
    return out


def write_report(results: list[dict[str, Any]], grid: Grid, out: Path, command: str = "",
                 uncertainty: dict[str, Any] | None = None) -> str:
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
        meta["uncertainty"] = uncertainty_lines(uncertainty, grid.scenarios)
        meta["uncertainty_method"] = (
            f"{uncertainty['meta']['draws']} parameter sets drawn by Latin hypercube in the plausible ranges of "
            f"{len(uncertainty['meta']['parameters'])} estimated parameters ({Path(uncertainty['meta']['file']).name}), "
            "each run on the same seeds; a factory's probability is the share of draws in which its mean over the "
            "replications is the best (ties split); the parameters named are those whose draws correlate most "
            "with the difference (Spearman); with "
            f"{uncertainty['meta']['draws']} draws, rank correlations below about "
            f"{2 / max(1, uncertainty['meta']['draws']) ** 0.5:.2f} in size are within noise.")
    meta["verdict"] = verdict(summ, pairs, grid.replications)
    md = markdown(summ, descriptions, meta, read)
    base = grid.scenarios[0]
    bottlenecks = {sc: {f: d.get("bottleneck", "") for f, d in facs.items()} for sc, facs in summ.items()}
    figs = [fig_output(daily, shifts, grid.warmup), fig_backlog(daily, shifts, grid.warmup),
            fig_cost_waterfall(costs), fig_states(stations), fig_oee(stations, bottlenecks)]
    if uncertainty is not None:
        figs.insert(0, fig_tornado(uncertainty["tornado"], uncertainty["probabilities"], base, "conversion_cost"))
    page = html_page(summ, descriptions, meta, read, figs)
    with ResultSet(out, summary="kpis.json") as rs:  # kpis.json last: it marks a complete report
        rs.add_csv("runs.csv", runs)
        rs.add_csv("daily.csv", daily)
        rs.add_csv("costs.csv", costs)
        rs.add_csv("stations.csv", stations)
        rs.add_text("report.md", md)
        rs.add_text("report.html", page)
        body = {"meta": meta, "summary": summ, "paired": pairs, "selection": picks, "reading": read}
        if uncertainty is not None:
            body.update(uncertainty=uncertainty["probabilities"], tornado=uncertainty["tornado"],
                        uncertainty_ties=uncertainty["ties"], uncertainty_meta=uncertainty["meta"])
            table = uncertainty["runs"].merge(uncertainty["values"], on="draw")
            rs.add_csv("uncertainty.csv", table)
        rs.add_json("kpis.json", body)
        rs.publish()
    return md
