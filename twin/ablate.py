"""``twin ablate``: what each capability of a factory is worth (DESIGN §8).

The factory runs as specified and with each of its named ``capabilities`` switched off
alone (and all of them off together), under the same scenarios and on the same seeds
(common random numbers). Each KPI is differenced replication by replication, full minus
ablated, with its 95 % Student-t CI; Holm's adjustment over every comparison of the
run says which differences are significant.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .units import WEEK
from .compare import JobsBar, _slug, factory_spec, run_job, runs_frame
from .io import ResultSet
from .report import COLUMNS, SIGNIFICANCE, fig_html, fmt, page_head, signed_amount_ci
from .runs import map_jobs, replication_seed
from .shards import JobStore, share_of
from .scenario import Scenario, apply, given_twice, load_scenario, scenario_path
from .spec import ABLATION_ALL_OFF, ABLATION_FULL, Spec, SpecError, resolve
from .stats import holm, paired_diff

FULL = ABLATION_FULL
ALL_OFF = ABLATION_ALL_OFF
# what an ablation reports (labels and display kinds from the compare report's columns)
KPIS = ["good_units_per_week", "fill_rate", "unit_cost", "conversion_cost", "oee", "lead_time_mean_s",
        "time_to_recover_s"]
_LABEL = {k: (label, kind) for k, label, _, kind in COLUMNS}


def variants(spec: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, overrides) of the runs an ablation makes: the factory as specified, each
    capability off alone, and (with two or more) all of them off."""
    out: list[tuple[str, dict[str, Any]]] = [(FULL, {})]
    merged: dict[str, Any] = {}
    for cap in spec.capabilities:
        out.append((cap.name, dict(cap.off)))
        merged.update(cap.off)
    if len(spec.capabilities) > 1:
        out.append((ALL_OFF, merged))
    return out


def check(factory: str, scenarios: list[str], weeks: float,
          warmup: float) -> tuple[str, Spec, list[tuple[str, dict[str, Any]]], dict[str, Scenario]]:
    """Load the factory, every variant and scenario before anything runs (all problems at once);
    return the spec's path, the spec, its variants and the scenarios."""
    problems: list[str] = []
    path = str(resolve(factory))
    spec = factory_spec(path, None)
    if not spec.capabilities:
        raise SpecError([f"{path}: capabilities: the factory names no capabilities to switch off; add "
                         "[[capabilities]] tables with a name and an `off` table of spec values"])
    vs = variants(spec)
    scen: dict[str, Scenario] = {}
    problems += given_twice(scenarios)
    for s in dict.fromkeys(scenarios):
        try:
            scen[s] = load_scenario(s)
        except SpecError as e:
            problems += e.problems
    for name, off in vs:
        try:
            vspec = spec.with_overrides(off, source=f"{path}: capabilities.{name}.off") if off else spec
        except SpecError as e:
            problems += e.problems
            continue
        for s, sc in scen.items():
            try:
                apply(vspec, sc, weeks, warmup, source=str(scenario_path(s)))
            except SpecError as e:
                problems += [p for p in e.problems if p not in problems]
    if problems:
        raise SpecError(problems)
    return path, spec, vs, scen


