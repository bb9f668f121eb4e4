"""Queue disciplines against scheduling theory: Cobham's non-preemptive priority queue, the
shortest- and longest-processing-time rules on M/G/1 (Conway, Maxwell and Miller), and the
order each discipline serves a queue in, read from a traced run."""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import pytest
from helpers import expo, line
from scipy import integrate

import twin
from twin.flow import Lot, SortedQueue
from twin.state import TraceEvent


def _sojourn_by_product(runs: list[twin.Results], warm: float) -> dict[int, float]:
    """Mean time in system (s) per product of the lots released after ``warm``, pooled over runs."""
    sums: dict[int, list[float]] = {}
    for res in runs:
        r, f = res.record.array("releases"), res.record.array("finishes")
        t0 = dict(zip(r["lot"].tolist(), r["t"].tolist()))
        prod = dict(zip(r["lot"].tolist(), r["product"].tolist()))
        for lot, t in zip(f["lot"].tolist(), f["t"].tolist()):
            if t0[lot] >= warm:
                sums.setdefault(prod[lot], []).append(t - t0[lot])
    return {p: float(np.mean(v)) for p, v in sums.items()}


def _runs(spec: twin.Spec, horizon: float, seeds: range) -> list[twin.Results]:
    return [twin.run_once(spec, horizon, 0.0, s) for s in seeds]


def test_two_class_priority_matches_cobham():
    # class a: exponential 5 s, class b: constant 20 s, each 0.025 lots/s; a served first
    lam, s_a, s_b = 0.025, 5.0, 20.0
    spec = line([{"name": "m", "process_time": expo(10.0), "queue": "priority",
                  "process_time_by_product": {"a": expo(s_a), "b": {"dist": "constant", "value": s_b}}}],
                source={"kind": "poisson", "rate_per_hour": 2 * lam * 3600},
                products=[{"name": "a", "route": ["m"], "priority": 0}, {"name": "b", "route": ["m"], "priority": 1}])
    rho_a, rho_b = lam * s_a, lam * s_b
    w0 = lam * 2 * s_a**2 / 2 + lam * s_b**2 / 2  # sum of lambda_i E[S_i^2] / 2: 5.625 s
    w_a = w0 / (1 - rho_a)  # 6.43 s
    w_b = w0 / ((1 - rho_a) * (1 - rho_a - rho_b))  # 17.14 s
    got = _sojourn_by_product(_runs(spec, 400_000, range(1, 5)), warm=10_000)
    # 4 x 400k s (about 80k lots): the per-seed waits scatter by 1.5 % (a) and 2.5 % (b) of W,
    # so the pooled mean is within about 2 % of the theory; asserted within 5 %
    assert got[0] - s_a == pytest.approx(w_a, rel=0.05)
    assert got[1] - s_b == pytest.approx(w_b, rel=0.05)
    # and FIFO on the same line waits W0 / (1 - rho) for both (Pollaczek-Khinchine), between the two
    fifo = _sojourn_by_product(_runs(spec.with_overrides({"stations.m.queue": "fifo"}), 400_000, range(1, 3)), 10_000)
    w_fifo = w0 / (1 - rho_a - rho_b)
    assert fifo[0] - s_a == pytest.approx(w_fifo, rel=0.06) and fifo[1] - s_b == pytest.approx(w_fifo, rel=0.06)


def _mg1_size_based_wait(lam: float, mean: float, shortest_first: bool) -> float:
    """Mean wait of M/M/1 under SPT (or LPT) with the times known on arrival: a job of time x
    waits W0 / (1 - rho(x))^2, rho(x) the load of the jobs served before it (Phipps 1956;
    Conway, Maxwell and Miller 1967, section 8-6)."""
    mu = 1 / mean
    rho = lam * mean
    w0 = lam * 2 * mean**2 / 2

    def ahead(x: float) -> float:  # lambda * integral of t dG(t) over the jobs that go first
        below = rho * (1 - math.exp(-mu * x) * (1 + mu * x))
        return below if shortest_first else rho - below

    return integrate.quad(lambda x: w0 / (1 - ahead(x)) ** 2 * mu * math.exp(-mu * x), 0, math.inf)[0]


@pytest.mark.parametrize("queue, shortest_first", [("spt", True), ("lpt", False)])
def test_spt_and_lpt_on_mg1_match_the_size_based_formula(queue, shortest_first):
    lam, mean = 0.7, 1.0
    spec = line([{"name": "m", "process_time": expo(mean), "queue": queue}],
                source={"kind": "poisson", "rate_per_hour": lam * 3600})
    w = _mg1_size_based_wait(lam, mean, shortest_first)  # spt 1.36 s, lpt 3.6 s (FIFO 2.33 s)
    got = _sojourn_by_product(_runs(spec, 150_000, range(1, 4)), warm=5_000)[0] - mean
    # 3 x 150k lots: a per-seed scatter of about 1 % (spt) and 4 % (lpt, a heavier tail) of W
    assert got == pytest.approx(w, rel=0.04 if shortest_first else 0.08)
    fifo = lam * mean**2 / (1 - lam * mean)
    assert (got < fifo) if shortest_first else (got > fifo)


