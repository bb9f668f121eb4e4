"""The comparison report: markdown tables, a generated reading, plotly figures and one
self-contained HTML page (DESIGN §12). Nothing here touches SimPy: it reads the tidy
tables that :mod:`twin.compare` builds.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .units import DAY, HOUR, WEEK, format_duration, reading_unit
from .state import COLOURS, LABELS, State

# (kpi, label, better, kind) — ``better`` is "high", "low" or None (not ranked)
COLUMNS = [
    ("good_units_per_week", "good units/week", None, "int"),
    ("demand_per_week", "demand/week", None, "int"),
    ("fill_rate", "fill rate", "high", "pct"),
    ("unit_cost", "unit cost", "low", "money"),
    ("conversion_cost", "conversion cost/unit", "low", "money"),
    ("oee", "OEE (bottleneck)", None, "pct"),
    ("lead_time_mean_s", "lead time mean", "low", "hours"),
    ("lead_time_p95_s", "lead time p95", "low", "hours"),
    ("wip_mean", "WIP (units)", None, "int"),
    ("peak_backlog", "peak backlog (units)", "low", "int"),
    ("time_to_recover_s", "time to recover", "low", "days"),
    ("unit_cost_transition", "unit cost in transition", "low", "money"),
    ("unit_cost_after", "unit cost after", "low", "money"),
    ("idle_capacity_after", "idle capacity after shift", "low", "pct"),
    ("event_prebuild_units", "built ahead of an announced event (units)", None, "int"),
    ("event_fill_rate", "fill rate around the event", "high", "pct"),
]
RANKED = [c for c in COLUMNS if c[2] is not None and c[0] not in ("unit_cost_transition", "unit_cost_after",
                                                                   "lead_time_p95_s")]
COLORS = {"static-line": "#7f7f7f", "dark-factory": "#1f77b4", "microfactory": "#2ca02c"}

# state colours and stacking order in every chart (busy at the bottom, planned stops on top)
STATE_COLOURS = COLOURS  # the state table's colours (twin.state.TABLE), in stacking order
STACK_ORDER = list(STATE_COLOURS)


CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "JPY": "¥"}


def currency_sign(code: str) -> str:
    """How money is written: the sign of a known ISO currency code, else the code and a space."""
    return CURRENCY_SIGNS.get(code.upper(), f"{code} ")


def money_format(code: str) -> str:
    """A format string for amounts of money in ``code`` (two decimals, thousands separated)."""
    return currency_sign(code).replace("{", "{{").replace("}", "}}") + "{:,.2f}"


def fmt(cell: dict[str, Any] | None, kind: str, currency: str = "$") -> str:
    """``mean ± ci95`` in display units; "not recovered" counts for missing recoveries."""
    if not cell:
        return "–"
    m, h = cell.get("mean"), cell.get("ci95")
    miss, n = cell.get("n_missing", 0), cell.get("n", 0)
    if m is None or (isinstance(m, float) and not math.isfinite(m)):
        if kind == "days" and miss:
            return "not recovered"
        return "–"
    h = h if (h is not None and isinstance(h, float) and math.isfinite(h)) else None
    if kind == "int":
        s = f"{m:,.0f}" + (f" ± {h:,.0f}" if h is not None else "")
    elif kind == "pct" and h is not None and (m - h < 0.0 or m + h > 1.0):
        # a share's t-interval past 0 or 100 % (few replications) says nothing beyond the bound:
        # show it clipped, as the interval it is
        s = f"{100 * m:.1f} % [{100 * max(0.0, m - h):.1f}, {100 * min(1.0, m + h):.1f}]"
    elif kind == "pct":
        s = f"{100 * m:.1f} %" + (f" ± {100 * h:.1f}" if h is not None else "")
    elif kind == "money":
        s = f"{currency}{m:,.2f}" + (f" ± {h:,.2f}" if h is not None else "")
    elif kind == "hours":
        s = f"{m / HOUR:.1f} h" + (f" ± {h / HOUR:.1f}" if h is not None else "")
    elif kind == "days" and cell.get("km_ci"):
        lo, hi = cell["km_ci"]
        s = (f"median {m / DAY:.1f} d [{lo / DAY:.1f}, " + (f"{hi / DAY:.1f}]" if math.isfinite(hi) else "not reached]"))
        if miss:
            s += f" ({miss} of {n + miss} not recovered)"
    elif kind == "days":
        s = f"{m / DAY:.1f} d" + (f" ± {h / DAY:.1f}" if h is not None else "")
        if miss:
            s += f" ({miss} of {n + miss} not recovered)"
    else:
        s = f"{m:.4g}"
    return s


def _val(cell: dict[str, Any] | None) -> tuple[float, float]:
    if not cell:
        return float("nan"), float("nan")
    m = cell.get("mean")
    h = cell.get("ci95")
    m = float("nan") if m is None else float(m)
    h = 0.0 if (h is None or not math.isfinite(float(h))) else float(h)
    return m, h


SIGNIFICANCE = 0.05
"""Family-wise error rate of the reading's verdicts (Holm's step-down over every paired
comparison the reading makes)."""


def _pair(paired: dict[str, Any] | None, sc: str, key: str, a: str, b: str) -> dict[str, Any] | None:
    """The paired difference ``a - b`` of measure ``key`` in scenario ``sc`` (sign flipped when
    stored as ``b vs a``), or None."""
    if not paired:
        return None
    cell = paired.get(sc, {}).get(key, {})
    if f"{a} vs {b}" in cell:
        return cell[f"{a} vs {b}"]
    d = cell.get(f"{b} vs {a}")
    return None if d is None else {**d, "diff_mean": -d["diff_mean"]}


_BETTER_WORD = {("money", "low"): "cheaper", ("pct", "high"): "higher", ("pct", "low"): "lower",
                ("hours", "low"): "shorter", ("days", "low"): "shorter", ("int", "low"): "lower",
                ("int", "high"): "higher"}


def _amount(d: float, kind: str) -> str:
    d = abs(d)
    if kind == "money":
        return fmt({"mean": d, "ci95": None}, "money")
    if kind == "pct":
        return f"{d * 100:.1f} percentage points"
    if kind == "hours":
        return f"{d / HOUR:.2f} h"
    if kind == "days":
        return f"{d / DAY:.1f} days"
    return f"{d:,.0f}"


def signed_amount_ci(d: dict[str, Any], kind: str) -> str:
    """A difference ``{"diff_mean", "ci95"}`` with its sign and CI: "+$1.23 ± 0.40", "-2.1 ± 0.5
    percentage points"; "0" when it is exactly zero (identical runs)."""
    m = d["diff_mean"]
    if m != m:
        return "n/a"
    if m == 0.0 and not d.get("ci95"):
        return "0"
    return ("-" if m < 0 else "+") + _amount_ci(d, kind)


def _amount_ci(d: dict[str, Any], kind: str) -> str:
    h = d.get("ci95")
    core = _amount(d["diff_mean"], kind)
    if h is None or not math.isfinite(h):
        return core
    unit = {"pct": " percentage points", "hours": " h", "days": " days"}.get(kind, "")
    half = _amount(h, kind).removesuffix(unit) if unit else _amount(h, kind)
    return core.removesuffix(unit) + f" ± {half}{unit}" if unit else f"{core} ± {half}"