def run(factory: str, scenarios: list[str], replications: int, weeks: float, warmup: float, seed: int = 1,
        jobs: int = 1, executor: str = "local", scheduler: str | None = None, progress: bool = False,
        store: JobStore | None = None) -> dict[str, Any] | None:
    """Run the ablation; return ``{"factory", "meta", "ablation": [rows], "runs": DataFrame}``
    (None in a shard's run, which only stores its share of the jobs in ``store``).

    Each row: capability, scenario, kpi, full_mean, ablated_mean, diff_mean (full − ablated),
    diff_ci95, n, p, p_holm, significant."""
    path, spec, vs, scen = check(factory, scenarios, weeks, warmup)
    args = []
    for s in scenarios:
        sd = {**scen[s].model_dump(mode="python"), "name": s}
        for name, off in vs:
            for r in range(replications):
                args.append((path, name, sd, r, replication_seed(seed, r), weeks, warmup, off or None))
    bar = JobsBar(share_of(store, len(args)), 0, enabled=progress, label="ablate")
    results: list[Any] = [None] * len(args)
    for i, res in map_jobs(run_job, args, jobs=jobs, executor=executor, scheduler=scheduler, store=store,
                           stage="ablate"):
        res.pop("daily", None)
        res.pop("stations", None)
        results[i] = res
        bar.step()
    bar.close()
    if store is not None and store.sharding:
        return None
    runs = runs_frame(results).rename(columns={"factory": "variant"})
    rows = table(runs, [n for n, _ in vs if n != FULL], scenarios)
    name = spec.name
    meta = {
        "factory": name,
        "spec": factory,
        "scenarios": scenarios,
        "replications": replications,
        "weeks": weeks,
        "warmup_s": warmup,
        "seed": seed,
        "capabilities": {n: off for n, off in vs if n != FULL},
        "descriptions": {c.name: c.description for c in spec.capabilities},
        "method": (f"{replications} replications of each variant on the same seeds (common random numbers); "
                   "a difference is full minus ablated, replication by replication, with its 95 % Student-t "
                   f"CI; significant when its Holm-adjusted p-value over all {len(rows)} comparisons of this "
                   f"run is below {SIGNIFICANCE:g}."),
    }
    return {"factory": name, "meta": meta, "ablation": rows, "runs": runs}


def table(runs: pd.DataFrame, capabilities: list[str], scenarios: list[str]) -> list[dict[str, Any]]:
    """Paired differences full − ablated for every capability × scenario × KPI (Holm over all of them)."""
    rows: list[dict[str, Any]] = []
    for s in scenarios:
        g = runs[runs["scenario"] == s]
        full = g[g["variant"] == FULL].sort_values("replication")
        for cap in capabilities:
            ab = g[g["variant"] == cap].sort_values("replication")
            for key in KPIS:
                if key not in g:
                    continue
                a = pd.to_numeric(full[key], errors="coerce").to_numpy(dtype=float)
                b = pd.to_numeric(ab[key], errors="coerce").to_numpy(dtype=float)
                if not np.isfinite(a).any() and not np.isfinite(b).any():
                    continue  # not defined here (e.g. recovery without a shift)
                d = paired_diff(a, b)
                rows.append({"capability": cap, "scenario": s, "kpi": key,
                             "full_mean": _mean(a), "ablated_mean": _mean(b),
                             "diff_mean": d["diff_mean"], "diff_ci95": d["ci95"], "n": d["n"], "p": d["p"]})
    for r, p in zip(rows, holm([r["p"] for r in rows])):
        r["p_holm"] = p
        r["significant"] = bool(p == p and p < SIGNIFICANCE)
    return rows


def _mean(x: np.ndarray) -> float:
    ok = x[np.isfinite(x)]
    return float(ok.mean()) if len(ok) else float("nan")


def cell(row: dict[str, Any], kind: str) -> str:
    """``+$1.23 ± 0.40`` (a difference and its CI), with ``*`` when Holm-significant."""
    return signed_amount_ci({"diff_mean": row["diff_mean"], "ci95": row["diff_ci95"]}, kind) + (
        " *" if row.get("significant") else "")