def _starts_in_key_order(res: twin.Results, station_servers: set[int], up_servers: set[int], key) -> int:
    """Check that whenever a server of the station starts a lot, no lot that was already waiting
    (handed on by the upstream servers strictly earlier) and starts later has a smaller key;
    return how many starts found another lot waiting (so the check was not vacuous)."""
    tr = res.record.array("trace")
    arrive, start = {}, {}
    for t, srv, lot, ev in zip(tr["t"].tolist(), tr["server"].tolist(), tr["lot"].tolist(), tr["event"].tolist()):
        if ev == TraceEvent.LEAVE and srv in up_servers:
            arrive[lot] = t
        elif ev == TraceEvent.START and srv in station_servers:
            start[lot] = t
    contested = 0
    for lot, t in start.items():
        waiting = [m for m, ta in arrive.items() if ta < t and start.get(m, math.inf) > t]
        if waiting:
            contested += 1
            assert key(lot) <= min(key(m) for m in waiting), (lot, t)
    return contested


@pytest.mark.parametrize("queue", ["edd", "priority", "spt"])
def test_each_discipline_serves_its_queue_in_key_order(queue):
    # three upstream servers overtake each other, so lots reach `down` out of release order
    spec = line([{"name": "up", "servers": 3, "process_time": expo(30.0)},
                 {"name": "down", "process_time": expo(11.0), "queue": queue,
                  "process_time_by_product": {"a": expo(8.0), "b": expo(14.0)}}],
                source={"kind": "poisson", "rate_per_hour": 300},
                products=[{"name": "a", "route": ["up", "down"], "priority": 2},
                          {"name": "b", "route": ["up", "down"], "priority": 1}])
    res = twin.run_once(spec, 30_000, 0.0, 3, trace=True)
    rel = res.record.array("releases")
    released = dict(zip(rel["lot"].tolist(), rel["t"].tolist()))
    product = dict(zip(rel["lot"].tolist(), rel["product"].tolist()))
    tr = res.record.array("trace")
    if queue == "spt":  # the key is the lot's time at `down`: what its work there took
        t_start = {int(lot): t for t, s, lot, e in zip(tr["t"], tr["server"], tr["lot"], tr["event"])
                   if s == 3 and e == TraceEvent.START}
        took = {int(lot): t - t_start[int(lot)] for t, s, lot, e in zip(tr["t"], tr["server"], tr["lot"], tr["event"])
                if s == 3 and e == TraceEvent.END}
        key = lambda lot: took.get(lot, math.inf)  # noqa: E731
    elif queue == "edd":  # no orders: due at release, so oldest release first
        key = released.__getitem__
    else:
        key = lambda lot: (2, 1)[product[lot]]  # noqa: E731
    assert _starts_in_key_order(res, {3}, {0, 1, 2}, key) > 100


def test_sorted_queue_orders_by_key_then_arrival_and_puts_back_first():
    q = SortedQueue(lambda lot: lot.due)
    lots = [Lot(i, 0, 1, (), float(i)) for i in range(5)]
    for i, due in enumerate([3.0, 1.0, 3.0, 2.0, 1.0]):
        lots[i].due = due
        q.append(lots[i])
    assert [lot.id for lot in q] == [1, 4, 3, 0, 2]
    first = q.popleft()
    q.appendleft(first)  # taken and put back: first again among its key
    again = Lot(9, 0, 1, (), 9.0)
    again.due = 1.0
    q.append(again)
    assert [lot.id for lot in q] == [1, 4, 9, 3, 0, 2] and len(q) == 6 and q[0] is first


def test_an_order_lot_is_due_when_the_order_it_fills_is():
    spec = twin.load("static-line")
    spec = spec.with_overrides({"stations.assembly.queue": "edd"})
    model = twin.Model(spec, seed=1, horizon=3600.0)
    p = 0
    model.book[p] = deque([[0, 5, 100.0], [1, 10, 200.0], [2, 10, 300.0]])
    model.stock[p], model.wip[p] = 3, 4  # 7 units ahead: the first order (5) is covered, 2 of the second
    assert model._due_of_next(p) == 200.0
    model.wip[p] = 15  # 18 ahead: the first two orders (15) and 3 of the third
    assert model._due_of_next(p) == 300.0
    model.wip[p] = 30  # nothing open left to fill: a lot built ahead is never due
    assert model._due_of_next(p) == math.inf


def test_unknown_discipline_and_time_keys_on_a_batch_station_are_refused():
    with pytest.raises(twin.SpecError, match=r"stations\.m\.queue.*unknown queue discipline 'sjf'"):
        line([{"name": "m", "process_time": expo(1.0), "queue": "sjf"}])
    with pytest.raises(twin.SpecError, match=r"stations\.m\.queue.*batch"):
        line([{"name": "m", "process_time": expo(1.0), "queue": "spt", "batch": {"size": 4}}])
    line([{"name": "m", "process_time": expo(1.0), "queue": "edd", "batch": {"size": 4}}])  # allowed


def test_a_registered_queue_discipline_is_used():
    @twin.register("queue", "newest_first")
    class NewestFirst:
        draws_time = False

        def __init__(self, station):
            self.key = lambda lot: -lot.t_release

    spec = line([{"name": "up", "servers": 2, "process_time": expo(20.0)},
                 {"name": "down", "process_time": expo(12.0), "queue": "newest_first"}],
                source={"kind": "poisson", "rate_per_hour": 250})
    res = twin.run_once(spec, 20_000, 0.0, 2, trace=True)
    rel = res.record.array("releases")
    released = dict(zip(rel["lot"].tolist(), rel["t"].tolist()))
    assert _starts_in_key_order(res, {2}, {0, 1}, lambda lot: -released[lot]) > 50