def reading(summary: dict[str, Any], scenarios: dict[str, str], drops: set[str] | frozenset[str] = frozenset(),
            paired: dict[str, Any] | None = None) -> list[str]:
    """Plain sentences: who wins each ranked KPI in each scenario, by how much, and whether
    the difference is significant.

    With ``paired`` (from :func:`twin.compare.paired`: differences across replications on the
    same seeds, Holm-adjusted), a difference is significant when its adjusted p-value is below
    :data:`SIGNIFICANCE`, and the margin is the paired difference with its 95 % CI. Without it,
    only non-overlapping 95 % CIs count as significant (a weaker test).

    ``drops``: scenarios where demand falls; only there is less idle capacity after the
    shift a win (after a surge, no idle capacity means the plant is short of capacity)."""
    out: list[str] = []
    for sc, facs in summary.items():
        lines: list[str] = []
        for key, label, better, kind in RANKED:
            if key == "idle_capacity_after" and sc not in drops:
                continue
            vals = []
            for f, d in facs.items():
                m, h = _val(d.get(key))
                if kind == "days" and not math.isfinite(m) and d.get(key, {}).get("n_missing"):
                    m, h = float("inf"), 0.0  # never recovered ranks last
                if math.isfinite(m) or m == float("inf"):
                    vals.append((m, h, f))
            if len(vals) < 2:
                continue
            vals.sort(key=lambda x: x[0], reverse=(better == "high"))
            (m1, h1, f1), (m2, h2, f2) = vals[0], vals[1]
            if m1 == m2 == float("inf"):
                lines.append(f"{label}: none of {', '.join(v[2] for v in vals if v[0] == float('inf'))} recovered.")
                continue
            d = _pair(paired, sc, key, f1, f2) if math.isfinite(m2) else None
            if d is not None and d.get("n", 0) >= 2 and math.isfinite(d.get("p_holm", float("nan"))):
                word = _BETTER_WORD.get((kind, str(better)), "better")
                if d["p_holm"] < SIGNIFICANCE and (d["diff_mean"] < 0) == (better == "low") and d["diff_mean"] != 0:
                    lines.append(f"{label}: {f1} is {_amount_ci(d, kind)} {word} than {f2} ({_short(m1, kind)} vs "
                                 f"{_short(m2, kind)}; paired over {d['n']} replications, Holm p = {d['p_holm']:.2g}).")
                else:
                    lines.append(f"{label}: no significant difference between {f1} ({_short(m1, kind)}) and {f2} "
                                 f"({_short(m2, kind)}); paired difference {_amount_ci(d, kind)}, Holm p = "
                                 f"{d['p_holm']:.2g}.")
                continue
            overlap = abs(m1 - m2) <= h1 + h2 if math.isfinite(m2) else False
            if overlap:
                lines.append(f"{label}: no significant difference between {f1} ({_short(m1, kind)}) and "
                             f"{f2} ({_short(m2, kind)}); 95 % CIs overlap.")
            else:
                diff = _diff(m1, m2, kind)
                lines.append(f"{label}: {f1} wins ({_short(m1, kind)}) — {diff} than {f2} ({_short(m2, kind)}).")
        if lines:
            out.append(f"### {sc}: {scenarios.get(sc, '')}".rstrip(": "))
            out += [f"- {ln}" for ln in lines]
    return out


BREAKEVEN_NOTE = ("Each finished run is priced again under other prices (no new simulation): the value of "
                  "each estimated price at which the cheapest factory's mean conversion cost meets a rival's, "
                  "the other prices at their estimates; kpis.json → breakeven has every pair and price.")

FRONTS_NOTE = ("Each factory's candidate designs (its design protocol's space) on the same seeds: the ones "
               "no other candidate of the same factory beats on both baseline conversion cost and the shift's "
               "fill rate; kpis.json → pareto also has the front against the time to recover.")

VERDICT_MEASURES = ["conversion_cost", "fill_rate", "lead_time_mean_s", "time_to_recover_s"]
"""The measures of the winner matrix: cost, service, speed and adaptation."""


UNDECIDED = ("equivalent", "not separated")
"""Verdict cells without a winner: equivalent within the indifference zone (two one-sided tests),
or not separated by this run (neither a significant difference nor shown equivalence)."""


def _km_separated(c1: dict[str, Any], c2: dict[str, Any]) -> bool:
    """Whether one Kaplan-Meier median recovery is shorter than another beyond doubt: the 95 %
    interval of the first ends before the second's begins (a conservative comparison)."""
    hi1 = (c1.get("km_ci") or [float("nan")] * 2)[1]
    lo2 = (c2.get("km_ci") or [float("nan")] * 2)[0]
    return bool(math.isfinite(hi1) and (lo2 == float("inf") or (math.isfinite(lo2) and hi1 < lo2)))


def verdict(summary: dict[str, Any], paired: dict[str, Any] | None, replications: int) -> dict[str, Any]:
    """The answer first: a winner matrix (scenario × measure → the best factory when its paired
    difference to the runner-up is significant after Holm's correction; else "equivalent" when the
    two one-sided tests put the difference inside the indifference zone, or "not separated" by
    this run) with the margin (the difference with its interval at the level Holm tested it), and
    a few lines that say who wins what. Time to recover is censored: it is ranked by Kaplan-Meier
    medians, and a winner needs its median's interval to end before the runner-up's begins.
    ``replications``: for the line on what the run can separate."""
    labels = {k: (lab, better, kind) for k, lab, better, kind in COLUMNS}
    matrix: dict[str, dict[str, dict[str, str]]] = {}
    wins: dict[str, dict[str, int]] = {}
    halfwidths: dict[str, list[float]] = {}
    for sc, facs in summary.items():
        for key in VERDICT_MEASURES:
            label, better, kind = labels[key]
            vals = []
            for f, d in facs.items():
                m, _ = _val(d.get(key))
                if kind == "days" and not math.isfinite(m) and d.get(key, {}).get("n_missing"):
                    m = float("inf")
                if math.isfinite(m) or m == float("inf"):
                    vals.append((m, f))
            if len(vals) < 2 or all(v[0] == float("inf") for v in vals):
                continue
            vals.sort(key=lambda x: x[0], reverse=(better == "high"))
            (m1, f1), (m2, f2) = vals[0], vals[1]
            d = _pair(paired, sc, key, f1, f2) if math.isfinite(m2) else None
            if d is not None and math.isfinite(d.get("ci95_holm", float("nan"))):
                halfwidths.setdefault(key, []).append(d["ci95_holm"])
            if key == "time_to_recover_s" and facs[f1][key].get("estimator"):
                c1, c2 = facs[f1][key], facs[f2][key]
                ci1 = c1.get("km_ci") or [float("nan")] * 2
                if _km_separated(c1, c2):
                    cell = {"winner": f1, "margin": f"median {_short(m1, kind)} [{_short(ci1[0], kind)}, "
                                                    f"{_short(ci1[1], kind)}] against {f2} {_short(m2, kind)}"}
                else:
                    cell = {"winner": "not separated", "margin": f"Kaplan-Meier medians {f1} {_short(m1, kind)}, "
                                                                 f"{f2} {_short(m2, kind)}: intervals overlap"}
            elif not math.isfinite(m2) and math.isfinite(m1):
                cell = {"winner": f1, "margin": "the others did not recover"}
            elif d is not None and math.isfinite(d.get("p_holm", float("nan"))) and d["p_holm"] < SIGNIFICANCE \
                    and d["diff_mean"] != 0 and (d["diff_mean"] < 0) == (better == "low"):
                holm_ci = {**d, "ci95": d.get("ci95_holm", d.get("ci95"))}
                cell = {"winner": f1, "margin": f"{_amount_ci(holm_ci, kind)} {_BETTER_WORD.get((kind, str(better)), 'better')} "
                                                f"than {f2} (Holm-level interval)"}
            elif d is not None and d.get("equivalence", {}).get("equivalent"):
                zone = _amount(d["equivalence"]["delta"], kind)
                cell = {"winner": "equivalent", "margin": f"{f1} {_short(m1, kind)}, {f2} {_short(m2, kind)}: "
                                                          f"within ±{zone} (two one-sided tests)"}
            else:
                why = ("every replication gave the same difference: nothing to test it against"
                       if d is not None and d.get("zero_variance") else "not separated by this run")
                cell = {"winner": "not separated", "margin": f"{f1} {_short(m1, kind)}, {f2} {_short(m2, kind)}: {why}"}
            matrix.setdefault(sc, {})[key] = cell
            if cell["winner"] not in UNDECIDED:
                wins.setdefault(cell["winner"], {}).setdefault(key, 0)
                wins[cell["winner"]][key] += 1
    n_sc = len(summary)
    lines = []
    for key in VERDICT_MEASURES:
        label = labels[key][0]
        who = sorted(((w[key], f) for f, w in wins.items() if key in w), reverse=True)
        eq = sum(1 for m in matrix.values() if m.get(key, {}).get("winner") == "equivalent")
        rest = n_sc - sum(n for n, _ in who) - eq
        tail = "; ".join(x for x in (f"equivalent in {eq}" if eq else "", f"not separated in {rest}" if rest > 0 else "")
                         if x)
        if who:
            lines.append(f"{label}: " + "; ".join(f"{f} best in {n} of {n_sc} scenarios" for n, f in who)
                         + (f"; {tail}" if tail else "") + ".")
        elif any(key in m for m in matrix.values()):
            lines.append(f"{label}: no factory is significantly better in any scenario" + (f" ({tail})" if tail else "")
                         + ".")
    if replications <= 2 and halfwidths:
        parts = [f"{labels[k][0]} below about {_amount(float(np.median(h)), labels[k][2])}"
                 for k, h in halfwidths.items() if h]
        lines.append(f"Caution: {replications} replications separate nothing smaller than the Holm-level "
                     f"interval (Student t with {replications - 1} degree{'s' if replications > 2 else ''} of freedom): "
                     f"differences in {', '.join(parts)} are not separated by this run; use the full run for decisions.")
    elif replications <= 2:
        lines.append(f"Caution: {replications} replication{'s' if replications != 1 else ''} give wide intervals, "
                     "and after the correction for "
                     "multiple comparisons almost nothing is significant; use the full run for decisions.")
    return {"matrix": matrix, "lines": lines}


