"""The max-plus recursion for saturated serial lines (twin.serial) as an oracle for the engine:
fed the same named streams, it must give the engine's departure times from every station, to
the last bit, on lines with blocking, hand-offs, unlimited buffers, lots of several units and
several distributions; and it must say which element rules a line out."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import expo, line

import twin
from twin import serial
from twin.record import Fate
from twin.state import TraceEvent

LINES = {
    "five exponential, mixed buffers": ([expo(1.0)] * 5, [None, 2, 0, 3, 1], 1),
    "unbalanced, hand-offs only": ([expo(1.0), expo(1.4), expo(0.7)], [None, 0, 0], 1),
    "lognormal and gamma": ([{"dist": "lognormal", "mean": 2.0, "cv": 0.6}, {"dist": "gamma", "mean": 1.8, "cv": 1.3},
                             {"dist": "uniform", "low": 1.0, "high": 3.0}], [None, 1, 4], 1),
    "constant bottleneck, lots of 6": ([expo(1.0), {"dist": "constant", "value": 1.2}, expo(0.9)], [None, 2, None], 6),
    "two stations, unlimited": ([expo(1.0), expo(0.95)], [None, None], 1),
}


def _spec(times, buffers, lot_size):
    stations = [{"name": f"s{i}", "process_time": t, "buffer": b} for i, (t, b) in enumerate(zip(times, buffers))]
    return line(stations, products=[{"name": "p", "route": [s["name"] for s in stations], "lot_size": lot_size}])


@pytest.mark.parametrize("case", list(LINES))
def test_departure_times_are_the_engines_to_the_bit(case):
    spec = _spec(*LINES[case])
    horizon, seeds = 4_000.0, [1, 7, 12]
    oracle = serial.departures(spec, horizon, seeds)
    for r, seed in enumerate(seeds):
        res = twin.run_once(spec, horizon, 0.0, seed, trace=True)
        tr = res.record.array("trace")
        for k in range(len(oracle.stations)):
            left = tr["t"][(tr["server"] == k) & (tr["event"] == TraceEvent.LEAVE)]
            assert len(left) > 300 and np.array_equal(left, oracle.times[r][k]), (case, seed, k)
        # and the untraced run (the plain loop) finishes the same lots at the same times
        f = twin.run_once(spec, horizon, 0.0, seed).record.array("finishes")
        assert np.array_equal(np.sort(f["t"][f["fate"] == Fate.GOOD]), oracle.finished(r))


def test_throughput_is_the_engines_kpi():
    spec = _spec(*LINES["five exponential, mixed buffers"])
    seeds = [3, 4, 5, 6]
    fast = serial.throughput(spec, 6_000.0, 1_000.0, seeds)
    engine = [float(twin.run_once(spec, 6_000.0, 1_000.0, s).kpis["throughput_per_hour"].iloc[0]) for s in seeds]
    assert fast.tolist() == engine


def test_two_station_blocking_throughput_matches_the_markov_chain():
    # two exponential stations (rates 1 and 1), b places between them: the exact throughput of
    # the saturated line is mu (b + 2) / (b + 3) (Buzacott and Shanthikumar, 1993, section 3.4)
    for b in (0, 1, 3):
        spec = _spec([expo(1.0), expo(1.0)], [None, b], 1)
        got = serial.throughput(spec, 200_000.0, 2_000.0, [1, 2, 3, 4]).mean() / 3600.0
        # 4 x 200k lots: a relative half-width of about 0.4 %
        assert got == pytest.approx((b + 2) / (b + 3), rel=0.01)


def test_ineligible_lines_are_named_by_their_element():
    base = _spec([expo(1.0), expo(1.0)], [None, 2], 1)
    assert serial.ineligible(base) == []
    cases = {
        "stations.s1.servers is 2": {"stations.s1.servers": 2},
        "stations.s0.failures is set": {"stations.s0.failures": {"ttf": expo(100.0), "ttr": expo(5.0)}},
        "stations.s1.queue is 'spt'": {"stations.s1.queue": "spt"},
        "source.kind is 'poisson'": {"source": {"kind": "poisson", "rate_per_hour": 100.0}},
    }
    for reason, override in cases.items():
        why = serial.ineligible(base.with_overrides(override))
        assert any(reason in w for w in why), (reason, why)
    with pytest.raises(ValueError, match="stations.s1.servers is 2"):
        serial.departures(base.with_overrides({"stations.s1.servers": 2}), 100.0, [1])


def _same(a, b):
    """Two Results with identical KPIs, station table and state spells (NaN equal to NaN)."""
    assert a.kpis.equals(b.kpis), (a.kpis.T, b.kpis.T)
    assert a.stations.equals(b.stations)
    assert a.states.reset_index(drop=True).equals(b.states.reset_index(drop=True))
    assert a.lots.reset_index(drop=True).equals(b.lots.reset_index(drop=True))


@pytest.mark.parametrize("numpy_from", [serial.NUMPY_FROM, 1])
def test_results_are_the_engines_on_every_line(numpy_from, monkeypatch):
    # the whole record, hence every table and KPI, on Python floats and on numpy columns
    monkeypatch.setattr(serial, "NUMPY_FROM", numpy_from)
    horizon, warmup, seeds = 3_000.0, 500.0, [1, 2]
    runs = [(_spec(*LINES[c]), s) for c in LINES for s in seeds]
    fast = serial.run_many(runs, horizon, warmup)
    for (spec, seed), f in zip(runs, fast):
        _same(twin.run_once(spec, horizon, warmup, seed), f)


def test_constant_times_give_the_engines_kpis():
    # exact ties (a place frees at the instant a server finishes) may split a spell where the
    # engine does not; the KPIs and the station table are still the engine's on these lines
    const = {"dist": "constant", "value": 1.0}
    for times, buffers in (([const] * 3, [None, 0, 1]), ([const, {"dist": "constant", "value": 1.5},
                                                           {"dist": "constant", "value": 0.5}], [None, 0, 2])):
        spec = _spec(times, buffers, 1)
        f = serial.run(spec, 3_000.0, 500.0, [1])[0]
        e = twin.run_once(spec, 3_000.0, 500.0, 1)
        assert f.kpis.equals(e.kpis) and f.stations.equals(e.stations)
        assert f.kpis["throughput_per_hour"].iloc[0] == pytest.approx(3600.0 / max(t["value"] for t in times), rel=1e-3)


def test_sweep_takes_the_fast_path_and_says_so(tmp_path, capsys):
    from twin.cli import main
    spec = _spec([expo(1.0)] * 3, [None, 1, 1], 1)
    path = tmp_path / "line.toml"
    path.write_text(spec.to_toml())
    common = ["sweep", str(path), "--vary", "stations.s1.buffer=0,2", "--vary", "stations.s2.buffer=0,3",
              "--horizon", "2h", "--warmup", "10min", "--replications", "3", "--jobs", "1"]
    assert main([*common, "--out", str(tmp_path / "fast")]) == 0
    assert "engine: the exact serial-line recursion" in capsys.readouterr().out
    assert main([*common, "--engine", "simpy", "--out", str(tmp_path / "events")]) == 0
    assert "engine: SimPy events" in capsys.readouterr().out
    for f in ("sweep.csv", "sweep_summary.csv"):
        assert (tmp_path / "fast" / f).read_bytes() == (tmp_path / "events" / f).read_bytes()
    import json
    meta = json.loads((tmp_path / "fast" / "kpis.json").read_text())["meta"]
    assert meta["engine"] == "serial" and meta["engine_why_not"] == []
    # a point the recursion cannot take: auto runs events and says why, serial refuses
    two = [*common[:4], "--vary", "stations.s1.servers=1,2", *common[6:]]
    assert main([*two, "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)["meta"]
    assert meta["engine"] == "simpy" and any("stations.s1.servers is 2" in w for w in meta["engine_why_not"])
    assert main([*two, "--engine", "serial"]) == 2
    err = capsys.readouterr().err
    assert "--engine serial" in err and "stations.s1.servers is 2" in err and "Traceback" not in err


def test_optimize_on_the_fast_path_is_the_event_engines_search():
    from twin import optimize as opt
    spec = _spec([expo(1.0)] * 3, [None, 1, 1], 1)
    space = [opt.parse_dimension("stations.s1.buffer=0..3"), opt.parse_dimension("stations.s2.buffer=0..3")]
    kw = dict(constraints=["stations.s1.buffer + stations.s2.buffer <= 4"], trials=6, replications=2,
              horizon=3_600.0, warmup=300.0, seed=5, confirm=2)
    fast = opt.optimize(spec, space, [("throughput_per_hour", "maximize")], **kw)
    slow = opt.optimize(spec, space, [("throughput_per_hour", "maximize")], engine="simpy", **kw)
    # 6 designs x 2 replications, then the best 2 confirmed on 2 x 2 fresh seeds
    assert fast["meta"]["engine"] == {"serial": 20} and slow["meta"]["engine"] == {"simpy": 20}
    for key in ("best", "runners_up", "trials"):
        assert fast[key] == slow[key]


@pytest.mark.parametrize("dist", [expo(2.0), {"dist": "lognormal", "mean": 2.0, "cv": 0.5},
                                  {"dist": "constant", "value": 1.5}])
@pytest.mark.parametrize("qty", [1, 4])
def test_lots_are_the_draws_one_by_one(dist, qty):
    from pydantic import TypeAdapter

    from twin.dists import BLOCK, Dist, Sampler
    d = TypeAdapter(Dist).validate_python(dist)
    a = Sampler(d, np.random.default_rng(9))
    b = Sampler(d, np.random.default_rng(9))
    # pieces that start and end inside blocks, span several, and follow single draws
    for size in (3, BLOCK - 1, 1, 2 * BLOCK + 5, 0, BLOCK, 7):
        got = a.lots(qty, size)
        want = [b.lot(qty) for _ in range(size)]
        assert got.tolist() == want
        assert a.lot(qty) == b.lot(qty)
