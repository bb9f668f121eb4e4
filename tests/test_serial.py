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
