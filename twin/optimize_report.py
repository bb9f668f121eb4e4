"""What ``twin optimize`` writes: its trials as a table, the best design as a spec, the search's
charts (history, parameter importance, Pareto front) on a self-contained page, and the text
summary. The search itself is :mod:`twin.optimize`'s; its results are plain data read here.
"""

from __future__ import annotations

import html
import math
import warnings
from typing import Any

import numpy as np
import optuna
import pandas as pd
import plotly.graph_objects as go

from . import serial
from .objectives import parse_constraint
from .report import fig_html, page_head
from .spec import Spec, SpecError


def trials_frame(result: dict[str, Any]) -> pd.DataFrame:
    """One row per evaluated trial: its parameters, objectives, feasibility and every KPI mean."""
    return pd.DataFrame(result["trials"])


def best_spec(spec: Spec, result: dict[str, Any]) -> Spec:
    """The spec with the best design's values (valid for ``twin run``)."""
    params = result["best"]["params"]
    linked = {d["path"]: d.get("also", []) for d in result["meta"]["space"]}
    return spec.with_overrides({q: v for k, v in params.items() for q in (k, *linked.get(k, []))},
                               source="<optimize best>")


def figures(result: dict[str, Any]) -> list[Any]:
    """Optimisation history, parameter importance, and (two objectives) the Pareto front."""
    meta = result["meta"]
    df = trials_frame(result)
    figs = []
    kpi0, sense0 = meta["objectives"][0]["kpi"], meta["objectives"][0]["sense"]
    hist = go.Figure()
    ok = df["feasible"].to_numpy(dtype=bool)
    # designs in the order they were run, 1, 2, ...: optuna's trial numbers also count the
    # suggestions skipped (against a design constraint, or a design already run)
    n = pd.Series(np.arange(1, len(df) + 1), index=df.index)
    hist.add_scatter(x=n[ok], y=df[kpi0][ok], mode="markers", name="feasible")
    if (~ok).any():
        hist.add_scatter(x=n[~ok], y=df[kpi0][~ok], mode="markers", name="infeasible",
                         marker={"symbol": "x", "color": "#bbb"})
    best = df[kpi0].where(ok).cummax() if sense0 == "maximize" else df[kpi0].where(ok).cummin()
    hist.add_scatter(x=n, y=best, mode="lines", name="best so far (search runs)", line={"shape": "hv"})
    params = result["best"]["params"]
    mine = np.ones(len(df), dtype=bool)
    for k, v in params.items():
        mine &= (df[k] == v).to_numpy() if k in df else False
    if mine.any():
        i = int(np.argmax(mine))
        hist.add_scatter(x=[n.iloc[i]], y=[df[kpi0].iloc[i]], mode="markers", name="the reported best",
                         marker={"symbol": "star", "size": 14, "color": "#d62728"})
    hist.update_layout(title=f"Optimisation history: {kpi0} ({sense0}). The reported best is picked after the "
                             "search, by confirmation runs on fresh seeds: it need not be the search's best so far",
                       xaxis_title="design run (skipped suggestions not counted)", yaxis_title=kpi0, height=440,
                       title_font_size=13)
    figs.append(hist)
    imp = importances(result)
    if imp:
        bar = go.Figure(go.Bar(x=list(imp.values()), y=list(imp), orientation="h"))
        bar.update_layout(title=f"Parameter importance for {kpi0}", xaxis_title="importance (share)",
                          yaxis_title="parameter", height=300 + 30 * len(imp))
        figs.append(bar)
    if len(meta["objectives"]) == 2:
        k1 = meta["objectives"][1]["kpi"]
        pf = pd.DataFrame(result["pareto"])
        fr = go.Figure()
        fr.add_scatter(x=df[kpi0][ok], y=df[k1][ok], mode="markers", name="trials", marker={"color": "#bbb"})
        if len(pf):
            fr.add_scatter(x=pf[kpi0], y=pf[k1], mode="lines+markers", name="Pareto front")
        fr.update_layout(title="Pareto front", xaxis_title=kpi0, yaxis_title=k1, height=420)
        figs.append(fr)
    return figs


