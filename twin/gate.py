"""A statistically sound KPI regression gate for line models kept in a repository.

``twin gate TARGET --baseline FILE --update-baseline`` runs a spec (or a compare grid) and
records, per factory × scenario × KPI, the value of every replication with its seed, the run
options, the model's hash and twin's version. A later ``twin gate TARGET --baseline FILE``
re-runs on the same seeds and decides per KPI:

- the same model and the same twin version: the engine is deterministic, so every value must
  come back bit-identical; any drift is reported with its size and fails the gate;
- otherwise the paired differences (same seeds: common random numbers) are judged against a
  tolerance δ in the bad direction: **fail** when the one-sided 95 % interval lies beyond δ
  (Holm-corrected over every KPI checked), **pass** when it lies inside δ (Holm again),
  **inconclusive** when it straddles δ, with the replications that would decide.

Tolerances are shares: relative to the baseline's mean for throughput, cost and lead time,
absolute (points of a share) for fill rate and OEE.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
from scipy import stats as scipy_stats

from . import __version__
from .spec import MAX_SPEC_BYTES, SpecError, read_regular_file
from .stats import holm
from .units import HOUR

FORMAT = "twin-gate-baseline"
FORMAT_VERSION = 1
ALPHA = 0.05


@dataclass(frozen=True)
class KpiRule:
    """How a KPI is gated: which direction is better, its default tolerance, whether the
    tolerance is relative to the baseline's mean (else absolute, in the KPI's units)."""

    better: str  # "higher" or "lower"
    tolerance: float
    relative: bool
    unit: str
    default: bool = True  # gated unless asked; the others only with a --tolerance


KPIS: dict[str, KpiRule] = {
    "throughput_per_hour": KpiRule("higher", 0.01, True, "units/h"),
    "unit_cost": KpiRule("lower", 0.01, True, "currency/unit"),
    "fill_rate": KpiRule("higher", 0.01, False, "share"),
    "lead_time_mean_s": KpiRule("lower", 0.05, True, "s"),
    "oee": KpiRule("higher", 0.01, False, "share"),
    "lead_time_p95_s": KpiRule("lower", 0.05, True, "s", default=False),
    "wip_mean": KpiRule("lower", 0.05, True, "units", default=False),
    "peak_backlog": KpiRule("lower", 0.05, True, "units", default=False),
    "good_units_per_week": KpiRule("higher", 0.01, True, "units/week", default=False),
}

VERDICTS = ("pass", "inconclusive", "fail", "drift")


def model_hash(spec: Any) -> str:
    """The hash of a spec's parsed content (comments and key order do not count)."""
    text = spec.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_tolerances(items: list[str]) -> dict[str, float]:
    """``KPI=SHARE`` pairs (``unit_cost=0.02``) into a dict; a bad one is a clear error."""
    out: dict[str, float] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq:
            raise SpecError([f"--tolerance {item!r}: give KPI=SHARE, e.g. unit_cost=0.02"])
        if name not in KPIS:
            raise SpecError([f"--tolerance {name!r}: not a gated KPI (one of {', '.join(KPIS)})"])
        try:
            v = float(value)
        except ValueError:
            raise SpecError([f"--tolerance {name}: {value!r} is not a number"]) from None
        if not (math.isfinite(v) and 0 <= v < 10):
            raise SpecError([f"--tolerance {name}: must be a share in [0, 10), got {value}"])
        out[name] = v
    return out


def cells_from_frame(df: Any, factory: str | None = None, scenario: str = "run") -> list[dict[str, Any]]:
    """Per factory × scenario, each KPI's values by replication (in replication order), from a
    KPI table with a ``replication`` column (and ``factory``/``scenario`` columns for a grid)."""
    out = []
    groups = ([((factory, scenario), df)] if factory is not None
              else df.groupby(["factory", "scenario"], sort=True))
    for (f, s), g in groups:
        g = g.sort_values("replication")
        kpis = {}
        for k in KPIS:
            if k in g.columns:
                vals = [float(v) for v in g[k]]
                if all(math.isfinite(v) for v in vals):  # an undefined KPI (no orders) is not gated
                    kpis[k] = vals
        out.append({"factory": str(f), "scenario": str(s), "kpis": kpis})
    return out


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True).encode()).hexdigest()


def make_baseline(target: dict[str, Any], run: dict[str, Any], seeds: list[int], cells: list[dict[str, Any]],
                  tolerances: dict[str, float]) -> dict[str, Any]:
    """The baseline document: what was run, how, on which seeds, and every value; with a
    checksum so a tampered or truncated file is refused rather than trusted."""
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "twin_version": __version__,
            "target": target, "run": run, "seeds": seeds, "tolerances": tolerances, "cells": cells}
    return {**body, "sha256": _checksum(body)}


