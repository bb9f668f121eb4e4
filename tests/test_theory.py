"""The engine against results we did not write: queueing theory and exact Markov chains.

Tolerances follow from the run length: each case states the approximate 95 %
half-width of its estimate (seen across seeds) and asserts within about twice that.
Seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import math

import pytest
from helpers import expo, line

import twin


def _erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean waiting time in queue of M/M/c (Erlang C)."""
    a = lam / mu
    rho = a / c
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (s + top)
    return p_wait / (c * mu - lam)


def test_mm1_time_in_system_and_littles_law():
    lam, mu = 0.8, 1.0
    spec = line([{"name": "m", "process_time": expo(1 / mu)}], source={"kind": "poisson", "rate_per_hour": lam * 3600})
    res = twin.simulate(spec, horizon=120_000, warmup=5_000, replications=6, seed=11)
    s = res.summary()["kpis"]
    w_theory = 1 / (mu - lam)  # 5 s
    # 6 x 115k s at rho = 0.8: the half-width is 1.5-3 % of W across seeds
    assert s["lead_time_mean_s"]["ci95"] < 0.04 * w_theory
    assert s["lead_time_mean_s"]["mean"] == pytest.approx(w_theory, rel=0.05)
    assert s["wip_mean"]["mean"] == pytest.approx(lam * w_theory, rel=0.05)  # L = lambda W = 4
    # Little's law on the same sample path: L = throughput x W (edge effects only)
    for _, row in res.kpis.iterrows():
        assert row["wip_mean"] == pytest.approx(row["throughput_per_hour"] / 3600 * row["lead_time_mean_s"], rel=0.01)


def test_mmc_erlang_c():
    lam, mu, c = 2.4, 1.0, 3
    spec = line([{"name": "m", "servers": c, "process_time": expo(1 / mu)}],
                source={"kind": "poisson", "rate_per_hour": lam * 3600})
    res = twin.simulate(spec, horizon=50_000, warmup=2_000, replications=6, seed=5)
    w = 1 / mu + _erlang_c_wait(lam, mu, c)  # 1 + 1.079 s
    # half-width about 2.5 % of W across seeds
    assert res.summary()["kpis"]["lead_time_mean_s"]["mean"] == pytest.approx(w, rel=0.05)
    util = res.summary()["stations"]["m"]["utilisation"]["mean"]
    assert util == pytest.approx(lam / (c * mu), rel=0.02)


@pytest.mark.parametrize("b", [0, 1, 3])
def test_two_station_tandem_with_blocking(b):
    """Two equal exponential stations, buffer B between: throughput mu (B+2)/(B+3)."""
    spec = line([{"name": "m1", "process_time": expo(1.0)},
                 {"name": "m2", "process_time": expo(1.0), "buffer": b}])
    res = twin.simulate(spec, horizon=60_000, warmup=1_000, replications=5, seed=2 + b)
    th = res.summary()["kpis"]["throughput_per_hour"]["mean"] / 3600
    # about 40k units per replication: half-width about 0.5 %
    assert th == pytest.approx((b + 2) / (b + 3), rel=0.015)


def test_three_station_line_no_buffers_hunt():
    """Hunt (1956): three equal exponential stations, no buffers, 0.5641 mu."""
    spec = line([{"name": f"m{i}", "process_time": expo(1.0), "buffer": 0} for i in range(3)])
    res = twin.simulate(spec, horizon=60_000, warmup=1_000, replications=5, seed=7)
    th = res.summary()["kpis"]["throughput_per_hour"]["mean"] / 3600
    assert th == pytest.approx(0.5641, rel=0.015)


def test_operating_time_failures_availability():
    """Constant time c with operating-time failures: throughput (1/c) MTTF/(MTTF+MTTR)."""
    c, mttf, mttr = 10.0, 600.0, 100.0
    spec = line([{"name": "m", "process_time": c,
                  "failures": {"ttf": expo(mttf), "ttr": expo(mttr), "basis": "operating"}}])
    res = twin.simulate(spec, horizon=300 * 3600, warmup=3600, replications=5, seed=3)
    s = res.summary()
    expected = 3600 / c * mttf / (mttf + mttr)
    # about 1,500 failure cycles per replication: half-width about 0.5 %
    assert s["kpis"]["throughput_per_hour"]["mean"] == pytest.approx(expected, rel=0.01)
    assert s["stations"]["m"]["technical_availability"]["mean"] == pytest.approx(mttf / (mttf + mttr), rel=0.01)


def test_calendar_time_failures_availability_on_a_partly_idle_machine():
    """Calendar-basis failures age the machine while idle too: down share MTTR/(MTTF+MTTR)."""
    mttf, mttr = 300.0, 30.0
    spec = line([{"name": "m", "process_time": expo(10.0),
                  "failures": {"ttf": expo(mttf), "ttr": expo(mttr), "basis": "calendar"}}],
                source={"kind": "poisson", "rate_per_hour": 180})
    res = twin.simulate(spec, horizon=300 * 3600, warmup=3600, replications=4, seed=1)
    st = res.summary()["stations"]["m"]
    # about 3,000 up/down cycles per replication: half-width about 2 % of the down share
    assert st["down"]["mean"] == pytest.approx(mttr / (mttf + mttr), rel=0.04)
    # every arrival is still served: throughput equals the arrival rate
    assert res.summary()["kpis"]["throughput_per_hour"]["mean"] == pytest.approx(180, rel=0.01)


@pytest.mark.slow
def test_calendar_failures_on_a_starved_and_blocked_station_renewal_reward():
    # A station whose failures come in calendar time (time to failure from the end of the last
    # repair, whatever it is doing) is down E[ttr] / (E[ttf] + E[ttr]) = 20/140 of the time in
    # the long run (renewal-reward), however much it is starved or blocked. Its failure clock
    # draws from its own stream, so on the same seeds its down spells are the same whether it
    # runs alone (always busy) or between two stations that starve and block it.
    fails = {"basis": "calendar", "ttf": expo(7200), "ttr": expo(1200)}
    alone = line([{"name": "b", "process_time": expo(30), "failures": fails}])
    middle = line([
        {"name": "a", "process_time": expo(60), "buffer": 1},
        {"name": "b", "process_time": expo(30), "buffer": 1, "failures": fails},
        {"name": "c", "process_time": expo(60), "buffer": 1},
    ])
    # 30 x 300 h alone (about 130 cycles a replication): the half-width is 0.004-0.007 across seeds
    r_alone = twin.simulate(alone, horizon=300 * 3600, replications=30, seed=5)
    m, h = twin.mean_ci(r_alone.stations["down"])
    assert h < 0.008
    assert abs(m - 20 / 140) <= h
    # the first 8 replications again in the middle of the line: the same down time, spell for spell
    r_mid = twin.simulate(middle, horizon=300 * 3600, replications=8, seed=5)
    b = r_mid.stations[r_mid.stations["station"] == "b"]
    assert b["idle"].mean() > 0.2 and b["blocked"].mean() > 0.2  # it really waits both ways
    assert b["down"].to_numpy() == pytest.approx(r_alone.stations["down"].to_numpy()[:8], rel=1e-9)
