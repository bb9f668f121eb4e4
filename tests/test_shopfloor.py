"""Shop-floor and supply elements against exact values: minor stops and speed losses,
probabilistic routing (Jackson networks), rework stations, batches, transport, component
stores ((s, Q) against the textbook formulas) and supply shifts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst

import twin
from twin.experiment import run_once
from twin.state import State

from helpers import expo, line


def _one(spec: twin.Spec, horizon: float, warmup: float = 0.0, seed: int = 1) -> twin.Results:
    """One replication's tables, with its record and stations by name."""
    return run_once(spec, horizon, warmup, seed)


# ---------------------------------------------------------------- minor stops and speed losses
@pytest.mark.slow
def test_minor_stops_are_a_performance_loss_with_the_exact_rate():
    """A 10 s machine stopped for 60 s after every exp(10 min) of operation makes 60 units per
    660 s: 3600/11 units/h, effectiveness 10/11, availability unchanged (1)."""
    spec = line([{"name": "m", "process_time": 10, "minor_stops": {"every": expo(600), "duration": 60}}])
    res = _one(spec, horizon=2000 * 3600.0, warmup=3600.0)
    k = res.kpis.iloc[0]
    # ~11,000 stops: their total time has a relative sd of ~1 %, i.e. 0.1 % of the throughput
    assert k["throughput_per_hour"] == pytest.approx(3600 / 11, rel=0.005)
    assert k["availability"] == pytest.approx(1.0, abs=1e-9)
    assert k["effectiveness"] == pytest.approx(10 / 11, rel=0.005)
    assert k["oee"] == pytest.approx(10 / 11, rel=0.005)
    assert k["minor_stop_share"] == pytest.approx(1 / 11, rel=0.02)
    stops = res.record.array("minor")
    assert len(stops) == pytest.approx(2000 * 3600 * 10 / 11 / 600, rel=0.03)
    assert np.all(stops["duration"] == 60.0)


def test_speed_loss_lowers_effectiveness_not_availability():
    spec = line([{"name": "m", "process_time": 10, "speed_loss": 1.25}])
    k = _one(spec, horizon=100 * 3600.0).kpis.iloc[0]
    assert k["throughput_per_hour"] == pytest.approx(288.0, rel=1e-3)
    assert k["effectiveness"] == pytest.approx(0.8, rel=1e-4)  # the lot in work at the end counts its busy time
    assert k["availability"] == pytest.approx(1.0)


def test_a_speed_loss_below_one_is_refused():
    with pytest.raises(twin.SpecError, match="speed_loss"):
        line([{"name": "m", "process_time": 10, "speed_loss": 0.9}])


# ---------------------------------------------------------------- routing
def test_retest_loop_costs_exactly_its_share():
    """A 10 s test that sends 20 % of lots back to itself: 1.25 visits a unit, 288 units/h."""
    spec = line([{"name": "test", "process_time": 10, "routing": {"test": 0.2}}])
    res = _one(spec, horizon=400 * 3600.0, warmup=3600.0)
    k = res.kpis.iloc[0]
    # 115,000 units: the visit count's relative sd is ~0.15 %
    assert k["throughput_per_hour"] == pytest.approx(288.0, rel=0.01)
    assert res.stations.loc["test", "units"] / k["good_units"] == pytest.approx(1.25, rel=0.01)


def _jackson_l(rates: list[float], means: list[float]) -> float:
    rho = [lam * m for lam, m in zip(rates, means)]
    return sum(r / (1 - r) for r in rho)


@pytest.mark.parametrize("kind", ["back_to_route", "detour"])
def test_open_network_with_feedback_matches_jackson(kind):
    """Poisson arrivals (1/20 s) through exponential stations with feedback. ``back_to_route``:
    a → b, b sends 25 % back to a (λa = λb = λ/0.75); ``detour``: b sends 25 % to a repair
    bench r, which returns them to b (λb = λ/0.75, λr = λb/4). Jackson: L = Σ ρ/(1 − ρ)."""
    lam = 1 / 20
    if kind == "back_to_route":
        stations = [{"name": "a", "process_time": expo(8)}, {"name": "b", "process_time": expo(6), "routing": {"a": 0.25}}]
        exact = _jackson_l([lam / 0.75, lam / 0.75], [8, 6])
        products = [{"name": "u", "route": ["a", "b"]}]
    else:
        stations = [{"name": "a", "process_time": expo(8)}, {"name": "b", "process_time": expo(6), "routing": {"r": 0.25}},
                    {"name": "r", "process_time": expo(10)}]
        exact = _jackson_l([lam, lam / 0.75, lam / 0.75 / 4], [8, 6, 10])
        products = [{"name": "u", "route": ["a", "b"]}]
    spec = line(stations, source={"kind": "poisson", "rate_per_hour": lam * 3600}, products=products)
    res = twin.simulate(spec, horizon=400_000, warmup=10_000, replications=8, seed=3)
    s = res.summary()["kpis"]
    # 8 x 390,000 s, ~19,500 arrivals each: the half-width is 3-4 % of L; allow it plus 2 %
    # for the warm-up bias
    assert abs(s["wip_mean"]["mean"] - exact) <= s["wip_mean"]["ci95"] + 0.02 * exact
    assert s["wip_mean"]["ci95"] < 0.06 * exact
    # Little: W = L / λ
    assert s["lead_time_mean_s"]["mean"] == pytest.approx(exact / lam, rel=0.08)