def load_baseline(path: Path) -> dict[str, Any]:
    """Read and check a baseline file; every defect is a :class:`SpecError` naming the file."""
    raw = read_regular_file(path, 50 * MAX_SPEC_BYTES, "a gate baseline")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise SpecError([f"{path}: not a gate baseline (not JSON, or truncated); record one with "
                         "--update-baseline"]) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SpecError([f"{path}: not a gate baseline (no format = {FORMAT!r}); record one with --update-baseline"])
    if doc.get("format_version") != FORMAT_VERSION:
        raise SpecError([f"{path}: baseline format {doc.get('format_version')!r}; this twin reads "
                         f"{FORMAT_VERSION}: record it again with --update-baseline"])
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if doc.get("sha256") != _checksum(body):
        raise SpecError([f"{path}: the baseline's checksum does not match its content (edited or damaged); "
                         "record it again with --update-baseline"])
    return doc


def check_fits(doc: dict[str, Any], path: Path, target: dict[str, Any]) -> None:
    """A baseline made for other factories or scenarios, or another kind of target, cannot judge
    this one."""
    old = doc["target"]
    if old.get("kind") != target["kind"]:
        raise SpecError([f"{path}: the baseline is of a {old.get('kind')} target, this is a {target['kind']}"])
    for key in ("factories", "scenarios"):
        if old.get(key) != target.get(key):
            raise SpecError([f"{path}: the baseline's {key} are {', '.join(old.get(key) or [])}; this target's are "
                             f"{', '.join(target.get(key) or [])}: gate the same grid or record a new baseline"])


def _judge_values(base: list[float], now: list[float], rule: KpiRule, tol: float) -> dict[str, Any]:
    b, n_ = np.asarray(base, float), np.asarray(now, float)
    d = n_ - b
    sign = 1.0 if rule.better == "lower" else -1.0  # worse is positive
    x = sign * d
    scale = abs(float(b.mean())) if rule.relative else 1.0
    delta = tol * scale
    n = len(x)
    m = float(x.mean())
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    row: dict[str, Any] = {"n": n, "baseline": float(b.mean()), "now": float(n_.mean()), "diff": float(d.mean()),
                           "delta": delta, "tolerance": tol, "relative": rule.relative}
    if not np.all(np.isfinite(n_)):
        row.update(p_fail=0.0, p_pass=1.0, lo=float("nan"), hi=float("nan"), note="undefined now (no value)")
        return row
    if n < 2 or sd == 0.0:
        # every replication moved by the same amount (or there is one): the difference is known
        worse = m > delta
        row.update(p_fail=0.0 if worse else 1.0, p_pass=1.0 if worse else 0.0, lo=float(d.mean()), hi=float(d.mean()))
        if n < 2 and not np.all(d == 0):
            row.update(p_fail=1.0, p_pass=1.0, note="one replication cannot judge a change")
        return row
    se = sd / math.sqrt(n)
    t = (m - delta) / se
    q = float(scipy_stats.t.ppf(1 - ALPHA, n - 1))
    row.update(p_fail=float(scipy_stats.t.sf(t, n - 1)), p_pass=float(scipy_stats.t.cdf(t, n - 1)),
               lo=float(d.mean()) - q * se, hi=float(d.mean()) + q * se, sd=sd)
    return row


def judge(doc: dict[str, Any], cells: list[dict[str, Any]], same_model: bool,
          tolerances: dict[str, float]) -> list[dict[str, Any]]:
    """One row per factory × scenario × KPI with its verdict (see the module docstring)."""
    now = {(c["factory"], c["scenario"]): c["kpis"] for c in cells}
    rows: list[dict[str, Any]] = []
    for c in doc["cells"]:
        key = (c["factory"], c["scenario"])
        got = now.get(key, {})
        for k, base in c["kpis"].items():
            rule = KPIS.get(k)
            if rule is None or not (rule.default or k in tolerances):
                continue
            vals = got.get(k)
            if vals is None:
                vals = [float("nan")] * len(base)
            tol = tolerances.get(k, rule.tolerance)
            row = {"factory": c["factory"], "scenario": c["scenario"], "kpi": k, "unit": rule.unit,
                   "better": rule.better, **_judge_values(base, vals, rule, tol)}
            if same_model:
                drift = [abs(a - b) for a, b in zip(vals, base) if not (a == b)]
                row["verdict"] = "drift" if drift else "pass"
                row["drift"] = max(drift) if drift else 0.0
            rows.append(row)
    if not same_model:
        fails = holm([r["p_fail"] for r in rows])
        for r, p in zip(rows, fails):
            r["verdict"] = "fail" if p < ALPHA else None
        open_ = [r for r in rows if r["verdict"] is None]
        passes = holm([r["p_pass"] for r in open_])
        for r, p in zip(open_, passes):
            r["verdict"] = "pass" if p < ALPHA else "inconclusive"
            if r["verdict"] == "inconclusive":
                r["replications_to_decide"] = replications_to_decide(r)
    return rows