def _short(m: float, kind: str) -> str:
    if m == float("inf"):
        return "not recovered" if kind == "days" else "∞"
    if m != m:
        return "not reached"
    return fmt({"mean": m, "ci95": None}, kind)


def _diff(m1: float, m2: float, kind: str) -> str:
    if not math.isfinite(m2):
        return "it recovers; the other does not, which is worse"
    if kind == "pct":
        d = abs(m1 - m2) * 100
        return f"{d:.1f} percentage points {'better'}"
    rel = abs(m1 - m2) / abs(m2) * 100 if m2 else float("inf")
    if rel < 0.1:
        return _diff_abs(m1, m2, kind) + " (<0.1 %) better"
    if kind == "money":
        return f"{fmt({'mean': abs(m1 - m2), 'ci95': None}, 'money')} ({rel:.1f} %) better"
    if kind == "hours":
        return f"{abs(m1 - m2) / HOUR:.1f} h ({rel:.0f} %) better"
    if kind == "days":
        return f"{abs(m1 - m2) / DAY:.1f} days ({rel:.0f} %) better"
    return f"{abs(m1 - m2):,.0f} ({rel:.0f} %) better"


def _diff_abs(m1: float, m2: float, kind: str) -> str:
    if kind == "money":
        return fmt({"mean": abs(m1 - m2), "ci95": None}, "money")
    return f"{abs(m1 - m2):,.3g}"


def overrides_text(overrides: dict[str, dict[str, Any]], code: bool = False) -> str:
    """``factory: path = value, ...; ...`` for the spec changes of a comparison ("" when none)."""
    q = "`" if code else ""
    return "; ".join(f"{f}: " + ", ".join(f"{q}{k} = {v!r}{q}" for k, v in ov.items())
                     for f, ov in overrides.items() if ov)


def markdown(summary: dict[str, Any], scenarios: dict[str, str], meta: dict[str, Any],
             reading_lines: list[str]) -> str:
    """``report.md``: setup, one table per scenario (mean ± 95 % CI) and the reading."""
    g = meta["grid"]
    lines = [
        "# twin compare: static line vs dark factory vs microfactories",
        "",
        f"{g['replications']} replications × {len(g['factories'])} factories × {len(g['scenarios'])} scenarios; "
        f"{g['weeks']:g} weeks observed after {g['warmup'] / WEEK:g} week(s) of warm-up; seed {g['seed']}; "
        "every factory sees the same orders in each replication (common random numbers). "
        "Cells are mean ± 95 % Student-t half-width across replications. "
        f"twin {meta['twin_version']}.",
        "",
    ]
    if meta.get("verdict"):
        v = meta["verdict"]
        lines += ["## Verdict", ""] + [f"- {ln}" for ln in v["lines"]] + [""]
        lines += verdict_table_md(v["matrix"]) + [""]
    if meta.get("breakeven"):
        lines += ["### Where the cost ranking flips", "", BREAKEVEN_NOTE, ""]
        lines += [f"- {ln}" for ln in meta["breakeven"]] + [""]
    if meta.get("fronts"):
        lines += ["### Designs: the Pareto fronts", "", FRONTS_NOTE, ""]
        lines += [f"- {ln}" for ln in meta["fronts"]] + [""]
    if g.get("overrides"):  # the factories are not the reference specs: say so up front
        lines += [f"**Changed from the reference specs:** {overrides_text(g['overrides'], code=True)}", ""]
    if meta.get("uncertainty"):
        lines += ["## How sure is the ranking", "", meta.get("uncertainty_method", ""), ""]
        lines += [f"- {ln}" for ln in meta["uncertainty"]]
        lines.append("")
    for sc, facs in summary.items():
        lines += [f"## {sc}", "", scenarios.get(sc, ""), ""]
        lines += table_md(facs)
        lines.append("")
    lines += ["## Reading", "",
              meta.get("method") or ("Generated from the table above: the better factory on each ranked measure, "
                                     "by how much, and \"no significant difference\" where the 95 % CIs overlap."),
              ""]
    for ln in reading_lines:  # each scenario is a heading of its own, set apart by blank lines (CommonMark)
        lines += ["", ln, ""] if ln.startswith("#") else [ln]
    lines.append("")
    return "\n".join(lines)


