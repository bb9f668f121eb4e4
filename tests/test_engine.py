"""Engine behaviour: conservation, setups, lots, seeds, distributions, streams."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import twin
from twin.dists import Sampler, parse_duration
from twin.experiment import mean_ci, t975
from helpers import expo, line


def _mixed_line(**run):
    return line(
        [
            {"name": "a", "servers": 2, "process_time": expo(30), "buffer": 3,
             "failures": {"ttf": expo(3600), "ttr": expo(300)}},
            {"name": "b", "process_time_by_product": {"x": 20, "y": {"dist": "gamma", "mean": 25, "cv": 0.5}},
             "buffer": 0, "setup": {"default": "5min", "matrix": {"x": {"y": "10min"}}}},
            {"name": "c", "process_time": {"dist": "lognormal", "mean": 18, "cv": 0.3}, "buffer": 1,
             "failures": {"ttf": expo(7200), "ttr": expo(600), "basis": "calendar"}},
        ],
        products=[{"name": "x", "route": ["a", "b", "c"], "lot_size": 4, "share": 2},
                  {"name": "y", "route": ["a", "b", "c"], "lot_size": 3}],
    )


def test_conservation_released_equals_finished_plus_wip():
    spec = _mixed_line()
    res = twin.simulate(spec, horizon=3 * 86400, replications=3, seed=4)
    for _, k in res.kpis.iterrows():
        assert k["released_units"] == k["finished_units"] + k["wip_end"]
        assert k["released_units"] > 1000
    lots = res.lots
    assert set(lots["status"]) <= {"good", "scrap", "wip", "lost"}
    # units are counted, not lots: qty follows the product
    assert set(lots.loc[lots["product"] == "x", "qty"]) == {4}
    assert set(lots.loc[lots["product"] == "y", "qty"]) == {3}
    # the WIP at every hour boundary is never negative and ends at the units still inside
    for r, ts in res.timeseries.groupby("replication"):
        assert (ts["wip"] >= 0).all()
        assert ts["wip"].iloc[-1] == res.kpis.loc[r, "wip_end"]


def test_state_fractions_sum_to_one():
    res = twin.simulate(_mixed_line(), horizon=2 * 86400, warmup=3600, replications=2, seed=1)
    st = res.stations
    total = st[["idle", "setup", "busy", "blocked", "down", "maintenance", "off_shift"]].sum(axis=1)
    assert np.allclose(total, 1.0)
    assert (st.loc[st["station"] == "b", "setup"] > 0).all()


def test_same_seed_identical_different_seed_different():
    spec = _mixed_line()
    a = twin.simulate(spec, horizon=86400, replications=2, seed=8)
    b = twin.simulate(spec, horizon=86400, replications=2, seed=8)
    c = twin.simulate(spec, horizon=86400, replications=2, seed=9)
    pd.testing.assert_frame_equal(a.kpis, b.kpis)
    pd.testing.assert_frame_equal(a.lots, b.lots)
    pd.testing.assert_frame_equal(a.states, b.states)
    assert not a.kpis["good_units"].equals(c.kpis["good_units"])


def test_setups_happen_only_on_product_switches():
    spec = line([{"name": "m", "process_time_by_product": {"x": 10, "y": 10},
                  "setup": {"default": 100, "matrix": {"y": {"x": 50}}}}],
                products=[{"name": "x", "route": ["m"]}, {"name": "y", "route": ["m"]}])
    res = twin.simulate(spec, horizon=20_000, replications=1, seed=3)
    lots = res.lots.sort_values("lot")
    seq = lots["product"].tolist()
    switches_xy = sum(1 for a, b in zip(seq, seq[1:]) if (a, b) == ("x", "y"))
    switches_yx = sum(1 for a, b in zip(seq, seq[1:]) if (a, b) == ("y", "x"))
    setups = res.states[res.states["state"] == "setup"]
    assert len(setups) == switches_xy + switches_yx > 10
    dur = (setups["end"] - setups["start"]).round(6)
    assert sorted(set(dur)) <= [50.0, 100.0]
    # time adds up: every second is busy or setting up on a saturated single machine
    done = lots[lots["status"] == "good"]
    assert len(done) * 10 + 100 * switches_xy + 50 * switches_yx == pytest.approx(20_000, abs=100 + 10)


def test_single_product_setup_never_happens():
    spec = line([{"name": "m", "process_time": 10, "setup": {"default": 100}}])
    res = twin.simulate(spec, horizon=10_005, replications=1, seed=1)
    assert (res.states["state"] != "setup").all()
    assert res.kpis.loc[0, "good_units"] == 1000


def test_lot_sampler_matches_sum_of_units():
    """A lot of qty units has mean qty*m and variance qty*var (not qty^2*var)."""
    rng = np.random.default_rng(0)
    for d in (twin.Exponential(mean=2.0), twin.Lognormal(mean=2.0, cv=0.5)):
        s = Sampler(d, rng)
        x = np.array([s.lot(10) for _ in range(40_000)])
        assert x.mean() == pytest.approx(20.0, rel=0.01)
        assert x.var() == pytest.approx(10 * d.var, rel=0.05)
    c = Sampler(twin.Constant(value=3.0), rng)
    assert c.lot(7) == 21.0


@pytest.mark.parametrize("d", [
    {"dist": "exponential", "mean": 5},
    {"dist": "normal", "mean": 5, "cv": 0.2},
    {"dist": "lognormal", "mean": 5, "cv": 0.8},
    {"dist": "gamma", "mean": 5, "cv": 1.5},
    {"dist": "weibull", "shape": 2.0, "scale": 4},
    {"dist": "triangular", "low": 1, "mode": 2, "high": 9},
    {"dist": "uniform", "low": 2, "high": 6},
    {"dist": "empirical", "values": [1, 2, 2, 9]},
])
def test_distribution_sample_moments(d):
    spec = line([{"name": "m", "process_time": d}])
    dist = spec.stations[0].process_time
    s = Sampler(dist, np.random.default_rng(1))
    x = np.array([s.one() for _ in range(100_000)])
    assert (x >= 0).all()
    # 100k draws: the mean's standard error is sd/316, well inside 2 %
    assert x.mean() == pytest.approx(dist.mean, rel=0.02)
    assert x.std() == pytest.approx(math.sqrt(dist.var), rel=0.05)


def test_weibull_mean_formula():
    w = twin.Weibull(shape=1.0, scale=7.0)
    assert w.mean == pytest.approx(7.0) and w.var == pytest.approx(49.0)


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("2.5h", 9000), ("3d", 259200), ("1w", 604800),
                                          ("20min", 1200), ("500ms", 0.5), (42, 42.0), ("7", 7.0)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["3x", "h", "", "1.2.3h", True, None])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_streams_are_named_and_reproducible():
    a, b = twin.Streams(5), twin.Streams(5)
    b.get("other").random(10)  # creating or using other streams does not shift this one
    assert a.get("demand").random() == b.get("demand").random()
    assert twin.Streams(5).get("x").random() != twin.Streams(5).get("y").random()
    assert twin.Streams(5).get("x").random() != twin.Streams(6).get("x").random()


def test_student_t_and_ci():
    assert t975(1) == 12.706 and t975(10) == 2.228
    assert t975(60) == pytest.approx(2.000, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)
    m, h = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and h == pytest.approx(4.303 * 1.0 / math.sqrt(3))


def test_poisson_arrivals_lost_when_first_buffer_full():
    """M/M/1/K with K = 1 + buffer: loss probability rho^K (1-rho)/(1-rho^(K+1))."""
    lam, mu, buf = 1.0, 1.0, 1
    spec = line([{"name": "m", "process_time": expo(1 / mu), "buffer": buf}],
                source={"kind": "poisson", "rate_per_hour": lam * 3600})
    res = twin.simulate(spec, horizon=100_000, replications=4, seed=2)
    k = res.kpis
    loss = (k["lost_units"] / (k["lost_units"] + k["released_units"])).mean()
    assert loss == pytest.approx(1 / 3, rel=0.03)  # rho = 1, K = 2: 1/(K+1)


def test_worker_pool_serves_waiting_requests_in_order():
    # the pool behaves like a simpy.Container of workers: FIFO, a big request at the head
    # is not overtaken by smaller ones behind it
    import simpy

    from twin.workforce import Pool

    env = simpy.Environment()
    pool = Pool(env, 3)
    got: list[tuple[str, float]] = []

    def worker(name, n, start, hold):
        yield env.timeout(start)
        if not pool.try_get(n):
            yield pool.get_event(n)
        got.append((name, env.now))
        yield env.timeout(hold)
        pool.put(n)

    env.process(worker("a", 2, 0, 10))   # takes 2 of 3 at t=0
    env.process(worker("b", 3, 1, 5))    # waits for all 3: t=10
    env.process(worker("c", 1, 2, 1))    # 1 is free, but b is first in line: after b, t=15
    env.run()
    assert got == [("a", 0), ("b", 10), ("c", 15)]
    assert pool.level == 3