def test_routing_problems_are_named():
    with pytest.raises(twin.SpecError, match=r"routing\.x.*unknown station 'x'"):
        line([{"name": "a", "process_time": 1, "routing": {"x": 0.1}}])
    with pytest.raises(twin.SpecError, match="sum to 1.2"):
        line([{"name": "a", "process_time": 1, "routing": {"a": 0.6, "b": 0.6}}, {"name": "b", "process_time": 1}])
    with pytest.raises(twin.SpecError, match="never leaves"):
        line([{"name": "a", "process_time": 1, "routing": {"a": 1.0}}])
    with pytest.raises(twin.SpecError, match="no processing time"):
        line([{"name": "a", "process_time": 1, "routing": {"r": 0.1}}, {"name": "r", "process_time_by_product": {}}],
             products=[{"name": "u", "route": ["a"]}])


# ---------------------------------------------------------------- rework station
def test_rework_station_does_the_rework_and_the_lot_is_tested_again():
    """A 10 s test makes a defect in 10 % of passes (found in line, all reworked) and sends the
    unit to a 30 s repair bench, then tests it again: 1/0.9 passes a good unit, 324 units/h;
    the bench works 30 s per reworked unit."""
    spec = line([{"name": "test", "process_time": 10,
                  "quality": {"defect_rate": 0.1, "inspect": "inline", "rework": 1.0, "rework_at": "repair"}},
                 {"name": "repair", "process_time": 30}],
                products=[{"name": "u", "route": ["test"]}])
    h = 300 * 3600.0
    res = _one(spec, horizon=h)
    k = res.kpis.iloc[0]
    assert k["scrap_units"] == 0
    assert k["throughput_per_hour"] == pytest.approx(324.0, rel=0.01)
    reworked = float(res.record.array("reworks")["units"].sum())
    assert reworked / k["good_units"] == pytest.approx(1 / 9, rel=0.03)
    busy = res.stations.loc["repair", State.BUSY.key] * h
    assert busy == pytest.approx(30 * res.stations.loc["repair", "units"], rel=1e-6)
    assert res.stations.loc["repair", "units"] == pytest.approx(reworked, abs=1)
    # nothing lost: released = finished + in the line
    lots = res.lots
    assert int(lots["qty"].sum()) == int(lots["good"].sum() + lots.loc[lots["status"] == "wip", "qty"].sum())


def test_rework_return_is_checked():
    with pytest.raises(twin.SpecError, match="rework_return.*not on the route"):
        line([{"name": "a", "process_time": 1, "quality": {"defect_rate": 0.1, "inspect": "inline", "rework": 1,
                                                            "rework_at": "r", "rework_return": "r"}},
              {"name": "r", "process_time": 1}], products=[{"name": "u", "route": ["a"]}])
    with pytest.raises(twin.SpecError, match="rework_time.*rework in place"):
        line([{"name": "a", "process_time": 1, "quality": {"defect_rate": 0.1, "inspect": "inline", "rework": 1,
                                                            "rework_at": "r", "rework_time": 5}},
              {"name": "r", "process_time": 1}], products=[{"name": "u", "route": ["a"]}])


# ---------------------------------------------------------------- batches (burn-in)
def test_batch_station_throughput_is_batch_over_time():
    spec = line([{"name": "burn", "process_time": 100, "batch": {"size": 10}}])
    k = _one(spec, horizon=100 * 3600.0).kpis.iloc[0]
    assert k["throughput_per_hour"] == pytest.approx(360.0, rel=1e-3)


