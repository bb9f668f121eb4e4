"""Event logs (issue 7): export, calibrate, check; malformed logs are refused with line numbers."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest

import twin
from twin.cli import main
from twin.calibrate import calibrate
from twin.eventlog import read_log, write_log
from twin.model import Model

ROOT = Path(__file__).resolve().parent.parent
WEEK = 604800.0

KNOWN = {
    "name": "known",
    "source": {"kind": "poisson", "rate_per_hour": 40},
    "products": [{"name": "a", "route": ["m1", "m2", "m3"], "share": 2}, {"name": "b", "route": ["m1", "m3"]}],
    "stations": [
        {"name": "m1", "process_time": {"dist": "gamma", "mean": 60, "cv": 0.5},
         "failures": {"ttf": {"dist": "exponential", "mean": "10min"}, "ttr": {"dist": "lognormal", "mean": "2min",
                                                                                "cv": 0.5}}},
        {"name": "m2", "servers": 2, "process_time": {"dist": "lognormal", "mean": 100, "cv": 0.3}, "buffer": 1},
        {"name": "m3", "process_time_by_product": {"a": {"dist": "exponential", "mean": 50}, "b": 40},
         "setup": {"default": "20s"}, "buffer": 2},
    ],
}


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    d = tmp_path_factory.mktemp("log")
    spec = twin.validate(KNOWN)
    # ten weeks: ~67,000 arrivals, so the estimated arrival rate (which sets the throughput) is
    # within ~0.4 % (1 s.e.), well inside the ~0.7 % CI of the throughput test below
    m = Model(spec, 3, 10 * WEEK, trace=True)
    m.run(10 * WEEK)
    write_log(m.rec, d / "log.csv")
    df = read_log(d / "log.csv")
    text, warnings = calibrate(df, source="log.csv")
    (d / "cal.toml").write_text(text)
    return spec, twin.load(d / "cal.toml"), text, warnings, d


def _log_and_calibrate(spec, seed: int, horizon: float, tmp_path):
    """Run ``spec`` traced, write and read back its event log, calibrate a spec from it:
    ``(log, spec text, warnings, calibrated spec)``."""
    m = Model(spec, seed, horizon, trace=True)
    m.run(horizon)
    write_log(m.rec, tmp_path / "log.csv")
    df = read_log(tmp_path / "log.csv")
    text, warnings = calibrate(df, source="log.csv")
    return df, text, warnings, twin.validate(tomllib.loads(text))


def _mean(dist) -> float:
    return dist.mean if hasattr(dist, "mean") else float(dist)


@pytest.mark.slow
def test_calibration_recovers_the_known_line(round_trip):
    spec, cal, text, warnings, _ = round_trip
    assert not warnings
    # servers, routes and buffers exactly
    assert [(s.name, s.servers) for s in cal.stations] == [(s.name, s.servers) for s in spec.stations]
    assert {p.name: p.route for p in cal.products} == {p.name: p.route for p in spec.products}
    assert cal.station("m2").buffer == 1 and cal.station("m3").buffer == 2
    # means within 5 % (n >= 5,000 each: relative standard errors <= 1.5 %)
    m1 = cal.station("m1")
    for prod in ("a", "b"):
        assert m1.process_time_by_product[prod].mean == pytest.approx(60, rel=0.05)
    assert cal.station("m2").process_time.mean == pytest.approx(100, rel=0.05)
    assert cal.station("m3").process_time_by_product["a"].mean == pytest.approx(50, rel=0.05)
    assert float(cal.station("m3").process_time_by_product["b"].mean) == pytest.approx(40, rel=1e-6)
    assert cal.station("m3").setup.default.mean == pytest.approx(20, rel=1e-6)
    assert m1.failures.ttf.mean == pytest.approx(600, rel=0.05)
    assert m1.failures.ttr.mean == pytest.approx(120, rel=0.05)
    # the written spec explains itself
    assert "by AIC" in text and "KS D=" in text and "n=" in text


@pytest.mark.slow
def test_calibrated_throughput_within_the_originals_ci(round_trip):
    spec, cal, *_ = round_trip
    a = twin.simulate(spec, horizon="2w", replications=8, seed=11).summary()["kpis"]["throughput_per_hour"]
    b = twin.simulate(cal, horizon="2w", replications=8, seed=11).summary()["kpis"]["throughput_per_hour"]
    assert abs(b["mean"] - a["mean"]) <= a["ci95"]


@pytest.mark.slow
def test_check_compares_spec_and_log(round_trip, capsys):
    _, _, _, _, d = round_trip
    rc = main(["check", str(d / "cal.toml"), str(d / "log.csv"), "--replications", "5", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert rc == (0 if all(r["verdict"] != "DIFFERS" for r in res["rows"]) else 1)  # exit 1 exactly when a row differs
    rows = {r["metric"]: r for r in res["rows"]}
    assert rows["throughput_per_hour"]["log"] == pytest.approx(rows["throughput_per_hour"]["sim_mean"], rel=0.01)
    assert rows["m1.busy"]["within_pi"] and rows["m3.setup"]["within_pi"]
    assert sum(r["within_pi"] for r in res["rows"]) >= len(res["rows"]) - 2
    assert main(["check", str(d / "cal.toml"), str(d / "log.csv"), "--replications", "3"]) in (0, 1)
    assert "throughput_per_hour" in capsys.readouterr().out


def test_check_exits_1_when_the_spec_disagrees_with_the_log(tmp_path, capsys):
    log = tmp_path / "ev.csv"
    two = ROOT / "examples" / "two_machine.toml"
    assert main(["run", str(two), "--horizon", "2d", "--warmup", "0", "--replications", "1", "--event-log", str(log)]) == 0
    slow = tmp_path / "slow.toml"  # the same line with a bottleneck a third slower
    text = two.read_text()
    assert 'mean = "60s"' in text
    slow.write_text(text.replace('mean = "60s"', 'mean = "80s"', 1))
    capsys.readouterr()
    assert main(["check", str(slow), str(log), "--replications", "4", "--json"]) == 1
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert not rows["throughput_per_hour"]["within_pi"]
    assert main(["check", str(slow), str(log), "--replications", "4"]) == 1
    assert "exit 1" in capsys.readouterr().err


def test_cli_run_calibrate_check_with_mapped_iso_columns(tmp_path, capsys):
    log = tmp_path / "ev.csv"
    assert main(["run", str(ROOT / "examples" / "two_machine.toml"), "--horizon", "1d", "--warmup", "0",
                 "--replications", "1", "--event-log", str(log)]) == 0
    header = log.read_text().splitlines()[0]
    assert header == "timestamp,station,server,lot,product,qty,event"
    out = tmp_path / "cal.toml"
    assert main(["calibrate", str(ROOT / "examples" / "line_log.csv"), "--map", "time=ts,station=machine",
                 "--out", str(out)]) == 0
    cal = twin.load(out)
    assert [s.name for s in cal.stations] == ["smt", "assembly"]
    # every station carries its sample sizes and fits, also when the spec writer puts short
    # station tables inline (as it does for this small line)
    text = out.read_text()
    assert "# smt: 1 server(s) seen; 143 processed lots" in text
    assert "# assembly: 1 server(s) seen" in text and "process_time phone: n=141, all equal: constant" in text
    # the two-machine example pulled its own work: saturated, and the check agrees on every row
    assert cal.source.kind == "saturated"
    capsys.readouterr()
    assert main(["check", str(out), str(ROOT / "examples" / "line_log.csv"), "--map", "time=ts,station=machine",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert all(r["within_pi"] for r in rows), [r for r in rows if not r["within_pi"]]
    assert main(["calibrate", str(ROOT / "examples" / "line_log.csv"), "--out", str(tmp_path / "x.toml")]) == 2
    err = capsys.readouterr().err
    assert "missing columns timestamp, station" in err and "--map timestamp=" in err
    assert not (tmp_path / "x.toml").exists()


GOOD = """timestamp,station,server,lot,product,qty,event
0,m,,1,p,1,arrive
0,m,0,1,p,1,start
5,m,0,1,p,1,end
5,m,0,1,p,1,leave
"""


@pytest.mark.parametrize("text,message", [
    (GOOD.replace("timestamp,", "time,"), "missing column timestamp"),
    (GOOD.replace("5,m,0,1,p,1,end", "5,m,0,1,p,1,finish"), "line 4: unknown event 'finish'"),
    (GOOD + "3,m,,2,p,1,arrive\n", "line 6: timestamp 3 is earlier than the line before (5)"),
    (GOOD + "5,m,0,1,p,1,leave\n", "line 6: duplicate of line 5"),
    (GOOD.replace("0,m,0,1,p,1,start\n", ""), "line 3: 'end' of lot 1 at m server 0 without a 'start'"),
    (GOOD.replace("5,m,0,1,p,1,end", "soon,m,0,1,p,1,end"), "line 4: timestamp 'soon' is neither seconds nor"),
    (GOOD.replace("0,m,0,1,p,1,start", "0,m,0,one,p,1,start"), "line 3: lot 'one' is not a whole number"),
    (GOOD + "6,m,0,,,,maint_end\n", "line 6: 'maint_end' of m server 0 without a 'maint_start'"),
    ("", "not a readable CSV event log"),
    ("timestamp,station,server,lot,product,qty,event\n", "the log has no events"),
])
def test_malformed_logs_are_refused_with_line_numbers(tmp_path, capsys, text, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    assert main(["calibrate", str(f), "--out", str(tmp_path / "out.toml")]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.startswith(f"error: {f}") and "Traceback" not in err
    assert not (tmp_path / "out.toml").exists()
    assert main(["check", str(ROOT / "examples" / "two_machine.toml"), str(f)]) == 2


def test_parquet_logs_when_pyarrow_is_installed(tmp_path):
    pytest.importorskip("pyarrow")
    m = Model(twin.load(ROOT / "examples" / "two_machine.toml"), 1, 6 * 3600.0, trace=True)
    m.run(6 * 3600.0)
    write_log(m.rec, tmp_path / "log.parquet")
    write_log(m.rec, tmp_path / "log.csv")
    a, b = read_log(tmp_path / "log.parquet"), read_log(tmp_path / "log.csv")
    assert len(a) == len(b) and np.allclose(a["t"], b["t"], atol=1e-6)


@pytest.mark.slow
def test_planned_maintenance_round_trip(tmp_path):
    # age-based maintenance every 2 operating hours (30 min, lognormal) on a wearing machine:
    # the log carries maint_start/maint_end, calibration recovers the policy, its interval and
    # duration, and excludes maintenance from processing times
    spec = twin.validate({
        "name": "pm", "source": {"kind": "saturated"},
        "stations": [{"name": "m", "process_time": {"dist": "gamma", "mean": 60, "cv": 0.3},
                      "failures": {"ttf": {"dist": "weibull", "shape": 3, "scale": "3h"}, "ttr": "20min"},
                      "maintenance": {"policy": "preventive", "interval": "2h",
                                      "duration": {"dist": "lognormal", "mean": "30min", "cv": 0.2}}}]})
    df, text, warnings, cal = _log_and_calibrate(spec, 5, 8 * WEEK, tmp_path)
    assert {"maint_start", "maint_end"} <= set(df["event"])
    st = cal.stations[0]
    assert st.maintenance is not None and st.maintenance.policy == "preventive"
    # ~560 maintenances: the interval is exact up to the lot in process when it falls due
    # (at most one 60 s unit, 0.8 % of 2 h); the mean duration has s.e. 0.2/sqrt(560) = 0.85 %
    assert st.maintenance.interval == pytest.approx(7200, rel=0.01)
    assert _mean(st.maintenance.duration) == pytest.approx(1800, rel=0.04)
    assert _mean(st.process_time) == pytest.approx(60, rel=0.02)
    assert "planned maintenance:" in text
    # lives cut short by maintenance are censored: the failure law is fitted with them (fitting
    # the failures alone gave a Weibull of scale 1.7 h, and 4x the downtime, in the first try)
    assert "censored MLE" in text and st.failures.ttf.dist == "weibull"
    # and the calibrated spec reproduces the shares of time seen in the log
    from twin.logcheck import check

    rows = {r["metric"]: r for r in check(cal, df, replications=5)["rows"]}
    for state in ("busy", "down", "maintenance"):
        assert rows[f"m.{state}"]["within_pi"], rows[f"m.{state}"]
    # the machine pulled its own work: calibrated as a saturated source, checked without
    # replaying the releases (which would feed it at exactly its own pace: a queue at load 1)
    assert cal.source.kind == "saturated"
    assert rows["lead_time_mean_s"]["within_pi"] and rows["throughput_per_hour"]["within_pi"]
    assert rows["m.maintenance"]["log"] > 0.1 and rows["m.down"]["log"] > 0.02


def test_censored_fits_recover_known_laws():
    from twin.fit import fit_censored

    rng = np.random.default_rng(1)
    life = 10800 * rng.weibull(3.0, 20000)
    cap = 7200.0  # maintenance at 2 h: ~74 % of lives are censored
    fails, cens = life[life < cap], np.full(int((life >= cap).sum()), cap)
    fits = {f.family: f for f in fit_censored(fails, cens)}
    assert fit_censored(fails, cens)[0].family == "weibull"
    # ~5,100 failures: the shape's s.e. is ~1.5 %; tolerance ~3 s.e.
    assert fits["weibull"].params["shape"] == pytest.approx(3.0, rel=0.05)
    assert fits["weibull"].params["scale"] == pytest.approx(10800, rel=0.03)
    # exponential with censoring: total time on test / failures (closed form)
    assert fits["exponential"].params["mean"] == pytest.approx((fails.sum() + cens.sum()) / len(fails))


@pytest.mark.slow
def test_minor_stops_retests_and_repair_detours_round_trip(tmp_path):
    """A line whose 60 s machine stops for 90 s (lognormal) after every exp(20 min) of operation,
    whose tester retests 15 % of passes in place and sends 10 % to a repair bench (which
    returns them for another test): the log shows minor_start/minor_end and the loops, and
    calibration recovers all of it (n: ~1,700 stops, ~12,000 passes at the tester)."""
    spec = twin.validate({
        "name": "loops", "source": {"kind": "poisson", "rate_per_hour": 40},
        "products": [{"name": "u", "route": ["m", "test"]}],
        "stations": [{"name": "m", "process_time": {"dist": "gamma", "mean": 60, "cv": 0.2},
                      "minor_stops": {"every": {"dist": "exponential", "mean": "20min"},
                                      "duration": {"dist": "lognormal", "mean": 90, "cv": 0.3}}},
                     {"name": "test", "process_time": 30, "routing": {"test": 0.15, "repair": 0.10}},
                     {"name": "repair", "process_time": {"dist": "exponential", "mean": 120}}]})
    df, text, warnings, cal = _log_and_calibrate(spec, 4, 6 * WEEK, tmp_path)
    assert {"minor_start", "minor_end"} <= set(df["event"])
    assert not warnings, warnings
    assert cal.products[0].route == ["m", "test"]
    st = cal.station("m")
    # ~1,700 stops: s.e. of the mean gap 2.4 %, of the mean duration 0.7 %
    assert _mean(st.minor_stops.every) == pytest.approx(1200, rel=0.08)
    assert _mean(st.minor_stops.duration) == pytest.approx(90, rel=0.03)
    # the stops are not processing time
    assert _mean(st.process_time) == pytest.approx(60, rel=0.01)
    t = cal.station("test")
    # ~12,000 passes: binomial s.e. 0.3 percentage points
    assert t.routing["test"] == pytest.approx(0.15, abs=0.012)
    assert t.routing["repair"] == pytest.approx(0.10, abs=0.012)
    assert float(_mean(t.process_time)) == pytest.approx(30, rel=1e-6)
    assert _mean(cal.station("repair").process_time) == pytest.approx(120, rel=0.08)
    assert "minor stops:" in text and "routing per pass" in text


CHECK_LINE = """name = "abc"
[source]
kind = "poisson"
rate_per_hour = 50
[[products]]
name = "p"
route = ["a", "b", "c"]
[[stations]]
name = "a"
process_time = { dist = "exponential", mean = "60s" }
buffer = 5
[[stations]]
name = "b"
process_time = { dist = "exponential", mean = "50s" }
buffer = 5
[[stations]]
name = "c"
process_time = { dist = "exponential", mean = "40s" }
buffer = 5
"""


def _day_log(tmp_path, text, seed, keep_lost=True):
    """A one-day event log of ``text``; without ``keep_lost`` the arrivals turned away are not in it
    (as from an MES that does not record them: the check replays every arrival, which waits)."""
    spec = tmp_path / f"line{seed}.toml"
    spec.write_text(text)
    log = tmp_path / f"log{seed}.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(spec), "--horizon", "1d", "--warmup", "0", "--replications", "1", "--seed", str(seed),
                     "--event-log", str(log), "-q"]) == 0
    if not keep_lost:
        log.write_text("".join(ln for ln in log.read_text().splitlines(keepends=True) if not ln.endswith(",lost\n")))
    return spec, log


def test_check_never_passes_a_lead_time_three_times_off(tmp_path, capsys):
    """The first station (exponential, 83 % load) believed to take 75 s instead of 60 s: with the
    log's releases replayed the throughput agrees, while the lead time of the runs is 3.4-5.4 times
    the log's. On three one-day logs the check says DIFFERS (exit 1) or, where the runs at 94 %
    load scatter too much for one day, 'cannot tell'; never 'ok' (the old per-row test passed
    0.87 h against 0.27 h). The right model passes each log. The logs do not record the arrivals
    the full entrance turned away, so every replayed arrival waits (in the wrong model too)."""
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(CHECK_LINE.replace('mean = "60s"', 'mean = "75s"'))
    verdicts = []
    for seed in (1, 7, 11):
        right, log = _day_log(tmp_path, CHECK_LINE, seed, keep_lost=False)
        capsys.readouterr()
        assert main(["check", str(right), str(log), "--replications", "10", "--json"]) == 0
        lt = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}["lead_time_mean_s"]
        assert lt["verdict"] == "ok" and lt["scale"] == "log" and lt["undetectable_factor"] < 3
        rc = main(["check", str(wrong), str(log), "--replications", "10", "--json"])
        rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
        lt = rows["lead_time_mean_s"]
        assert lt["sim_mean"] > 3 * lt["log"] and rows["throughput_per_hour"]["verdict"] == "ok"
        assert lt["verdict"] in ("DIFFERS", "cannot tell"), seed
        if lt["verdict"] == "DIFFERS":
            lo, hi = lt["pi95"]
            assert rc == 1 and lt["p_holm"] < 0.05 and lt["log"] < lo < lt["sim_mean"] < hi
        else:
            assert lt["undetectable_factor"] > 3 and lt["log_length_needed"] > 1
        verdicts.append(lt["verdict"])
    assert verdicts.count("DIFFERS") >= 2, verdicts


@pytest.mark.slow  # keeps the default run inside its 4 minutes (241 s in the last run)
def test_a_log_too_short_to_judge_the_lead_time_says_so(tmp_path, capsys):
    """An hour's repair every six hours on the first station: in one day a repair may or may not
    come, and the runs' lead times scatter over a factor of more than 3: 'cannot tell', with the
    log length that would do, not 'ok'. (A log without the arrivals turned away: each replayed one
    waits, so a repair piles up the queue.)"""
    text = CHECK_LINE.replace("rate_per_hour = 50", "rate_per_hour = 30").replace(
        'buffer = 5\n[[stations]]\nname = "b"',
        'buffer = 5\n[stations.failures]\nttf = { dist = "exponential", mean = "6h" }\n'
        'ttr = { dist = "exponential", mean = "1h" }\n[[stations]]\nname = "b"', 1)
    assert "[stations.failures]" in text
    spec, log = _day_log(tmp_path, text, 3, keep_lost=False)
    capsys.readouterr()
    rc = main(["check", str(spec), str(log), "--replications", "10"])
    captured = capsys.readouterr()
    assert rc == 0 and "cannot tell" in captured.out
    assert "could see a factor of 3" in captured.err
    main(["check", str(spec), str(log), "--replications", "10", "--json"])
    lt = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}["lead_time_mean_s"]
    assert lt["verdict"] == "cannot tell" and lt["undetectable_factor"] > 3 and lt["log_length_needed"] > 1


@pytest.mark.slow
def test_a_right_model_fails_the_check_in_about_five_percent_of_logs(tmp_path):
    """The exit code's family-wise error: 40 one-day logs of the spec itself, each checked on 10
    replications. With every row at its own 95 % a third of them failed (measured: 7 of 20);
    Holm over the rows holds it at 5 %: 2 expected, and 7 or more has probability 0.4 % at 5 %."""
    from twin.eventlog import read_log
    from twin.logcheck import check

    failed = 0
    for seed in range(100, 140):
        spec, log = _day_log(tmp_path, CHECK_LINE, seed)
        res = check(twin.load(spec), read_log(log, {}), replications=10, seed=1)
        failed += any(r["verdict"] == "DIFFERS" for r in res["rows"])
    assert failed <= 6


@pytest.mark.slow  # keeps the default run inside its 4 minutes (241 s in the last run)
def test_scrap_in_the_log_is_calibrated_and_the_check_sees_it(tmp_path, capsys):
    """Lots of 10 leave the first station with fewer units when some are scrapped there (5 %):
    the calibration infers the share (binomial: 2,900 units give a standard error of 0.4 points;
    4 of them allowed), and the check passes the calibrated spec on throughput of good units,
    while the same spec without the scrap is 5 % too fast and DIFFERS."""
    text = ('name = "q"\n[source]\nkind = "saturated"\n[[products]]\nname = "p"\nlot_size = 10\nroute = ["a", "b"]\n'
            '[[stations]]\nname = "a"\nprocess_time = { dist = "exponential", mean = "60s" }\nbuffer = 2\n'
            '[stations.quality]\ndefect_rate = 0.05\ninspect = "inline"\n'
            '[[stations]]\nname = "b"\nprocess_time = { dist = "exponential", mean = "50s" }\nbuffer = 2\n')
    spec, log = tmp_path / "q.toml", tmp_path / "q.csv"
    spec.write_text(text)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(spec), "--horizon", "2d", "--warmup", "0", "--replications", "1", "--seed", "5",
                     "--event-log", str(log), "-q"]) == 0
    cal = tmp_path / "cal.toml"
    assert main(["calibrate", str(log), "--out", str(cal)]) == 0
    got = twin.load(cal)
    a = {s.name: s for s in got.stations}["a"]
    assert abs(a.quality.defect_rate - 0.05) < 4 * math.sqrt(0.05 * 0.95 / 2900) and a.quality.inspect == "inline"
    assert {s.name: s for s in got.stations}["b"].quality is None or \
        {s.name: s for s in got.stations}["b"].quality.defect_rate == 0
    assert "did not leave" in cal.read_text()
    capsys.readouterr()
    assert main(["check", str(cal), str(log), "--replications", "10", "--json"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["throughput_per_hour"]["verdict"] == "ok"
    lines = cal.read_text().splitlines()
    blind = tmp_path / "blind.toml"
    blind.write_text("\n".join(ln for ln in lines if not ln.startswith("quality = ")) + "\n")
    assert twin.load(blind).stations[0].quality is None or twin.load(blind).stations[0].quality.defect_rate == 0
    assert main(["check", str(blind), str(log), "--replications", "10", "--json"]) == 1
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["throughput_per_hour"]["verdict"] == "DIFFERS"


MM1K = """name = "mm1k"
[source]
kind = "poisson"
rate_per_hour = 50
[[products]]
name = "p"
route = ["a"]
[[stations]]
name = "a"
process_time = { dist = "exponential", mean = "60s" }
buffer = 2
"""


def test_arrivals_turned_away_are_logged_calibrated_and_checked(tmp_path, capsys):
    """An M/M/1/3 line (ρ = 50/60, two waiting places): its log records each arrival turned away as
    ``lost``. The share lost is the blocking probability (1 - ρ) ρ^3 / (1 - ρ^4) = 0.186; calibrate
    counts the lost among the arrivals (rate 50 an hour, not the 40.7 accepted) and gives the
    entrance its two places; check replays every arrival, turning away at a full entrance, and
    a spec with six places DIFFERS on the lost share."""
    spec = tmp_path / "mm1k.toml"
    spec.write_text(MM1K)
    log = tmp_path / "log.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(spec), "--horizon", "1w", "--warmup", "0", "--replications", "1",
                     "--event-log", str(log), "-q"]) == 0
    df = read_log(log)
    lost, arrived = int((df["event"] == "lost").sum()), int((df["event"] == "arrive").sum())
    rho = 50 / 60
    p_block = (1 - rho) * rho**3 / (1 - rho**4)
    # ~8,400 arrivals; blocking events cluster, so allow 3 times the binomial s.e. (0.4 points)
    assert lost / (lost + arrived) == pytest.approx(p_block, abs=0.013)
    assert set(df.loc[df["event"] == "lost", "station"]) == {"a"} and df.loc[df["event"] == "lost", "server"].isna().all()
    cal = tmp_path / "cal.toml"
    assert main(["calibrate", str(log), "--out", str(cal)]) == 0
    got = twin.load(cal)
    assert got.station("a").buffer == 2
    # Poisson count over one week: s.e. of the rate 1.1 %
    assert got.source.rate_per_hour == pytest.approx(50, rel=0.04)
    assert "turned away" in cal.read_text()
    capsys.readouterr()
    assert main(["check", str(cal), str(log), "--replications", "10", "--json"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["lost_share"]["verdict"] == "ok" and rows["lost_share"]["log"] == pytest.approx(lost / (lost + arrived))
    roomy = tmp_path / "roomy.toml"
    roomy.write_text(cal.read_text().replace("buffer = 2", "buffer = 6"))
    assert main(["check", str(roomy), str(log), "--replications", "10", "--json"]) == 1
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["lost_share"]["verdict"] == "DIFFERS" and rows["lost_share"]["sim_mean"] < 0.1


def test_a_log_without_lost_events_says_the_entrance_is_left_unlimited(tmp_path):
    spec, log = _day_log(tmp_path, CHECK_LINE, 2, keep_lost=False)
    cal = tmp_path / "cal.toml"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["calibrate", str(log), "--out", str(cal)]) == 0
    text = cal.read_text()
    assert "no 'lost' events" in text and twin.load(cal).station("a").buffer is None


def test_calibrated_spec_is_written_in_the_templates_style(tmp_path):
    """One style: [[stations]] tables with distributions inline, never `stations = [ {...} ]` nor
    `[stations.process_time]` sub-tables, whatever the length of a station's entry."""
    text = CHECK_LINE.replace('name = "c"', 'name = "c"\nfailures = { ttf = { dist = "exponential", mean = "8h" }, '
                                              'ttr = { dist = "lognormal", mean = "20min", cv = 0.5 } }')
    spec, log = _day_log(tmp_path, text, 4)
    cal = tmp_path / "cal.toml"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["calibrate", str(log), "--out", str(cal)]) == 0
    lines = cal.read_text().splitlines()
    assert lines.count("[[stations]]") == 3 and lines.count("[[products]]") == 1
    assert not [ln for ln in lines if ln.startswith("[stations.") or ln.startswith("stations =")]
    assert any(ln.startswith("process_time = { dist = ") for ln in lines)
    assert twin.load(cal).station("c").failures is not None
    # the same writer gives Spec.to_toml: a round trip gives an equal spec
    s = twin.load(cal)
    assert twin.spec.validate(tomllib.loads(s.to_toml())) == s


def test_calibrate_json_gives_the_written_spec_as_data(tmp_path, capsys):
    spec, log = _day_log(tmp_path, CHECK_LINE, 6)
    cal = tmp_path / "cal.toml"
    capsys.readouterr()
    assert main(["calibrate", str(log), "--out", str(cal), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["out"] == str(cal) and isinstance(out["warnings"], list)
    assert out["spec"] == tomllib.loads(cal.read_text())
    assert [s["name"] for s in out["spec"]["stations"]] == ["a", "b", "c"]