def headline_cards(summary: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """Per factory, three numbers a plant manager asks for first: conversion cost per unit at
    baseline (the first scenario), the lowest fill rate over the scenarios and the longest time
    to recover (with the scenario each comes from)."""
    if not summary:
        return {}
    first = next(iter(summary))
    cards: dict[str, list[tuple[str, str]]] = {}
    for f in summary[first]:
        rows = [(f"conversion cost/unit ({first})", fmt(summary[first][f].get("conversion_cost"), "money"))]
        fills = [(v[f]["fill_rate"]["mean"], sc) for sc, v in summary.items()
                 if f in v and "fill_rate" in v[f] and v[f]["fill_rate"].get("mean") is not None]
        if fills:
            m, sc = min(fills)
            rows.append((f"lowest fill rate ({sc})", fmt({"mean": m, "ci95": None}, "pct")))
        rec = []
        for sc, v in summary.items():
            d = v.get(f, {}).get("time_to_recover_s")
            m = d.get("mean") if d else None
            if d and d.get("n_missing"):
                rec.append((float("inf"), sc))  # not recovered in some replication
            elif m is not None and math.isfinite(float(m)):
                rec.append((float(m), sc))
        if rec:
            m, sc = max(rec)
            rows.append((f"longest recovery ({sc})", "not recovered" if m == float("inf") else f"{m / DAY:.1f} d"))
        cards[f] = rows
    return cards


def verdict_table_md(matrix: dict[str, dict[str, dict[str, str]]]) -> list[str]:
    """The winner matrix as a markdown table: scenarios × measures."""
    labels = {k: lab for k, lab, _, _ in COLUMNS}
    keys = [k for k in VERDICT_MEASURES if any(k in m for m in matrix.values())]
    rows = ["| scenario | " + " | ".join(labels[k] for k in keys) + " |", "|---|" + "---|" * len(keys)]
    for sc, cells in matrix.items():
        rows.append(f"| {sc} | " + " | ".join(
            (f"**{cells[k]['winner']}** ({cells[k]['margin']})" if cells[k]["winner"] not in UNDECIDED
             else f"{cells[k]['winner']} ({cells[k]['margin']})") if k in cells else "–" for k in keys) + " |")
    return rows


def table_md(facs: dict[str, Any]) -> list[str]:
    cols = [c for c in COLUMNS if any(c[0] in d for d in facs.values())]

    def cell(x: str) -> str:
        return x.replace("|", "\\|")

    header = "| measure | " + " | ".join(cell(f) for f in facs) + " |"
    sep = "|---|" + "---|" * len(facs)
    rows = [header, sep]
    for key, label, _, kind in cols:
        rows.append(f"| {label} | " + " | ".join(fmt(d.get(key), kind) for d in facs.values()) + " |")
    rows.append("| bottleneck | " + " | ".join(cell(str(d.get("bottleneck", ""))) for d in facs.values()) + " |")
    return rows


# --------------------------------------------------------------------------- figures
def _scenario_menu(fig: go.Figure, scenarios: list[str], owner: list[int]) -> None:
    """Mark which scenario each trace belongs to (``owner[i]``: scenario of trace i), for the
    page's one scenario selector (:data:`SCENARIO_PICKER`) to show one scenario at a time in
    every chart together."""
    if len(scenarios) < 2:
        return
    fig.update_layout(meta={"scenarios": list(scenarios), "owner": list(owner)})


SCENARIO_PICK = "scenario-pick"
"""The id of the compare page's one scenario selector (the charts and the replays follow it)."""
SCENARIO_PICKER = """<script>
(function () {
  // one selector for the whole page: every chart marked with its traces' scenarios shows the one picked
  function show(name) {
    document.querySelectorAll('.js-plotly-plot').forEach(function (div) {
      var m = div.layout && div.layout.meta;
      if (!m || !m.scenarios) return;
      var k = m.scenarios.indexOf(name);
      if (k < 0) return;
      Plotly.restyle(div, {visible: m.owner.map(function (o) { return o === k; })});
    });
    document.querySelectorAll('[data-scenario-label]').forEach(function (el) { el.textContent = name; });
  }
  var pick = document.getElementById('scenario-pick');
  pick.addEventListener('change', function () { show(pick.value); });
  window.addEventListener('load', function () { show(pick.value); });
})();
</script>"""


def fig_output(daily: pd.DataFrame, shifts: dict[str, float | None], warmup: float) -> go.Figure:
    """Weekly good output against demand, one scenario at a time (a dropdown picks it); weeks
    count from the end of the warm-up, as the scenarios' shift times do."""
    scen = list(dict.fromkeys(daily["scenario"]))
    fig = go.Figure()
    owner: list[int] = []
    for k, sc in enumerate(scen):
        d = daily[daily["scenario"] == sc].copy()
        d["week"] = np.floor((d["t_end"] - 1.0 - warmup) / WEEK) + 1
        wk = d.groupby(["factory", "replication", "week"])[["demand", "output"]].sum().reset_index()
        mean = wk.groupby(["factory", "week"])[["demand", "output"]].mean().reset_index()
        dem = mean.groupby("week")["demand"].mean()
        fig.add_trace(go.Scatter(x=dem.index, y=dem.values, name="demand", mode="lines", visible=(k == 0),
                                 line={"dash": "dash", "color": "black"}))
        owner.append(k)
        for f, g in mean.groupby("factory", sort=False):
            fig.add_trace(go.Scatter(x=g["week"], y=g["output"], name=html.escape(str(f)), mode="lines+markers",
                                     line={"color": COLORS.get(str(f))}, visible=(k == 0)))
            owner.append(k)
        t = shifts.get(sc)
        if t is not None:  # the shift as a trace, so that it follows the scenario picked
            top = float(max(mean["output"].max(), dem.max())) * 1.05 if len(mean) else 1.0
            fig.add_trace(go.Scatter(x=[(t - warmup) / WEEK] * 2, y=[0, top], mode="lines", name="the shift",
                                     line={"dash": "dot", "color": "red"}, visible=(k == 0)))
            owner.append(k)
    if warmup > 0:
        fig.add_vrect(x0=-warmup / WEEK, x1=0, fillcolor="lightgrey", opacity=0.3, line_width=0)
    _scenario_menu(fig, scen, owner)
    fig.update_layout(title="Good units per week against demand (grey: warm-up; red: the shift)", height=420,
                      margin={"t": 90}, xaxis_title="weeks after the warm-up", yaxis_title="units per week",
                      yaxis_tickformat=",.0f")
    return fig


def fig_backlog(daily: pd.DataFrame, shifts: dict[str, float | None], warmup: float = 0.0) -> go.Figure:
    """The order backlog at the end of each day, one scenario at a time (days after the warm-up)."""
    scen = list(dict.fromkeys(daily["scenario"]))
    fig = go.Figure()
    owner: list[int] = []
    for k, sc in enumerate(scen):
        d = daily[daily["scenario"] == sc]
        mean = d.groupby(["factory", "t_end"])["backlog"].mean().reset_index()
        for f, g in mean.groupby("factory", sort=False):
            fig.add_trace(go.Scatter(x=(g["t_end"] - warmup) / DAY, y=g["backlog"], name=html.escape(str(f)),
                                     mode="lines", line={"color": COLORS.get(str(f))}, visible=(k == 0)))
            owner.append(k)
    _scenario_menu(fig, scen, owner)
    fig.update_layout(title="Order backlog: units ordered and not yet delivered, at the end of each day", height=380,
                      margin={"t": 90}, xaxis_title="days after the warm-up", yaxis_title="backlog (units)",
                      yaxis_tickformat=",.0f")
    return fig


def fig_cost_waterfall(costs: pd.DataFrame, scenario: str | None = None, currency: str = "$") -> go.Figure:
    """Per factory: the conversion-cost terms per good unit, labelled, one scenario at a time
    (material, the same bill in every factory, is left out of the bars and named in the title)."""
    scen = [scenario] if scenario else list(dict.fromkeys(costs["scenario"]))
    fig = go.Figure()
    owner: list[int] = []
    material = {}
    for k, sc in enumerate(scen):
        d = costs[(costs["scenario"] == sc) & (costs["term"] != "total")]
        mean = d.groupby(["factory", "term"], sort=False)["per_unit"].mean().reset_index()
        for f in dict.fromkeys(mean["factory"]):
            g = mean[(mean["factory"] == f) & (mean["term"] != "material")]
            material[f] = float(mean[(mean["factory"] == f) & (mean["term"] == "material")]["per_unit"].sum())
            y = list(g["per_unit"])
            fig.add_trace(go.Waterfall(x=[[html.escape(str(f))] * (len(g) + 1), list(g["term"]) + ["conversion"]],
                                       y=y + [None], measure=["relative"] * len(g) + ["total"],
                                       name=html.escape(str(f)), showlegend=False, visible=(k == 0),
                                       text=[f"{currency}{v:,.2f}" for v in y] + [f"{currency}{sum(y):,.2f}"],
                                       textposition="outside"))
            owner.append(k)
    _scenario_menu(fig, scen, owner)
    mat = ", ".join(f"{html.escape(k)} {currency}{v:,.0f}" for k, v in material.items())
    fig.update_layout(title=f"Conversion cost per good unit by term (material, not shown: {mat})", height=460,
                      margin={"t": 90}, xaxis_title="factory and cost term", yaxis_title=f"{currency} per good unit",
                      yaxis_tickprefix=currency)
    return fig


def fig_states(stations: pd.DataFrame, scenario: str | None = None, bottlenecks: dict[str, str] | None = None
               ) -> go.Figure:
    """Station-state shares of calendar time per factory and station, one scenario at a time."""
    scen = [scenario] if scenario else list(dict.fromkeys(stations["scenario"]))
    fig = go.Figure()
    owner: list[int] = []
    shown: set[str] = set()
    for k, sc in enumerate(scen):
        d = stations[stations["scenario"] == sc]
        mean = d.groupby(["factory", "station"], sort=False)[STACK_ORDER].mean().reset_index()
        x = [[html.escape(str(f)) for f in mean["factory"]], [html.escape(str(st)) for st in mean["station"]]]
        for s in STACK_ORDER:
            fig.add_trace(go.Bar(x=x, y=mean[s], name=LABELS.get(s, s), marker_color=STATE_COLOURS[s],
                                 legendgroup=s, showlegend=s not in shown, visible=(k == 0)))
            shown.add(s)
            owner.append(k)
    _scenario_menu(fig, scen, owner)
    fig.update_layout(barmode="stack", title="Station states (share of calendar time)", height=480, margin={"t": 90},
                      xaxis_title="factory and station", yaxis_title="share of calendar time", yaxis_tickformat=".0%",
                      yaxis_range=[0, 1.0])
    return fig


def fig_oee(stations: pd.DataFrame, bottlenecks: dict[str, dict[str, str]] | None = None) -> go.Figure:
    """OEE per factory and station (share of planned busy time), one scenario at a time; the
    bottleneck's bar is outlined."""
    scen = list(dict.fromkeys(stations["scenario"]))
    fig = go.Figure()
    owner: list[int] = []
    for k, sc in enumerate(scen):
        d = stations[stations["scenario"] == sc]
        mean = d.groupby(["factory", "station"], sort=False)["oee"].mean().reset_index()
        bn = (bottlenecks or {}).get(sc, {})
        fig.add_trace(go.Bar(x=[[html.escape(str(f)) for f in mean["factory"]],
                                [html.escape(str(st)) for st in mean["station"]]], y=mean["oee"],
                             marker_color=[COLORS.get(str(f), "#444") for f in mean["factory"]],
                             marker_line_width=[3 if bn.get(str(f)) == str(st) else 0
                                                for f, st in zip(mean["factory"], mean["station"])],
                             marker_line_color="black", showlegend=False, visible=(k == 0),
                             text=[f"{v:.0%}" for v in mean["oee"]], textposition="outside"))
        owner.append(k)
    _scenario_menu(fig, scen, owner)
    fig.update_layout(title="OEE per station (outlined: the bottleneck)", height=440, margin={"t": 90},
                      xaxis_title="factory and station", yaxis_title="OEE (share of planned busy time)",
                      yaxis_tickformat=".0%", yaxis_range=[0, 1.1])
    return fig


def fig_tornado(tornado: dict[str, Any], probs: dict[str, Any], scenario: str, key: str, top: int = 10) -> go.Figure:
    """Which uncertain parameters swing the difference between the two likeliest winners of
    ``key`` in ``scenario``: the partial rank correlation (PRCC) of each parameter's draws with the difference."""
    fig = go.Figure()
    p = probs.get(scenario, {}).get(key, {})
    ranked = [f for f, _ in sorted(p.items(), key=lambda kv: -(kv[1] if kv[1] == kv[1] else -1))]
    cell = tornado.get(scenario, {}).get(key, {})
    rows, pair = [], ""
    if len(ranked) >= 2:
        a, b = ranked[0], ranked[1]
        pair = f"{a} vs {b}" if f"{a} vs {b}" in cell else f"{b} vs {a}"
        rows = [r for r in cell.get(pair, []) if isinstance(r["prcc"], float) and math.isfinite(r["prcc"])][:top]
    rows = rows[::-1]
    fig.add_trace(go.Bar(x=[r["prcc"] for r in rows], y=[html.escape(r["parameter"]) for r in rows], orientation="h",
                         marker_color=["#d62728" if r["prcc"] > 0 else "#1f77b4" for r in rows],
                         text=[f"{r['prcc']:+.2f}" for r in rows], textposition="auto"))
    fig.update_layout(title=f"What the {html.escape(key.replace('_', ' '))} difference {html.escape(pair)} in "
                            f"'{html.escape(scenario)}' hangs on", height=120 + 32 * max(1, len(rows)),
                      xaxis_title="partial rank correlation with the difference (PRCC)", xaxis_range=[-1, 1])
    return fig


def fig_iso_cost(iso: dict[str, Any], nominal: tuple[float, float], box: tuple[tuple[float, float], tuple[float, float]],
                 scenario: str) -> go.Figure:
    """Which factory is cheapest over two prices (from :func:`twin.decision.iso_cost`): one colour
    per factory, the nominal point and the plausible-range box."""
    facs = iso["factories"]
    code = {f: i for i, f in enumerate(facs)}
    z = [[code.get(w, np.nan) if w is not None else np.nan for w in row] for row in iso["winner"]]
    n = max(1, len(facs))
    scale = []
    for i, f in enumerate(facs):
        c = COLORS.get(f, ["#9467bd", "#8c564b", "#e377c2", "#bcbd22"][i % 4])
        scale += [[i / n, c], [(i + 1) / n, c]]
    fig = go.Figure(go.Heatmap(x=iso["x"], y=iso["y"], z=z, zmin=-0.5, zmax=n - 0.5, colorscale=scale,
                               colorbar={"tickvals": list(range(n)), "ticktext": [html.escape(f) for f in facs],
                                         "title": "cheapest"},
                               hovertemplate="%{x:.4g}, %{y:.4g}<extra></extra>"))
    (x0, x1), (y0, y1) = box
    fig.add_shape(type="rect", x0=x0, x1=x1, y0=y0, y1=y1, line={"color": "black", "dash": "dash"})
    fig.add_trace(go.Scatter(x=[nominal[0]], y=[nominal[1]], mode="markers", name="estimate",
                             marker={"symbol": "x", "size": 12, "color": "black"}))
    fig.update_layout(title=f"Cheapest conversion cost in '{html.escape(scenario)}' over the two most decisive prices "
                            "(dashed: plausible ranges; ×: estimate)", height=480,
                      xaxis_title=html.escape(iso["x_name"]), yaxis_title=html.escape(iso["y_name"]))
    return fig


def fig_fronts(fronts: dict[str, Any]) -> go.Figure:
    """Each factory's candidate designs: baseline conversion cost against the shift's fill rate (left)
    and Kaplan-Meier median time to recover (right); the front of each factory joined by a line."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"fill rate in the {html.escape(fronts['shift'])}",
                                                       f"time to recover from the {html.escape(fronts['shift'])}"))
    for f, rows in fronts["factories"].items():
        colour = COLORS.get(f, "#9467bd")
        for col, key, flag, scale in ((1, "fill", "on_fill_front", 100.0), (2, "ttr", "on_recovery_front", 1 / DAY)):
            pts = [r for r in rows if math.isfinite(r["cost"]) and math.isfinite(r[key])]
            front = sorted((r for r in pts if r[flag]), key=lambda r: r["cost"])
            fig.add_trace(go.Scatter(x=[r["cost"] for r in pts], y=[r[key] * scale for r in pts], mode="markers",
                                     marker={"color": colour, "size": 9}, name=html.escape(f), legendgroup=f,
                                     showlegend=col == 1, text=[html.escape(r["design"]) for r in pts],
                                     hovertemplate="%{text}: $%{x:.2f}, %{y:.1f}<extra></extra>"), row=1, col=col)
            fig.add_trace(go.Scatter(x=[r["cost"] for r in front], y=[r[key] * scale for r in front], mode="lines",
                                     line={"color": colour}, legendgroup=f, showlegend=False, hoverinfo="skip"),
                          row=1, col=col)
    fig.update_xaxes(title_text=f"conversion cost at {html.escape(fronts['baseline'])} ($/unit)")
    fig.update_yaxes(title_text="fill rate (%)", row=1, col=1)
    fig.update_yaxes(title_text="median days (KM)", row=1, col=2)
    fig.update_layout(title="Each factory's candidate designs and their Pareto fronts (lines)", height=460)
    return fig


def page_head(title: str, width: int) -> str:
    """Start of a self-contained page: styles and plotly.js inline, nothing fetched."""

    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:{width}px}}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
            "text-align:right}.nums td{white-space:nowrap}th:first-child,td:first-child{text-align:left}"
            ".cards{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}.card{border:1px solid #ccc;padding:.3em 1em;"
            "flex:1 1 16em}.card h3{margin:.3em 0}.card p{display:flex;justify-content:space-between;gap:1em;"
            "margin:.3em 0}.caution{color:#a40}</style>"
            f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>")


def html_page(summary: dict[str, Any], scenarios: dict[str, str], meta: dict[str, Any], reading_lines: list[str],
              figures: list[go.Figure], default_scenario: str | None = None, extra: str = "") -> str:
    """One self-contained page: plotly.js is embedded once, no external resources. The charts
    that show one scenario at a time follow one selector above them, set at first to
    ``default_scenario`` (the compare report's first scenario with a shift); ``extra`` (HTML, the
    replays) closes the page."""
    esc = html.escape
    parts = [
        page_head("twin compare", 1400),
        "<h1>twin compare: static line vs dark factory vs microfactories</h1>",
        f"<p>{esc(meta['description'])}</p>",
    ]
    if meta.get("verdict"):
        v = meta["verdict"]
        labels = {k: lab for k, lab, _, _ in COLUMNS}
        keys = [k for k in VERDICT_MEASURES if any(k in m for m in v["matrix"].values())]
        parts.append("<section id='verdict'><h2>Verdict</h2><ul>" + "".join(f"<li>{esc(ln)}</li>" for ln in v["lines"])
                     + "</ul><table class='matrix'><tr><th>scenario</th>"
                     + "".join(f"<th>{esc(labels[k])}</th>" for k in keys) + "</tr>")
        for sc, cells in v["matrix"].items():
            tds = []
            for k in keys:
                c = cells.get(k)
                if c is None:
                    tds.append("<td>–</td>")
                elif c["winner"] in UNDECIDED:
                    tds.append(f"<td class='tie'>{esc(c['winner'])}<br><small>{esc(c['margin'])}</small></td>")
                else:
                    colour = COLORS.get(c["winner"], "#444")
                    tds.append(f"<td><b style='color:{colour}'>{esc(c['winner'])}</b><br>"
                               f"<small>{esc(c['margin'])}</small></td>")
            parts.append(f"<tr><td>{esc(sc)}</td>" + "".join(tds) + "</tr>")
        parts.append("</table>")
        if meta.get("breakeven"):
            parts.append(f"<h3>Where the cost ranking flips</h3><p>{esc(BREAKEVEN_NOTE)}</p><ul>"
                         + "".join(f"<li>{esc(ln)}</li>" for ln in meta["breakeven"]) + "</ul>")
        if meta.get("fronts"):
            parts.append(f"<h3>Designs: the Pareto fronts</h3><p>{esc(FRONTS_NOTE)}</p><ul>"
                         + "".join(f"<li>{esc(ln)}</li>" for ln in meta["fronts"]) + "</ul>")
        parts.append("</section>")
    cards = headline_cards(summary)
    if cards:
        parts.append("<div class='cards'>" + "".join(
            f"<div class='card' style='border-top:4px solid {COLORS.get(f, '#444')}'><h3>{esc(f)}</h3>"
            + "".join(f"<p><span>{esc(label)}</span><b>{esc(value)}</b></p>" for label, value in rows) + "</div>"
            for f, rows in cards.items()) + "</div>")
    if meta.get("uncertainty"):
        parts.append("<h2>How sure is the ranking</h2>")
        parts.append(f"<p>{esc(meta.get('uncertainty_method', ''))}</p><ul>")
        parts += [f"<li>{esc(ln)}</li>" for ln in meta["uncertainty"]]
        parts.append("</ul>")
    for sc, facs in summary.items():
        parts.append(f"<h2>{esc(sc)}</h2><p>{esc(scenarios.get(sc, ''))}</p>")
        parts.append("<table><tr><th>measure</th>" + "".join(f"<th>{esc(f)}</th>" for f in facs) + "</tr>")
        for key, label, _, kind in COLUMNS:
            if not any(key in d for d in facs.values()):
                continue
            parts.append(f"<tr><td>{esc(label)}</td>" + "".join(f"<td>{esc(fmt(d.get(key), kind))}</td>"
                                                                for d in facs.values()) + "</tr>")
        parts.append("<tr><td>bottleneck</td>" + "".join(f"<td>{esc(str(d.get('bottleneck', '')))}</td>"
                                                         for d in facs.values()) + "</tr></table>")
    parts.append("<h2>Reading</h2>")
    if meta.get("method"):
        parts.append(f"<p class='method'>{esc(meta['method'])}</p>")
    parts.append("<ul>")
    for ln in reading_lines:
        if ln.startswith("- "):
            parts.append(f"<li>{esc(ln[2:])}</li>")
        else:  # "### scenario: description"
            name, _, rest = ln.removeprefix("### ").partition(": ")
            parts.append(f"</ul><h3>{esc(name)}</h3><p>{esc(rest)}</p><ul>")
    parts.append("</ul>")
    menus = [f.layout.meta["scenarios"] for f in figures if isinstance(f.layout.meta, dict) and "scenarios" in f.layout.meta]
    if menus:
        names = list(dict.fromkeys(n for m in menus for n in m))
        first = default_scenario if default_scenario in names else names[0]
        parts.append(f"<h2>Charts</h2><p class='picker'><label>Scenario shown in the charts: <select id='{SCENARIO_PICK}'>"
                     + "".join(f"<option value='{esc(n)}'{' selected' if n == first else ''}>{esc(n)}</option>"
                               for n in names) + "</select></label></p>")
    for number, fig in enumerate(figures):
        parts.append(fig_html(fig, number))
    if menus:
        parts.append(SCENARIO_PICKER)
    parts.append(extra)  # the replays
    parts.append("</body></html>")
    return "\n".join(parts)


# --------------------------------------------------------------------------- figures for library users
def station_states(res: Any, title: str = "Station states") -> go.Figure:
    """Stacked bars of the mean fraction of time each station spends in each state
    (``res`` is a :class:`twin.Results`, any number of replications)."""
    states = STACK_ORDER
    palette = STATE_COLOURS
    st = res.stations
    st = st.reset_index() if "station" not in st.columns else st
    mean = st.groupby("station", sort=False)[states].mean()
    fig = go.Figure()
    for s in states:
        fig.add_trace(go.Bar(x=[html.escape(str(n)) for n in mean.index], y=mean[s], name=LABELS.get(s, s),
                             marker_color=palette[s]))
    fig.update_layout(barmode="stack", title=html.escape(title), xaxis_title="station",
                      yaxis={"tickformat": ".0%", "range": [0, 1.02], "title": {"text": "share of calendar time"}})
    return fig


def ci_band(df: pd.DataFrame, x: str, y: str, ci: str, group: str | None = None, title: str = "",
            y_title: str | None = None) -> go.Figure:
    """Lines of ``y`` against ``x`` with shaded ``y ± ci`` bands, one line per ``group``."""
    fig = go.Figure()
    groups = [(None, df)] if group is None else list(df.groupby(group, sort=False))
    palette = ["#1f77b4", "#2ca02c", "#7f7f7f", "#d62728", "#9467bd", "#ff7f0e"]
    for i, (name, g) in enumerate(groups):
        g = g.sort_values(x)
        color = COLORS.get(str(name), palette[i % len(palette)])
        upper = g[y] + g[ci].fillna(0)
        lower = g[y] - g[ci].fillna(0)
        fig.add_trace(go.Scatter(x=list(g[x]) + list(g[x])[::-1], y=list(upper) + list(lower)[::-1],
                                 fill="toself", fillcolor=color, opacity=0.2, line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(x=g[x], y=g[y], mode="lines+markers", line={"color": color},
                                 name=html.escape(str(name)) if name is not None else html.escape(y)))
    fig.update_layout(title=html.escape(title), xaxis_title=html.escape(x), yaxis_title=html.escape(y_title or y))
    return fig


def output_over_time(res: Any, warmup: float = 0.0, title: str = "Output and WIP over time") -> go.Figure:
    """Good units per hour and WIP at each hour's end, mean over replications (the warm-up
    shaded); ``res`` is a :class:`twin.Results`."""
    ts = res.timeseries.groupby("t_end", sort=True)[["good", "wip"]].mean().reset_index()
    hours = ts["t_end"] / HOUR
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=hours, y=ts["good"], name="good units per hour", line={"color": "#2ca02c"}))
    fig.add_trace(go.Scatter(x=hours, y=ts["wip"], name="WIP (units)", line={"color": "#7f7f7f"}), secondary_y=True)
    if warmup > 0:
        fig.add_vrect(x0=0, x1=warmup / HOUR, fillcolor="#999", opacity=0.15, line_width=0)
    fig.update_layout(title=html.escape(title), xaxis_title="hours since the start (the warm-up shaded)")
    fig.update_yaxes(title_text="good units per hour", secondary_y=False)
    fig.update_yaxes(title_text="WIP (units)", secondary_y=True)
    return fig


def fig_gantt(res: Any, t0: float, hours: float = 8.0, max_spells: int = 3000) -> go.Figure:
    """Server states over ``hours`` from ``t0`` (s) in the first replication: one row per server."""
    st = res.states
    if "replication" in st:
        st = st[st["replication"] == st["replication"].min()]
    t1 = t0 + hours * HOUR
    w = st[(st["end"] > t0) & (st["start"] < t1)].head(max_spells)
    fig = go.Figure()
    for s in STACK_ORDER:
        g = w[w["state"] == s]
        if g.empty:
            continue
        a = (g["start"].clip(t0, t1) - t0) / HOUR
        b = (g["end"].clip(t0, t1) - t0) / HOUR
        fig.add_trace(go.Bar(x=b - a, base=a, y=[html.escape(f"{n}/{k}") for n, k in zip(g["station"], g["server"])],
                             orientation="h", name=LABELS.get(s, s), marker_color=STATE_COLOURS[s]))
    fig.update_layout(barmode="overlay", title=f"Server states over {hours:g} h after the warm-up (first replication)",
                      height=160 + 22 * max(1, w[["station", "server"]].drop_duplicates().shape[0]),
                      xaxis_title="hours after the warm-up", yaxis_title="station / server",
                      yaxis_autorange="reversed")
    return fig


FLOW_ARCS = {"retest": "#6a3d9a", "detour": "#1f78b4", "back": "#e6550d", "ahead": "#33a02c", "rework": "#b15928"}
"""Colour of each kind of loop in the flow view (route legs are grey)."""


def flow_edges(spec: Any) -> list[tuple[str, str, str, float | None]]:
    """Every way a lot moves besides its route: ``(from, to, kind, probability per pass)`` with
    kind ``retest`` (the same station again), ``back``/``ahead`` (to a station of the route),
    ``detour`` (to a station off the route and back, a repair bench) and ``rework`` (found
    defects sent to a rework station; probability ``None``: it depends on the defects)."""
    on_route = {n for p in spec.products for n in p.route}
    pos = {n: min(p.route.index(n) for p in spec.products if n in p.route) for n in on_route}
    out: list[tuple[str, str, str, float | None]] = []
    for st in spec.stations:
        for tgt, prob in st.routing.items():
            if tgt == st.name:
                kind = "retest"
            elif tgt not in on_route:
                kind = "detour"
            else:
                kind = "back" if pos[tgt] <= pos.get(st.name, 0) else "ahead"
            out.append((st.name, tgt, kind, float(prob)))
        if st.quality is not None and st.quality.rework_at is not None:
            out.append((st.name, st.quality.rework_at, "rework", None))
    return out


def _arc(x0: float, y0: float, x1: float, y1: float, lift: float, n: int = 24) -> tuple[list[float], list[float]]:
    """Points of a quadratic Bézier from (x0, y0) to (x1, y1) bowed up by ``lift``."""
    cx, cy = (x0 + x1) / 2, max(y0, y1) + lift
    ts = [i / (n - 1) for i in range(n)]
    return ([(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t ** 2 * x1 for t in ts],
            [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t ** 2 * y1 for t in ts])


def fig_flow(summary: dict[str, Any], routes: list[list[str]], shifting: pd.DataFrame | None = None,
             edges: list[tuple[str, str, str, float | None]] | None = None) -> go.Figure:
    """The line as a flow: stations in route order (every product's route drawn), each placed at its
    busy share of calendar time, the bottleneck ringed; stations off every route (a repair bench, a
    rework station) beside the station that sends lots there, and every loop (:func:`flow_edges`)
    drawn as an arc; hover shows the shifting-bottleneck shares and each loop's probability."""
    edges = edges or []
    order: list[str] = []
    for r in routes:
        for n in r:
            if n not in order:
                order.append(n)
    x: dict[str, float] = {n: float(i) for i, n in enumerate(order)}
    beside: dict[str, int] = {}
    for src, tgt, _, _ in edges:
        if tgt not in x and src in x:
            beside[src] = beside.get(src, 0) + 1
            x[tgt] = x[src] + 0.5 / beside[src]  # between its sender and the next route station
            order.append(tgt)
    busy = {n: float(summary["stations"].get(n, {}).get(State.BUSY.key, {}).get("mean") or 0.0) for n in order}
    fig = go.Figure()
    for r in routes:
        fig.add_trace(go.Scatter(x=[x[n] for n in r], y=[busy[n] for n in r], mode="lines",
                                 line={"color": "#bbb", "width": 2}, hoverinfo="skip", showlegend=False))
    shown: set[str] = set()
    for src, tgt, kind, prob in edges:
        if src not in x or tgt not in x:
            continue
        what = f"{kind} {src} → {tgt}" + (f": {prob:.1%} of passes" if prob is not None else ": the found defects")
        if kind == "retest":  # a small loop over the station
            xs = [x[src] + 0.12 * math.sin(2 * math.pi * i / 23) for i in range(24)]
            ys = [busy[src] + 0.09 + 0.06 * (1 - math.cos(2 * math.pi * i / 23)) for i in range(24)]
        else:
            xs, ys = _arc(x[src], busy[src], x[tgt], busy[tgt], 0.12 if kind != "back" else 0.2)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=kind, legendgroup=kind, showlegend=kind not in shown,
                                 line={"color": FLOW_ARCS[kind], "width": 2, "dash": "dot"},
                                 hovertext=[html.escape(what)] * len(xs), hoverinfo="text"))
        shown.add(kind)
    bn = str(summary.get("bottleneck", ""))
    hover = []
    for n in order:
        extra = ""
        if shifting is not None and n in shifting.index:
            extra = f"<br>sole bottleneck {shifting.loc[n, 'sole']:.0%}, shifting {shifting.loc[n, 'shifting']:.0%}"
        hover.append(f"{html.escape(n)}: busy {busy[n]:.0%}{extra}" + (" (bottleneck)" if n == bn else ""))
    # a sequential blue scale for the busy share, the bottleneck ringed in black: a ring in the
    # scale's own hue would vanish on a busy station
    fig.add_trace(go.Scatter(x=[x[n] for n in order], y=[busy[n] for n in order], mode="markers+text",
                             text=[html.escape(n) for n in order], textposition="bottom center", hovertext=hover,
                             hoverinfo="text", showlegend=False,
                             marker={"size": 22, "color": [busy[n] for n in order], "colorscale": "Blues",
                                     "cmin": 0, "cmax": 1, "colorbar": {"title": "busy"},
                                     "line": {"width": [5 if n == bn else 1 for n in order],
                                              "color": ["#000" if n == bn else "#555" for n in order]}}))
    ticks = sorted(order, key=lambda n: x[n])
    fig.update_layout(title="The line: stations in route order at their busy share (ringed in black: the bottleneck; "
                            "dotted: retests, detours and rework)",
                      height=440, xaxis_title="stations in route order (off-route stations beside their sender)",
                      yaxis_title="busy share of calendar time", yaxis_tickformat=".0%", yaxis_range=[-0.08, 1.3],
                      legend={"title": {"text": "loops"}},
                      xaxis={"tickvals": [x[n] for n in ticks], "ticktext": [html.escape(n) for n in ticks]})
    return fig