def test_full_batches_wait_for_their_last_lot():
    """Lots every 20 s, full batches of 10, 100 s: the k-th lot of a batch waits (10 − k) × 20 s,
    90 s on average, then 100 s in the oven: 190 s lead time."""
    spec = line([{"name": "burn", "process_time": 100, "batch": {"size": 10}}],
                source={"kind": "renewal", "interarrival": 20})
    res = _one(spec, horizon=20_000.0)
    lots = res.lots[res.lots["status"] == "good"]
    assert lots["lead_time_s"].mean() == pytest.approx(190.0, abs=1e-6)
    assert lots["lead_time_s"].max() == pytest.approx(280.0, abs=1e-6)


def test_batch_max_wait_starts_a_partial_batch():
    spec = line([{"name": "burn", "process_time": 100, "batch": {"size": 10, "max_wait": 50}}],
                source={"kind": "renewal", "interarrival": 1000})
    res = _one(spec, horizon=20_000.0)
    lots = res.lots[res.lots["status"] == "good"]
    # alone in the oven after waiting 50 s: 150 s each
    assert np.allclose(lots["lead_time_s"], 150.0)


# ---------------------------------------------------------------- transport
def _two(fleet: dict | None, source: dict | None = None) -> twin.Spec:
    extra = {"transport": [fleet]} if fleet else {}
    return line([{"name": "a", "process_time": 10}, {"name": "b", "process_time": 10}], source=source, **extra)


def test_ample_fleet_adds_exactly_the_move_time():
    src = {"kind": "renewal", "interarrival": 30}
    base = _one(_two(None, src), horizon=30_000.0)
    moved = _one(_two({"name": "agv", "vehicles": 10, "travel_time": 20, "load_time": 2, "unload_time": 3}, src),
                 horizon=30_000.0, warmup=0.0)
    b, m = base.kpis.iloc[0], moved.kpis.iloc[0]
    assert m["good_units"] == pytest.approx(b["good_units"], abs=1)
    assert b["lead_time_mean_s"] == pytest.approx(20.0)
    assert m["lead_time_mean_s"] == pytest.approx(20.0 + 2 + 20 + 3)
    assert "agv" in moved.stations.index


def test_one_vehicle_sets_the_pace():
    """One vehicle: load 5 + 30 there + unload 5 + 30 back = 70 s a move, 3600/70 units/h."""
    spec = _two({"name": "agv", "vehicles": 1, "distance_m": 45, "speed_m_per_s": 1.5, "load_time": 5,
                 "unload_time": 5})
    res = _one(spec, horizon=100 * 3600.0, warmup=3600.0)
    assert res.kpis.iloc[0]["throughput_per_hour"] == pytest.approx(3600 / 70, rel=1e-3)
    assert res.stations.loc["agv", State.BUSY.key] == pytest.approx(1.0, abs=1e-3)
    assert res.stations.loc["a", State.BLOCKED.key] == pytest.approx(1 - 10 / 70, abs=2e-3)


def test_transport_problems_are_named():
    with pytest.raises(twin.SpecError, match="travel_time, or distance_m"):
        _two({"name": "agv"})
    with pytest.raises(twin.SpecError, match=r"transport\.a\.name.*station"):
        _two({"name": "a", "travel_time": 1})
    with pytest.raises(twin.SpecError, match="unknown station 'c'"):
        _two({"name": "agv", "travel_time": 1, "moves": [["a", "c"]]})


# ---------------------------------------------------------------- components and supply
def _store_spec(policy: dict, lam: float, horizon: float, shifts: list | None = None) -> twin.Spec:
    comp = {"name": "chip", "supplier": {"lead_time": 5000}, **policy}
    extra: dict = {"components": [comp]}
    return line([{"name": "m", "servers": 200, "process_time": 1}],
                source={"kind": "poisson", "rate_per_hour": lam * 3600},
                products=[{"name": "u", "route": ["m"], "bom": {"chip": 1}}], run={"horizon": horizon}, **extra)


