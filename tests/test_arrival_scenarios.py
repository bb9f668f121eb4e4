"""Scenarios for lines fed by arrivals (no [demand]): rate shifts as a time change of the arrival
process, checked against hand-integrated clocks, the M/M/1/K blocking probability, and a
side-by-side compare of two such lines."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest

import twin
from twin.cli import main
from twin.demand import ArrivalClock
from twin.runs import replication_seed, run_once
from twin.scenario import Scenario, apply
from twin.spec import Shift, SpecError, validate

MM1K = {
    "name": "mm1k",
    "source": {"kind": "poisson", "rate_per_hour": 30},
    "products": [{"name": "p", "route": ["a"]}],
    "stations": [{"name": "a", "process_time": {"dist": "exponential", "mean": "60s"}, "buffer": 2}],
    "run": {"horizon": "2w", "warmup": "1d", "replications": 1, "seed": 1},
}


def _shift(**kw):
    return Shift.model_validate(kw)


def test_the_arrival_clock_inverts_the_integrated_rate_by_hand():
    """f = 1 until 10 s, a ramp to 3 over [10, 20], 3 after; a supply stop makes f = 0 on [30, 32].
    F(10) = 10; on the ramp F = 10 + u + u²/10 (u = t - 10), so F(20) = 30; F(30) = 60; flat to 32."""
    clock = ArrivalClock([_shift(kind="ramp", at=10, duration=10, factor=3.0),
                          _shift(kind="disruption", at=30, duration=2, target="supply")])
    assert not clock.trivial
    assert clock.time_at(4.0) == pytest.approx(4.0)
    # u + u²/10 = 15  ->  u = 5(√7 - 1)
    assert clock.time_at(25.0) == pytest.approx(10 + 5 * (math.sqrt(7) - 1), rel=1e-12)
    assert clock.time_at(45.0) == pytest.approx(20 + 15 / 3, rel=1e-12)
    # operational time 61 is reached 1/3 s after the stop ends
    assert clock.time_at(61.0) == pytest.approx(32 + 1 / 3, rel=1e-12)
    assert ArrivalClock([]).trivial and ArrivalClock([_shift(kind="disruption", at=5, duration=1, target="a")]).trivial
    # a step to zero: operational time beyond F(at) is never reached
    assert ArrivalClock([_shift(kind="step", at=100, factor=0.0)]).time_at(150.0) == math.inf
    # overlapping pulse and ramp multiply: f = 2 (1 + u/10) on [0, 10]; F(10) = 2 (10 + 5) = 30
    both = ArrivalClock([_shift(kind="pulse", at=0, duration=10, factor=2.0), _shift(kind="ramp", at=0, duration=10,
                                                                                      factor=2.0)])
    assert both.time_at(30.0) == pytest.approx(10.0, rel=1e-12)
    assert both.time_at(31.0) == pytest.approx(10.5, rel=1e-12)  # f = 2 after the pulse


def _with_shifts(base: dict, shifts: list[dict]) -> twin.Spec:
    d = json.loads(json.dumps(base))
    d["source"]["shifts"] = shifts
    return validate(d)


def test_arrivals_before_the_shift_are_the_unshifted_lines_and_the_rate_follows_the_shift():
    """Common random numbers: the same gaps in operational time, so every arrival before the first
    shift is at the same instant. After a pulse of ×1.5 on days 3-5 the counts per window are
    Poisson with the integrated rate (s.e. √n: under 2 % here, checked at 4 s.e.)."""
    base = validate(MM1K)
    shifted = _with_shifts(MM1K, [{"kind": "pulse", "at": "3d", "duration": "2d", "factor": 1.5}])
    counts = np.zeros(3)
    for r in range(4):
        seed = replication_seed(1, r)
        t0 = run_once(base, base.run.horizon, 0.0, seed).lots["t_release"].to_numpy()
        t1 = run_once(shifted, shifted.run.horizon, 0.0, seed).lots["t_release"].to_numpy()
        n = int((t0 < 3 * 86400).sum())
        assert np.array_equal(t0[:n], t1[:n]) and t1[n] >= 3 * 86400
        counts += [((t1 >= a * 86400) & (t1 < b * 86400)).sum() for a, b in ((0, 3), (3, 5), (5, 14))]
    expected = 4 * 30 * 24 * np.array([3.0, 2 * 1.5, 9.0])
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected)), (counts, expected)


def test_after_a_step_the_line_turns_away_what_mm1k_says():
    """M/M/1/3 at ρ = 0.5 stepped to ρ = 1 after an hour: measured after a day's warm-up, the share
    let in is 1 - 1/(K+1) = 0.75 (at ρ = 1 every state of the chain is equally likely). 8 runs of
    two weeks: ~40,000 arrivals at the new rate, blocking clustered; 0.01 is about 4 s.e."""
    spec = _with_shifts(MM1K, [{"kind": "step", "at": "1h", "factor": 2.0}])
    fills = [float(run_once(spec, spec.run.horizon, spec.run.warmup, replication_seed(3, r)).kpis.iloc[0]["fill_rate"])
             for r in range(8)]
    assert np.mean(fills) == pytest.approx(0.75, abs=0.01)
    base = validate(MM1K)
    k = run_once(base, base.run.horizon, base.run.warmup, 5).kpis.iloc[0]
    # at ρ = 0.5, P(block) = (1 - ρ) ρ^3 / (1 - ρ^4) = 1/15
    assert float(k["fill_rate"]) == pytest.approx(1 - 1 / 15, abs=0.012)
    assert float(k["fill_rate"]) == pytest.approx(1 - float(k["lost_share"]))


def test_shifts_that_do_not_fit_a_line_fed_by_arrivals_are_refused():
    for sh, words in (({"kind": "mix", "at": "1d", "shares": {"p": 1.0}}, "needs make-to-order demand"),
                      ({"kind": "supply", "at": "1d", "duration": "1d", "target": "*"}, "needs make-to-order demand"),
                      ({"kind": "disruption", "at": "1d", "duration": "1h", "target": "nowhere"}, "unknown station")):
        with pytest.raises(SpecError, match=words):
            _with_shifts(MM1K, [sh])
    sat = json.loads(json.dumps(MM1K))
    sat["source"] = {"kind": "saturated", "shifts": [{"kind": "step", "at": "1d", "factor": 2}]}
    with pytest.raises(SpecError, match="has none"):
        validate(sat)
    sat["source"]["shifts"] = [{"kind": "disruption", "at": "1d", "duration": "1h", "target": "supply"}]
    with pytest.raises(SpecError, match="never runs dry"):
        validate(sat)
    # a scenario's mix shift names the scenario and says what the line takes
    sc = Scenario.model_validate({"name": "m", "shifts": [{"kind": "mix", "at": "1d", "shares": {"p": 1}}]})
    with pytest.raises(SpecError, match=r"mine\.toml: shifts\.0\.kind: a mix shift needs make-to-order demand"):
        apply(validate(MM1K), sc, 2, 86400, source="mine.toml")
    # every problem at once, each under the scenario's own numbering of its shifts
    sc = Scenario.model_validate({"name": "m", "shifts": [{"kind": "mix", "at": "1d", "shares": {"p": 1}},
                                                          {"kind": "disruption", "at": "1d", "duration": "1h",
                                                           "target": "nowhere"}]})
    with pytest.raises(SpecError) as e:
        apply(validate(MM1K), sc, 2, 86400, source="mine.toml")
    assert any("shifts.0.kind" in p for p in e.value.problems)
    assert any("shifts.1.target: unknown station 'nowhere'" in p for p in e.value.problems), e.value.problems
    # the rate times the factors is bounded like demand's
    big = json.loads(json.dumps(MM1K))
    big["source"] = {"kind": "poisson", "rate_per_hour": 1e5, "shifts": [{"kind": "step", "at": "1d", "factor": 1e4}]}
    with pytest.raises(SpecError, match="lots an hour"):
        validate(big)


def test_a_disruption_stops_the_station_of_a_line_fed_by_arrivals():
    spec = _with_shifts({**MM1K, "stations": [{**MM1K["stations"][0], "buffer": None}]},
                        [{"kind": "disruption", "at": "3d", "duration": "12h", "target": "a"}])
    res = run_once(spec, spec.run.horizon, 0.0, 1)
    lots = res.lots
    done = lots["t_done"].to_numpy()
    # the lot in process when it stops is finished (a stop halts no job); nothing else for 12 h
    assert ((done > 3 * 86400) & (done < 3.5 * 86400)).sum() <= 1
    assert not ((done > 3 * 86400 + 3600) & (done < 3.5 * 86400)).any()
    # the lots that arrived while it was down wait (unlimited buffer): none is lost
    assert (lots["status"] != "lost").all()


SPEC = """name = "{name}"
[source]
kind = "poisson"
rate_per_hour = 40
[[products]]
name = "part"
route = ["cut", "weld"]
[[stations]]
name = "cut"
process_time = {{ dist = "exponential", mean = "60s" }}
buffer = 4
[[stations]]
name = "weld"
servers = {servers}
process_time = {{ dist = "exponential", mean = "150s" }}
buffer = 3
"""

SURGE = """name = "rush"
description = "arrivals +50 % for two days from day 2"
[[shifts]]
kind = "pulse"
at = "2d"
duration = "2d"
factor = 1.5
"""


def test_two_lines_fed_by_arrivals_compare_side_by_side(tmp_path):
    """An engineer's two layouts of one Poisson-fed line (weld with 2 or 3 servers) under the
    baseline and a rush of arrivals: the same verdict page; the third welder lets in more of the
    rush (weld at 40 × 1.5 / 24 per server-hour = 2.5 lots an hour beyond two welders' 48 an hour).
    Without --scenarios the built-in ones that apply run and the others are named as left out."""
    for name, servers in (("two", 2), ("three", 3)):
        (tmp_path / f"{name}.toml").write_text(SPEC.format(name=name, servers=servers))
    (tmp_path / "rush.toml").write_text(SURGE)
    out = tmp_path / "cmp"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["compare", "--factories", str(tmp_path / "two.toml"), str(tmp_path / "three.toml"), "--scenarios",
                   "baseline", str(tmp_path / "rush.toml"), "--weeks", "1", "--warmup", "1d", "--replications", "4",
                   "--jobs", "1", "--out", str(out), "-q"])
    assert rc == 0, buf.getvalue()
    k = json.loads((out / "kpis.json").read_text())
    rush = next(v for sc, v in k["summary"].items() if "rush" in sc)
    two, three = rush[str(tmp_path / "two.toml")], rush[str(tmp_path / "three.toml")]
    assert three["fill_rate"]["mean"] > two["fill_rate"]["mean"] + 0.02
    assert 0 < two["fill_rate"]["mean"] < 1 and three["peak_backlog"]["mean"] > 0
    daily = [ln.split(",") for ln in (out / "daily.csv").read_text().splitlines()]
    assert daily[0] == ["factory", "scenario", "replication", "t_end", "demand", "output", "backlog"]
    # what arrived (turned away or not) is at least what was made, day by day summed
    assert sum(float(r[4]) for r in daily[1:]) > sum(float(r[5]) for r in daily[1:]) > 0
    assert (out / "report.html").stat().st_size > 0
    # defaults: the built-in scenarios that apply, the others said
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["compare", "--factories", str(tmp_path / "two.toml"), str(tmp_path / "three.toml"),
                     "--weeks", "1", "--replications", "2", "--jobs", "1", "--out", str(tmp_path / "d")]) == 0
    said = err.getvalue()
    assert "left out" in said and "mix_shift: shifts.0.kind: a mix shift needs make-to-order demand" in said
    # in one week only the baseline fits: the others' shifts come later, and say so
    assert "surge: shifts.0.at: at 3 w" in said and "beyond the end of the observation" in said
    assert json.loads((tmp_path / "d" / "kpis.json").read_text())["meta"]["grid"]["scenarios"] == ["baseline"]
