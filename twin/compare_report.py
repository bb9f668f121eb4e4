"""Write the outputs of ``twin compare``: kpis.json, tidy CSVs, report.md and report.html."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from . import __version__
from .compare import (
    Grid,
    costs_frame,
    daily_frame,
    load_scenario,
    paired,
    runs_frame,
    scenario_path,
    selection,
    stations_frame,
    summary,
)
from .io import ResultSet
from .report import (
    SIGNIFICANCE,
    fig_backlog,
    fig_cost_waterfall,
    fig_output,
    fig_states,
    html_page,
    markdown,
    overrides_text,
    reading,
)
from .spec import resolve


def write_report(results: list[dict[str, Any]], grid: Grid, out: Path, command: str = "") -> str:
    """Build every output file from the job results; returns the markdown report."""
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

    def sha(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()[:16]

    meta = {
        "twin_version": __version__,
        "command": command,
        "grid": grid.signature(),
        "warmup": grid.warmup,
        "warmup_method": grid.warmup_method,
        "spec_sha256": {f: sha(resolve(f)) for f in grid.factories},
        "scenario_sha256": {s: sha(scenario_path(s))
                            for s in grid.scenarios},
        "description": (f"{grid.replications} replications of {len(grid.factories)} factories under "
                        f"{len(grid.scenarios)} scenarios, {grid.weeks:g} weeks after a {grid.warmup / 604800:g}-week "
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
    md = markdown(summ, descriptions, meta, read)
    base = grid.scenarios[0]
    bottlenecks = {f: d.get("bottleneck", "") for f, d in summ.get(base, {}).items()}
    figs = [fig_output(daily, shifts, grid.warmup), fig_backlog(daily, shifts), fig_cost_waterfall(costs, base),
            fig_states(stations, base, bottlenecks)]
    page = html_page(summ, descriptions, meta, read, figs)
    with ResultSet(out, summary="kpis.json") as rs:  # kpis.json last: it marks a complete report
        rs.add_csv("runs.csv", runs)
        rs.add_csv("daily.csv", daily)
        rs.add_csv("costs.csv", costs)
        rs.add_csv("stations.csv", stations)
        rs.add_text("report.md", md)
        rs.add_text("report.html", page)
        rs.add_json("kpis.json", {"meta": meta, "summary": summ, "paired": pairs, "selection": picks,
                                  "reading": read})
        rs.publish()
    return md