def fig_sankey(flows: pd.DataFrame, edges: list[tuple[str, str, str, float | None]], stations: list[str],
               title: str = "Material flow") -> go.Figure:
    """Units through the line as a Sankey diagram: from release through each station to good or
    scrapped, every route leg, detour, loop back and rework a link with its units (coloured as
    in the flow view); units tested again at the same station go to a node of their own (a
    Sankey link cannot start and end at one node). ``flows``: :func:`twin.frames.flow_table`."""
    kind = {(a, b): k for a, b, k, _ in edges}
    nodes = ["released", *stations, "good", "scrapped"]
    again = [f"{n}: tested again" for n in stations
             if ((flows["source"] == n) & (flows["target"] == n)).any()]
    nodes += again
    at = {n: i for i, n in enumerate(nodes)}
    src, tgt, val, col, hover = [], [], [], [], []
    for a, b, n in flows.itertuples(index=False):
        if n <= 0:
            continue
        k = kind.get((a, b), "retest" if a == b else None)
        b2 = f"{a}: tested again" if a == b else b
        src.append(at[a])
        tgt.append(at[b2])
        val.append(int(n))
        c = FLOW_ARCS.get(k or "", "#999999") if b != "scrapped" else "#d62728"
        col.append(_rgba(c, 0.45))
        hover.append(html.escape(f"{a} → {b}: {int(n):,} units" + (f" ({k})" if k else "")))
    fig = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [html.escape(n) for n in nodes], "pad": 14, "thickness": 14,
              "color": ["#555"] + ["#1f77b4"] * len(stations) + ["#2ca02c", "#d62728"] + ["#6a3d9a"] * len(again)},
        link={"source": src, "target": tgt, "value": val, "color": col, "customdata": hover,
              "hovertemplate": "%{customdata}<extra></extra>"}))
    fig.update_layout(title=title + ": units from release to good or scrapped over the observation window "
                                    "(first replication; grey: route legs, coloured: loops, red: scrap)", height=460)
    return fig


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def run_page(summary: dict[str, Any], res: Any, title: str, routes: list[list[str]] | None = None,
             shifting: pd.DataFrame | None = None,
             edges: list[tuple[str, str, str, float | None]] | None = None,
             replay: str | None = None, flows: pd.DataFrame | None = None, stations: list[str] | None = None) -> str:
    """One self-contained HTML page for ``twin run --out``: the KPI and station tables
    (mean ± 95 % CI), the station-state and output figures, the replay section ``replay``
    (:func:`twin.floorview.replay_section`) and the Sankey diagram of ``flows``; works offline."""
    esc = html.escape

    def cell(d: dict[str, Any] | None, digits: int = 3) -> str:
        if not d or d.get("mean") is None or not math.isfinite(float(d["mean"])):
            return "–"
        m, h = float(d["mean"]), d.get("ci95")
        return f"{m:,.{digits}f}" + (f" ± {float(h):,.{digits}f}" if h is not None and math.isfinite(float(h)) else "")

    k = summary["kpis"]
    lt = float(k.get("lead_time_mean_s", {}).get("mean") or 0.0)
    lt_scale, lt_unit = reading_unit(lt)
    rows = [("throughput (good units/h)", "throughput_per_hour", 2), ("good units", "good_units", 0),
            ("lost arrivals (units, turned away at a full first buffer)", "lost_units", 0),
            ("lost arrivals (share of arrivals)", "lost_share", 3),
            (f"lead time mean ({lt_unit})", "lead_time_mean_s", 2), (f"lead time p95 ({lt_unit})", "lead_time_p95_s", 2),
            ("WIP (units)", "wip_mean", 2),
            ("OEE (bottleneck availability × effectiveness × the line's quality ratio)", "oee", 3), ("scrapped units", "scrap_units", 0),
            ("reworked units", "rework_units", 0), ("escaped defects", "escaped_units", 0),
            (f"unit cost ({summary.get('currency', 'USD')} per good unit)", "unit_cost", 2), ("fill rate", "fill_rate", 3)]
    parts = [
        page_head("twin run", 1200),
        f"<h1>{esc(title)}</h1>",
        f"<p>{summary['replications']} replications, horizon {format_duration(summary['horizon'])}, "
        + (f"from the line's state at {format_duration(summary['from_state']['time'])} "
           f"({esc(summary['from_state']['file'])})" if "from_state" in summary
           else f"warm-up {format_duration(summary['warmup'])}")
        + f", seed {summary['seed']}; mean ± 95 % CI. Bottleneck: "
        f"<b>{esc(str(summary['bottleneck']))}</b>.</p>",
        "<table class='nums'><tr><th>measure</th><th>value</th></tr>",
    ]
    if summary["replications"] <= 2:
        parts.insert(3, f"<p class='caution'><b>Caution:</b> {summary['replications']} replication(s): wide "
                        "intervals; use more replications for decisions.</p>")
    if summary.get("nothing_made"):
        parts.insert(3, f"<p class='caution'><b>Nothing made:</b> {esc(summary['nothing_made'])}.</p>")
    has_costs = bool(k.get("cost_total", {}).get("mean"))
    for label, key, digits in rows:
        lossy = bool(k.get("lost_units", {}).get("mean"))
        # a line fed by arrivals: its fill rate is the share let in, which the lost rows already say
        if key in k and (key != "unit_cost" or has_costs) and (not key.startswith("lost_") or lossy) \
                and not (key == "fill_rate" and lossy):
            d = k[key]
            if key.startswith("lead_time"):  # durations in the unit that suits them, as on the terminal
                d = {"mean": None if d.get("mean") is None else float(d["mean"]) * lt_scale,
                     "ci95": None if d.get("ci95") is None else float(d["ci95"]) * lt_scale}
            parts.append(f"<tr><td>{esc(label)}</td><td>{esc(cell(d, digits))}</td></tr>")
    parts.append("</table>")
    # a state no station was ever in is a column of zeros: left out (the terminal table keeps them all)
    used = [f for f in STACK_ORDER if any(float((st.get(f) or {}).get("mean") or 0.0) > 0 for st in summary["stations"].values())]
    fields = [*used, "availability", "technical_availability", "oee"]
    # many state columns: the table scrolls inside its box rather than widening the page
    parts.append("<div style='overflow-x:auto'><table class='nums'><tr><th>station</th>"
                 + "".join(f"<th>{f}</th>" for f in fields) + "</tr>")
    for name, st in summary["stations"].items():
        parts.append(f"<tr><td>{esc(str(name))}</td>" + "".join(f"<td>{esc(cell(st.get(f)))}</td>" for f in fields)
                     + "</tr>")
    parts.append("</table></div><p><b>availability</b>: ISO 22400-2's APT/PBT, producing time over planned busy time, "
                 "so idle, blocked and starved time count against it; <b>technical_availability</b>: time not down "
                 "over planned busy time, the machine's own reliability (MTBF/(MTBF+MTTR)).</p>")
    if shifting is not None:
        parts.append("<h2>Where the bottleneck is</h2><p>By the active-period method (Roser, Nakano and Tanaka "
                     "2002): the share of the observed time in which each station holds the longest active "
                     "period alone (sole) or while handing over to the next (shifting).</p>")
        parts.append("<table><tr><th>station</th><th>sole bottleneck</th><th>shifting bottleneck</th></tr>")
        for name, row in shifting.iterrows():
            parts.append(f"<tr><td>{esc(str(name))}</td><td>{row['sole']:.1%}</td><td>{row['shifting']:.1%}</td></tr>")
        parts.append("</table>")
    figs = [station_states(res), output_over_time(res, float(summary["warmup"]))]
    if routes:
        figs.append(fig_flow(summary, routes, shifting, edges))
    figs.append(fig_gantt(res, float(summary["warmup"])))
    if flows is not None and len(flows):
        figs.append(fig_sankey(flows, edges or [], stations or []))
    if replay:
        parts.append(replay)
    for k, fig in enumerate(figs):
        parts.append(fig_html(fig, k))
    parts.append("</body></html>")
    return "\n".join(parts)