@pytest.mark.slow
def test_sq_store_matches_the_textbook():
    """(s, Q) with Poisson unit demand λ, constant lead time L and backorders: the inventory
    position is uniform on s+1..s+Q and net stock is IP − D(L), D(L) ~ Poisson(λL) (Hadley &
    Whitin; Zipkin, Foundations of Inventory Management, §6). By PASTA the share of demands
    met from stock is P(IP − D ≥ 1); mean stock on hand is E[(IP − D)+]."""
    lam, lead, s, q = 0.01, 5000.0, 40, 30
    spec = _store_spec({"reorder_point": s, "order_qty": q}, lam, 3e6)
    res = twin.simulate(spec, horizon=3e6, warmup=1e5, replications=6, seed=7)
    d = sst.poisson(lam * lead)
    ys = np.arange(s + 1, s + q + 1)
    fill = float(np.mean([d.cdf(y - 1) for y in ys]))
    ks = np.arange(0, 200)
    on_hand = float(np.mean([np.sum(np.clip(y - ks, 0, None) * d.pmf(ks)) for y in ys]))
    k = res.summary()["kpis"]
    # 6 x 29,000 demands in ~970 order cycles each: half-widths of ~1 % (fill) and ~2 % (stock)
    assert abs(k["material_fill_rate"]["mean"] - fill) <= k["material_fill_rate"]["ci95"] + 0.01
    assert abs(k["component_stock_mean"]["mean"] - on_hand) <= k["component_stock_mean"]["ci95"] + 0.02 * on_hand
    assert 0.5 < fill < 0.95  # the case is one with real shortages, not a trivial one


def test_a_supplier_stop_starves_the_station_and_costs_holding():
    lam = 0.01
    stop = [{"kind": "supply", "at": 200_000, "duration": 100_000, "target": "chip", "stop": True}]
    base = _store_spec({"reorder_point": 60, "order_qty": 100, "holding_per_unit_year": 10.0}, lam, 6e5)
    data = base.to_dict()
    data["demand"] = {"base_per_week": 1.0, "shifts": stop}
    hit = twin.validate(data)
    r0 = _one(base, horizon=6e5)
    r1 = _one(hit, horizon=6e5)
    assert r1.kpis.iloc[0]["material_fill_rate"] < r0.kpis.iloc[0]["material_fill_rate"]
    assert r1.stations.loc["m", State.STARVED_MATERIAL.key] > 0
    assert r0.stations.loc["m", State.STARVED_MATERIAL.key] < r1.stations.loc["m", State.STARVED_MATERIAL.key]
    # no delivery inside the stop
    pur = r1.record.array("purchases")
    assert not np.any((pur["due"] > 200_000) & (pur["due"] < 300_000))
    # holding: mean stock x 10 per unit-year over the window, by hand
    c = r0.costs.set_index("term").loc["holding", "total"]
    assert c == pytest.approx(r0.kpis.iloc[0]["component_stock_mean"] * 10.0 * 6e5 / (365 * 86400))


def test_rs_review_orders_up_to_s():
    spec = _store_spec({"policy": "RS", "review": 20_000, "order_up_to": 150}, 0.01, 2e5)
    res = _one(spec, horizon=2e5)
    pur = res.record.array("purchases")
    st = res.record.array("stock")
    assert np.allclose(np.diff(pur["t"]) % 20_000, 0.0)
    # after each review the position is S: stock + open orders − backorders = 150
    assert len(pur) >= 5 and st["level"].max() <= 150


def test_supply_problems_are_named():
    with pytest.raises(twin.SpecError, match=r"bom\.chop.*unknown component 'chop'.*chip"):
        line([{"name": "m", "process_time": 1}], products=[{"name": "u", "route": ["m"], "bom": {"chop": 1}}],
             components=[{"name": "chip", "supplier": {"lead_time": 1}}])
    with pytest.raises(twin.SpecError, match="supply shift needs a target"):
        line([{"name": "m", "process_time": 1}], source={"kind": "orders"},
             demand={"base_per_week": 10, "shifts": [{"kind": "supply", "at": 10}]})


def test_only_the_repaired_units_are_tested_again():
    """Trays of 10: a tray whose test finds defects goes to the bench and comes back; the test then
    re-tests the repaired units only, so its units = units released + units reworked, exactly."""
    spec = line([{"name": "make", "process_time": 5, "quality": {"defect_rate": 0.05}},
                 {"name": "test", "process_time": 3,
                  "quality": {"inspect": "end_of_line", "rework": 1.0, "rework_at": "repair"}},
                 {"name": "repair", "process_time": 60}],
                products=[{"name": "u", "route": ["make", "test"], "lot_size": 10}])
    res = _one(spec, horizon=50 * 3600.0)
    reworked = int(res.record.array("reworks")["units"].sum())
    done = res.lots[res.lots["status"] == "good"]
    assert reworked > 100
    assert res.stations.loc["repair", "units"] == reworked
    # every tray passes the test once whole; its repaired units pass again
    wip_at_test = res.stations.loc["test", "units"] - 10 * len(done) - reworked
    assert 0 <= wip_at_test <= 20  # a tray or two still between test and repair at the end
    h = res.stations.loc["test", State.BUSY.key] * 50 * 3600.0
    assert h == pytest.approx(3.0 * res.stations.loc["test", "units"], abs=30.0)