def replications_to_decide(row: dict[str, Any]) -> int | None:
    """About how many paired replications would put the one-sided 95 % interval clear of δ
    (normal approximation at the measured spread); None when the difference sits on δ."""
    sign = 1.0 if row["better"] == "lower" else -1.0
    gap = abs(sign * row["diff"] - row["delta"])
    sd = row.get("sd", float("nan"))
    if not (gap > 0 and math.isfinite(sd)):
        return None
    z = float(scipy_stats.norm.ppf(1 - ALPHA))
    return max(row["n"] + 1, math.ceil((z * sd / gap) ** 2))


def outcome(rows: list[dict[str, Any]]) -> str:
    """The gate's verdict: "fail" when any KPI failed or drifted, else "inconclusive" when any is,
    else "pass"."""
    vs = {r["verdict"] for r in rows}
    return "fail" if vs & {"fail", "drift"} else ("inconclusive" if "inconclusive" in vs else "pass")


def _fmt(k: str, v: float) -> str:
    if not math.isfinite(v):
        return "–"
    if k.endswith("_s"):
        return f"{v / HOUR:.3g} h"
    return f"{v:.4g}"


def _tol_text(r: dict[str, Any]) -> str:
    bad = "+" if r["better"] == "lower" else "−"
    return f"{bad}{r['tolerance']:.1%}" if r["relative"] else f"{bad}{r['tolerance'] * 100:.3g} points"


def _diff_text(r: dict[str, Any]) -> str:
    k = r["kpi"]
    if r["verdict"] == "drift":
        return f"drift of {r['drift']:.3g} (values must be identical)"
    if math.isfinite(r["lo"]) and r["lo"] != r["hi"]:
        return f"{_fmt(k, r['diff'])} [{_fmt(k, r['lo'])}, {_fmt(k, r['hi'])}]"
    return _fmt(k, r["diff"])


def _verdict_text(r: dict[str, Any]) -> str:
    v = r["verdict"]
    if v == "inconclusive":
        n = r.get("replications_to_decide")
        return (f"inconclusive (about {n} replications would decide)" if n else
                "inconclusive (" + r.get("note", "the difference sits on the tolerance") + ")")
    return v + (f" ({r['note']})" if r.get("note") and v == "fail" else "")


def markdown(rows: list[dict[str, Any]], notes: list[str]) -> str:
    """The gate's result as a Markdown table (for --summary and $GITHUB_STEP_SUMMARY)."""
    head = f"### twin gate: {outcome(rows).upper()}\n\n"
    body = "".join(f"- {n}\n" for n in notes) + ("\n" if notes else "")
    lines = ["| factory | scenario | KPI | baseline | now | difference [90 % CI] | tolerance | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['factory']} | {r['scenario']} | {r['kpi']} | {_fmt(r['kpi'], r['baseline'])} | "
                     f"{_fmt(r['kpi'], r['now'])} | {_diff_text(r)} | {_tol_text(r)} | {_verdict_text(r)} |")
    return head + body + "\n".join(lines) + "\n"


def junit(rows: list[dict[str, Any]]) -> str:
    """JUnit XML: one test case per factory × scenario × KPI, a failure for each regression."""
    bad = [r for r in rows if r["verdict"] in ("fail", "drift")]
    suite = ET.Element("testsuite", name="twin gate", tests=str(len(rows)), failures=str(len(bad)), errors="0",
                       skipped="0")
    for r in rows:
        case = ET.SubElement(suite, "testcase", classname=f"{r['factory']}.{r['scenario']}", name=r["kpi"])
        text = (f"baseline {_fmt(r['kpi'], r['baseline'])}, now {_fmt(r['kpi'], r['now'])}, difference "
                f"{_diff_text(r)}, tolerance {_tol_text(r)}: {_verdict_text(r)}")
        if r["verdict"] in ("fail", "drift"):
            ET.SubElement(case, "failure", message=text, type=r["verdict"])
        else:
            ET.SubElement(case, "system-out").text = text
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def benchmark_entries(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The values in github-action-benchmark's custom format, one list per direction (its tools
    ``customBiggerIsBetter`` and ``customSmallerIsBetter``)."""
    out: dict[str, list[dict[str, Any]]] = {"customBiggerIsBetter": [], "customSmallerIsBetter": []}
    for r in rows:
        tool = "customSmallerIsBetter" if r["better"] == "lower" else "customBiggerIsBetter"
        half = (r["hi"] - r["lo"]) / 2 if math.isfinite(r["lo"]) else 0.0
        out[tool].append({"name": f"{r['factory']} / {r['scenario']} / {r['kpi']}", "unit": r["unit"],
                          "value": r["now"], "range": f"± {half:.4g}",
                          "extra": f"baseline {r['baseline']:.6g}; {r['verdict']}"})
    return out
