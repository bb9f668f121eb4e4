"""twin gate: a KPI regression gate. The statistics are checked against scipy's one-sample t
test (an implementation we did not write) and Holm's rule by hand; the end-to-end cases run
the two-machine example, whose bottleneck (exponential 60 s with failures) gives real noise."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import shlex
import shutil
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
import yaml
from scipy import stats as scipy_stats

import twin.commands
from twin import gate
from twin.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
TWO = ROOT / "examples" / "two_machine.toml"
RUN = ["--horizon", "1d", "--warmup", "2h", "--replications", "6", "--seed", "3"]


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _bad(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


@pytest.fixture()
def line(tmp_path):
    spec = tmp_path / "line.toml"
    shutil.copy(TWO, spec)
    base = tmp_path / "base.json"
    rc, _, err = _cli("gate", str(spec), "--baseline", str(base), "--update-baseline", *RUN)
    assert rc == 0, err
    return spec, base


# --------------------------------------------------------------------------- the statistics
def _doc(base: dict[str, list[float]]) -> dict:
    return {"cells": [{"factory": "f", "scenario": "s", "kpis": base}]}


def test_a_fail_is_scipys_one_sided_t_test_beyond_the_tolerance():
    base = [10.0] * 5
    now = [10.3, 10.5, 10.1, 10.4, 10.2]  # unit cost up 0.3 a unit; tolerance 1 % of 10 = 0.1
    rows = gate.judge(_doc({"unit_cost": base}), [{"factory": "f", "scenario": "s", "kpis": {"unit_cost": now}}],
                      same_model=False, tolerances={})
    (r,) = rows
    x = np.array(now) - np.array(base)
    ref = scipy_stats.ttest_1samp(x, 0.1, alternative="greater").pvalue
    assert math.isclose(r["p_fail"], ref, rel_tol=1e-9) and ref < 0.05
    assert r["verdict"] == "fail" and gate.outcome(rows) == "fail"
    half = scipy_stats.t.ppf(0.95, 4) * x.std(ddof=1) / math.sqrt(5)
    assert math.isclose(r["lo"], x.mean() - half) and math.isclose(r["hi"], x.mean() + half)


def test_a_pass_needs_the_interval_inside_the_tolerance_and_a_straddle_is_inconclusive():
    base = [100.0] * 6
    better = [100.5, 99.8, 100.2, 99.9, 100.1, 100.3]  # throughput barely moved: within -1 %
    straddle = [99.0, 98.0, 100.5, 99.5, 98.5, 98.5]  # mean -1.0 = exactly the tolerance
    rows = gate.judge(_doc({"throughput_per_hour": base, "oee": [0.8] * 6}),
                      [{"factory": "f", "scenario": "s", "kpis": {"throughput_per_hour": better, "oee": [0.8] * 6}}],
                      same_model=False, tolerances={})
    tp = next(r for r in rows if r["kpi"] == "throughput_per_hour")
    ref = scipy_stats.ttest_1samp(np.array(base) - np.array(better), 1.0, alternative="less").pvalue
    assert math.isclose(tp["p_pass"], ref, rel_tol=1e-9)
    assert tp["verdict"] == "pass"
    rows = gate.judge(_doc({"throughput_per_hour": base}),
                      [{"factory": "f", "scenario": "s", "kpis": {"throughput_per_hour": straddle}}],
                      same_model=False, tolerances={})
    assert rows[0]["verdict"] == "inconclusive" and rows[0]["replications_to_decide"] is None
    assert gate.outcome(rows) == "inconclusive"


def test_holm_keeps_two_marginal_fails_from_failing_the_gate():
    # each alone fails at 5 % (p between 0.025 and 0.05), together Holm needs p < 0.025 for the first
    base = [10.0] * 5
    now = [10.0 + d for d in (0.10, 0.45, 0.15, 0.40, 0.30)]
    x = np.array(now) - 10.0
    p = scipy_stats.ttest_1samp(x, 0.1, alternative="greater").pvalue
    assert 0.025 < p < 0.05
    alone = gate.judge(_doc({"unit_cost": base}), [{"factory": "f", "scenario": "s", "kpis": {"unit_cost": now}}],
                       same_model=False, tolerances={})
    assert alone[0]["verdict"] == "fail"
    doc = {"cells": [{"factory": f, "scenario": "s", "kpis": {"unit_cost": base}} for f in ("a", "b")]}
    both = gate.judge(doc, [{"factory": f, "scenario": "s", "kpis": {"unit_cost": now}} for f in ("a", "b")],
                      same_model=False, tolerances={})
    assert [r["verdict"] for r in both] == ["inconclusive", "inconclusive"]
    # the count that would decide: (z_0.95 sd / gap)^2 by hand
    want = math.ceil((scipy_stats.norm.ppf(0.95) * x.std(ddof=1) / (x.mean() - 0.1)) ** 2)
    assert both[0]["replications_to_decide"] == max(6, want)


def test_the_same_model_must_give_the_same_values():
    rows = gate.judge(_doc({"oee": [0.5, 0.6]}), [{"factory": "f", "scenario": "s", "kpis": {"oee": [0.5, 0.6 + 1e-12]}}],
                      same_model=True, tolerances={})
    assert rows[0]["verdict"] == "drift" and math.isclose(rows[0]["drift"], 1e-12, rel_tol=1e-3)


# --------------------------------------------------------------------------- end to end
def test_an_unchanged_line_passes_with_identical_values_and_writes_its_reports(line, tmp_path, monkeypatch):
    spec, base = line
    step = tmp_path / "step.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    junit, summary = tmp_path / "gate.xml", tmp_path / "gate.md"
    rc, out, err = _cli("gate", str(spec), "--baseline", str(base), "--junit", str(junit), "--summary", str(summary))
    assert rc == 0, err
    assert "every value must be identical" in out and "drift" not in out.split("\n", 3)[-1]
    doc = json.loads(base.read_text())
    gated = [k for k in doc["cells"][0]["kpis"] if gate.KPIS[k].default]
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and len(suite.findall("testcase")) == len(gated) >= 3
    assert summary.read_text() in out + "\n" and step.read_text().startswith("earlier step\n### twin gate: PASS")
    # a comment is not the model: still judged as identical
    spec.write_text("# a comment\n" + spec.read_text())
    rc, out, _ = _cli("gate", str(spec), "--baseline", str(base))
    assert rc == 0 and "every value must be identical" in out


def test_a_slower_bottleneck_fails_and_a_faster_one_passes(line, tmp_path):
    spec, base = line
    junit = tmp_path / "gate.xml"
    rc, out, err = _cli("gate", str(spec), "--baseline", str(base), "--junit", str(junit),
                        "--set", "stations.smt.process_time={dist='exponential', mean='80s'}")
    assert rc == 1, err
    assert "the model changed" in out
    fails = ET.parse(junit).getroot().findall("testcase/failure/..")
    assert "throughput_per_hour" in {c.get("name") for c in fails}
    rc, out, err = _cli("gate", str(spec), "--baseline", str(base), "--json",
                        "--set", "stations.smt.process_time={dist='exponential', mean='45s'}")
    assert rc == 0, err
    res = json.loads(out)
    tp = next(r for r in res["rows"] if r["kpi"] == "throughput_per_hour")
    assert tp["verdict"] == "pass" and tp["diff"] > 0
    bench = res["github_action_benchmark"]
    assert {e["name"].split(" / ")[-1] for e in bench["customBiggerIsBetter"]} >= {"throughput_per_hour"}
    assert all(isinstance(e["value"], float) and e["unit"] for v in bench.values() for e in v)


def test_drift_on_the_same_model_fails_with_its_size(line, monkeypatch):
    spec, base = line
    real = twin.commands.simulate

    def nudged(*a, **k):
        res = real(*a, **k)
        res.kpis.loc[0, "throughput_per_hour"] += 1e-6
        return res
    monkeypatch.setattr(twin.commands, "simulate", nudged)
    rc, out, _ = _cli("gate", str(spec), "--baseline", str(base))
    assert rc == 1 and "drift of 1e-06" in out


def test_bad_baselines_and_options_are_refused_before_anything_runs(line, tmp_path, monkeypatch):
    spec, base = line
    text = base.read_text()

    def never(*a, **k):
        raise AssertionError("ran before the input was checked")
    monkeypatch.setattr(twin.commands, "simulate", never)
    g = ["gate", str(spec), "--baseline"]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(re.sub(r"(\d)\.(\d)", r"\1.9", text, count=1))
    _bad(*_cli(*g, str(tampered))[::2], "tampered.json", "checksum")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(text[: len(text) // 2])
    _bad(*_cli(*g, str(truncated))[::2], "truncated.json", "truncated")
    _bad(*_cli(*g, str(tmp_path / "none.json"))[::2], "none.json", "--update-baseline")
    _bad(*_cli(*g, str(base), "--tolerance", "speed=0.1")[::2], "speed", "throughput_per_hour")
    _bad(*_cli(*g, str(base), "--tolerance", "unit_cost=lots")[::2], "unit_cost", "not a number")
    _bad(*_cli(*g, str(base), "--replications", "7")[::2], "--replications", "--update-baseline")
    _bad(*_cli("gate", "--baseline", str(base))[::2], "--compare")
    other = tmp_path / "other.toml"
    other.write_text(spec.read_text().replace('name = "two-machine line"', 'name = "another line"', 1))
    _bad(*_cli("gate", str(other), "--baseline", str(base))[::2], "base.json", "factories")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _bad(*_cli(*g, str(base), "--junit", str(fifo))[::2], "--junit", "FIFO")
    assert not (tmp_path / "gate.xml").exists()


@pytest.mark.slow
def test_a_compare_grid_is_gated_cell_by_cell(tmp_path):
    base = tmp_path / "grid.json"
    args = ["gate", "--compare", "--factories", "dark-factory", "--scenarios", "baseline", "--weeks", "0.2",
            "--warmup", "0", "--jobs", "1", "--baseline", str(base)]
    rc, _, err = _cli(*args, "--update-baseline", "--replications", "2")
    assert rc == 0, err
    rc, out, err = _cli(*args, "--json")
    assert rc == 0, err
    rows = json.loads(out)["rows"]
    assert {(r["factory"], r["scenario"]) for r in rows} == {("dark-factory", "baseline")}
    # (a fifth of a week has no order due in it: its fill rate is undefined and not gated)
    assert {r["kpi"] for r in rows} >= {"throughput_per_hour", "unit_cost", "lead_time_mean_s", "oee"}
    assert all(r["verdict"] == "pass" for r in rows)


def test_the_howto_workflow_parses_and_its_twin_commands_run(tmp_path, monkeypatch):
    page = (ROOT / "docs" / "howto" / "09_gate_a_line_in_ci.md").read_text()
    block = re.search(r"```yaml\n(.*?)```", page, re.S).group(1)
    wf = yaml.safe_load(block)
    steps = wf["jobs"]["gate"]["steps"]
    cmds = [s["run"] for s in steps if "run" in s and s["run"].startswith("twin ")]
    assert [c.split()[1] for c in cmds] == ["validate", "gate"]
    monkeypatch.chdir(tmp_path)
    shutil.copy(TWO, tmp_path / "line.toml")
    (tmp_path / "gate").mkdir()
    rc, _, err = _cli("gate", "line.toml", "--baseline", "gate/line.json", "--update-baseline", *RUN)
    assert rc == 0, err
    for c in cmds:
        argv = shlex.split(c)[1:]
        build_parser().parse_args(argv)
        rc, _, err = _cli(*argv)
        assert rc == 0, (c, err)
    assert ET.parse(tmp_path / "gate.xml").getroot().tag == "testsuite" and (tmp_path / "gate.md").exists()