def importances(result: dict[str, Any]) -> dict[str, float]:
    """Share of the first objective's variance each varied parameter explains (optuna's PED-ANOVA,
    over the feasible trials); empty when there are too few trials or one parameter."""
    study = result.get("study")
    if study is None or len(result["meta"]["space"]) < 2:
        return {}
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 4:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
                target=(lambda t: t.values[0]) if len(result["meta"]["objectives"]) > 1 else None)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: float(v) for k, v in imp.items()}


def html_page(result: dict[str, Any], title: str) -> str:
    """A self-contained page: the best design, its runners-up with paired differences, the charts."""
    esc = html.escape
    meta = result["meta"]
    kpi0 = meta["objectives"][0]["kpi"]
    parts = [page_head(title, 1200), f"<h1>{esc(title)}</h1>",
             f"<p>{esc(describe(result))}</p>", "<h2>Best design</h2><table><tr><th>parameter</th><th>value</th></tr>"]
    parts += [f"<tr><td>{esc(k)}</td><td>{esc(str(v))}</td></tr>" for k, v in result["best"]["params"].items()]
    parts.append("</table><table><tr><th>KPI</th><th>mean ± 95 % CI</th></tr>")
    shown = [o["kpi"] for o in meta["objectives"]] + [n for c in meta["constraints"] for n in _names(c["text"])]
    for k in dict.fromkeys(shown):
        v = result["best"]["kpis"].get(k)
        if v:
            parts.append(f"<tr><td>{esc(k)}</td><td>{v['mean']:.6g} ± {v['ci95']:.3g}</td></tr>")
    parts.append("</table><h2>Runners-up</h2><table><tr><th>design</th>"
                 f"<th>{esc(kpi0)}</th><th>best − this (paired)</th><th>best significantly better?</th></tr>")
    for r in result["runners_up"]:
        d = r["vs_best"]
        design = ", ".join(f"{k} = {v}" for k, v in r["params"].items())
        parts.append(f"<tr><td>{esc(design)}</td><td>{r['kpis'].get(kpi0, {}).get('mean', float('nan')):.6g}</td>"
                     f"<td>{d['diff_mean']:+.4g} ± {d['ci95']:.3g}{_relative(d)}</td>"
                     f"<td>{'yes' if d['best_significantly_better'] else 'no'}</td></tr>")
    parts.append("</table>")
    for note in meta.get("on_bound", []):
        parts.append(f"<p class='caution'><b>On a bound:</b> {esc(note)}.</p>")
    for k, fig in enumerate(figures(result)):
        parts.append(fig_html(fig, k, responsive=False))
    parts.append("</body></html>")
    return "\n".join(parts)


def _names(text: str) -> list[str]:
    try:
        return sorted(parse_constraint(text).names)
    except SpecError:
        return []


def _relative(d: dict[str, Any]) -> str:
    """The paired difference as a share of the best's mean (a significant 0.25 % is still 0.25 %)."""
    r = d.get("relative", math.nan)
    return f" ({abs(r):.2%} of the best)" if r == r and math.isfinite(r) else ""


def describe(result: dict[str, Any]) -> str:
    """One paragraph: what was searched, how, and how sure the pick is."""
    m = result["meta"]
    obj = " and ".join(f"{o['sense']} {o['kpi']}" for o in m["objectives"])
    cons = "; ".join(c["text"] for c in m["constraints"]) or "none"
    sig = [r for r in result["runners_up"] if r["vs_best"]["best_significantly_better"]]
    verdict = ("the best is significantly better than every runner-up" if result["runners_up"] and
               len(sig) == len(result["runners_up"]) else
               f"the best is not significantly better than {len(result['runners_up']) - len(sig)} runner(s)-up"
               if result["runners_up"] else "no runner-up to compare")
    return (f"{m['trials']} designs tried by {m['sampler']} ({m['skipped']} suggestions skipped: against a design "
            f"constraint or already tried), {m['replications']} replications each on common seeds"
            + (f" under {len(m['scenarios'])} scenarios ({', '.join(m['scenarios'])}; a KPI is their equal-weight mean)"
               if m.get("scenarios") else "")
            + f", to {obj}; constraints: {cons}. "
            f"The best {len(result['runners_up']) + 1} were run again with {m['confirm_replications']} replications "
            f"on fresh common seeds: {verdict} (paired differences, 95 % CI). "
            + "; ".join(f"{serial.describe(e, m.get('engine_why_not', []))}: {k} runs"
                        for e, k in m.get("engine", {}).items()) + ".")