def markdown_table(result: dict[str, Any], kpis: list[str] | None = None) -> str:
    """The ablation as a Markdown table: one row per scenario × capability, one column per KPI."""
    keys = [k for k in KPIS if kpis is None or k in kpis]
    rows = result["ablation"]
    have = [(k, *_LABEL[k]) for k in keys if any(r["kpi"] == k for r in rows)]
    lines = ["| scenario | capability off | " + " | ".join(lab for _, lab, _ in have) + " |",
             "|---|---|" + "---:|" * len(have)]
    by = {(r["scenario"], r["capability"], r["kpi"]): r for r in rows}
    caps = list(dict.fromkeys(r["capability"] for r in rows))
    for s in result["meta"]["scenarios"]:
        for c in caps:
            cells = [cell(by[(s, c, k)], kind) if (s, c, k) in by else "–" for k, _, kind in have]
            lines.append(f"| {s} | {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(result: dict[str, Any], kpi: str = "conversion_cost") -> go.Figure:
    """Bars: what switching each capability off changes ``kpi`` by (ablated − full), per scenario, with 95 % CIs."""
    label = _LABEL[kpi][0]
    fig = go.Figure()
    rows = [r for r in result["ablation"] if r["kpi"] == kpi]
    for s in result["meta"]["scenarios"]:
        rs = [r for r in rows if r["scenario"] == s]
        fig.add_bar(name=s, x=[r["capability"] for r in rs], y=[-r["diff_mean"] for r in rs],
                    error_y=dict(type="data", array=[r["diff_ci95"] if r["diff_ci95"] == r["diff_ci95"] else 0
                                                     for r in rs]))
    fig.update_layout(barmode="group", height=420, title=f"{label}: change when the capability is switched off "
                      "(ablated − full, 95 % CI)", yaxis_title=label, xaxis_title="capability switched off",
                      legend_title="scenario")
    return fig


def html_page(result: dict[str, Any]) -> str:
    """A self-contained page: the method, one table per scenario, a chart of the cost effects."""
    esc = html.escape
    m = result["meta"]
    parts = [page_head(f"twin ablate {m['factory']}", 1300),
             f"<h1>twin ablate: what each capability of {esc(m['factory'])} is worth</h1>",
             f"<p class='method'>{esc(m['method'])} {m['weeks']:g} weeks observed after a "
             f"{m['warmup_s'] / WEEK:g}-week warm-up, seed {m['seed']}. A cell is full − ablated: "
             "positive means the capability raises the measure. * = significant.</p>",
             "<h2>Capabilities</h2><ul>"]
    for name, off in m["capabilities"].items():
        desc = m["descriptions"].get(name, "all capabilities together" if name == ALL_OFF else "")
        parts.append(f"<li><b>{esc(name)}</b>: {esc(desc)} <small>(off: "
                     f"{esc(', '.join(f'{k} = {v}' for k, v in off.items()))})</small></li>")
    parts.append("</ul>")
    by = {(r["scenario"], r["capability"], r["kpi"]): r for r in result["ablation"]}
    caps = list(m["capabilities"])
    for s in m["scenarios"]:
        have = [(k, *_LABEL[k]) for k in KPIS if any((s, c, k) in by for c in caps)]
        parts.append(f"<h2 id='scenario-{esc(_slug(s))}'>{esc(s)}</h2><table><tr><th>capability off</th>"
                     + "".join(f"<th>{esc(lab)}</th>" for _, lab, _ in have) + "</tr>")
        parts.append("<tr><td><i>full (as specified)</i></td>" + "".join(
            f"<td>{esc(fmt({'mean': by[(s, caps[0], k)]['full_mean']}, kind)) if (s, caps[0], k) in by else '–'}</td>"
            for k, _, kind in have) + "</tr>")
        for c in caps:
            tds = []
            for k, _, kind in have:
                r = by.get((s, c, k))
                text = esc(cell(r, kind)) if r else "–"
                tds.append(f"<td><b>{text}</b></td>" if r and r["significant"] else f"<td>{text}</td>")
            parts.append(f"<tr><td>{esc(c)}</td>" + "".join(tds) + "</tr>")
        parts.append("</table>")
    parts.append(fig_html(figure(result), 0))
    parts.append("</body></html>")
    return "\n".join(parts)


def write(result: dict[str, Any], out: Path) -> list[Path]:
    """``ablation.csv``, ``report.html``, ``runs.csv`` and (last) ``kpis.json`` into ``out``."""
    body = {"factory": result["factory"], "meta": result["meta"], "ablation": result["ablation"]}
    with ResultSet(out, summary="kpis.json") as rs:
        rs.add_csv("ablation.csv", pd.DataFrame(result["ablation"]))
        rs.add_csv("runs.csv", result["runs"])
        rs.add_text("report.html", html_page(result))
        rs.add_json("kpis.json", body)
        return rs.publish()


def quick_defaults() -> dict[str, Any]:
    """The CI profile: two scenarios where the levers matter, 2 replications, 8 weeks after a 1-week warm-up."""
    return {"scenarios": ["baseline", "surge"], "replications": 2, "weeks": 8.0, "warmup": WEEK}