def fig_html(fig: go.Figure, index: int, responsive: bool = True) -> str:
    """A figure as a ``<div>`` for a page (plotly.js loaded once by the page), with the id
    ``chart-INDEX`` instead of plotly's random one: the same results give the same page, byte
    for byte (a merged shard run's report is the unsharded run's)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{index}",
                       config={"displaylogo": False, **({"responsive": True} if responsive else {})})


def sweep_page(tab: pd.DataFrame, keys: list[str], picks: dict[str, Any], meta: dict[str, Any], title: str) -> str:
    """``report.html`` of ``twin sweep``: each KPI of the selection against the first axis with its
    95 % band (one line per combination of the other axes), the points' table and the pick of the
    best point per KPI (Clark-Yang, common random numbers). Self-contained like every report."""
    esc = html.escape
    kpis = [k for k in ("throughput_per_hour", "lead_time_mean_s", "wip_mean", "oee", "unit_cost", "fill_rate")
            if k in tab and tab[k].notna().any()]
    t = tab.copy()
    group = None
    if len(keys) > 1:  # the other axes, as one label per line
        group = " · ".join(keys[1:])
        t[group] = t[keys[1:]].astype(str).agg(", ".join, axis=1)
    lt_scale, lt_unit = reading_unit(float(t["lead_time_mean_s"].max())) if "lead_time_mean_s" in t else (1.0, "s")
    for c in ("lead_time_mean_s", "lead_time_mean_s_ci95"):
        if c in t:
            t[c] = t[c] * lt_scale
    labels = {"throughput_per_hour": "throughput (good units/h)", "lead_time_mean_s": f"lead time mean ({lt_unit})",
              "wip_mean": "WIP (units)", "oee": "OEE (bottleneck)", "unit_cost": "unit cost", "fill_rate": "fill rate"}
    parts = [page_head(title, 1200), f"<h1>{esc(title)}</h1>",
             f"<p>{len(t)} points × {meta['replications']} replications, horizon {format_duration(meta['horizon'])}, "
             f"warm-up {format_duration(meta['warmup'])}, seed {meta['seed']}: the same seeds at every point "
             "(common random numbers), so differences between points are the parameters', not noise. Bands and "
             "cells are mean ± 95 % CI.</p>"]
    if picks:
        parts.append("<h2>Best point per measure</h2><table><tr><th>measure</th><th>best point</th>"
                     "<th>how sure</th></tr>")
        for kpi, p in picks.items():
            sure = (f"probability of correct selection ≥ {p['pcs']:.0%} when the best leads by {p['delta']:.3g} or more"
                    if p["met"] else f"not yet a sure pick: {p['n_needed']} replications would give "
                    f"{p['pcs']:.0%} at a lead of {p['delta']:.3g}")
            parts.append(f"<tr><td>{esc(labels.get(kpi, kpi))}</td><td>{esc(str(p['best']))}</td>"
                         f"<td style='text-align:left'>{esc(sure)}</td></tr>")
        parts.append("</table>")
    for n, k in enumerate(kpis):
        fig = ci_band(t, keys[0], k, f"{k}_ci95", group=group, title=labels.get(k, k), y_title=labels.get(k, k))
        parts.append(fig_html(fig, n, responsive=False))
    parts.append("<h2>Points</h2><table class='nums'><tr>" + "".join(f"<th>{esc(k)}</th>" for k in keys)
                 + "".join(f"<th>{esc(labels.get(k, k))}</th>" for k in kpis) + "</tr>")
    for _, row in t.iterrows():
        cells = "".join(f"<td>{esc(str(row[k]))}</td>" for k in keys)
        cells += "".join(f"<td>{row[k]:,.3g} ± {row[f'{k}_ci95']:,.2g}</td>" if row[k] == row[k] else "<td>–</td>"
                         for k in kpis)
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
