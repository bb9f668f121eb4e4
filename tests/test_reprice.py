"""Exact re-pricing: a finished run's record priced under other prices equals a run with those
prices set, and the arithmetic of :func:`twin.cost.price` checked by hand."""

from __future__ import annotations

import math

import pytest

from twin import uncertainty
from twin.compare import FACTORIES as FACTORY_NAMES
from twin.cost import TERMS, is_price_path, price, prices_of, reprice, set_price
from twin.runs import run_once
from twin.scenario import Scenario, apply
from twin.spec import SpecError, load, resolve

WEEK = 604800.0
STEP = Scenario.model_validate({"name": "step", "shifts": [{"kind": "step", "at": "1w", "factor": 1.3}]})
MONEY = [f"cost_{k}" for k in TERMS] + ["unit_cost", "cost_total", "unit_cost_transition", "unit_cost_after"]


def _price_params(factory: str) -> list[uncertainty.Parameter]:
    pars, _ = uncertainty.load()
    return [p for p in pars.parameter if p.factory in ("*", factory) and is_price_path(p.path)]


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def _run(spec):
    s = apply(spec, STEP, 2.0, 0.5 * WEEK)
    return run_once(s, s.run.horizon, s.run.warmup, 11)


def test_price_by_hand():
    # one week of a two-lane plant: every term computed on paper
    b = {"span_s": WEEK, "owned_lane_s": 2 * WEEK, "deployed_lane_s": 1.5 * WEEK, "deploys": 3, "hired": 4.0,
         "shed": 1.0, "pools": [["crew", 10.0, 40 * 3600.0, 5 * 3600.0]], "kwh": 1000.0, "repairs": 2,
         "planned": 5, "good": 10_000.0, "escaped": 7.0, "scrap_units": 20.0, "scrap_work_unit_s": 20 * 1800.0,
         "reworked": 30.0, "wip_mean": 100.0, "fg_stock_mean": 50.0, "component_stock_means": [400.0],
         "late_units": 250.0}
    c = {"capex": 70e6, "capex_per_lane": 7e6, "lanes_leased": False,
         "lease_per_lane_hour": 0.0, "depreciation_years": 7.0, "module_deploy_cost": 1000.0,
         "labour_per_lane_hour": 10.0, "wage_per_hour": {"crew": 5.0}, "overtime_premium": 0.5,
         "hiring_per_worker": 500.0, "severance_per_worker": 200.0, "energy_per_kwh": 0.1, "repair_cost": 300.0,
         "planned_maintenance_cost": 100.0, "material_per_unit": 150.0, "conversion_per_hour": 20.0,
         "escape_cost": 50.0, "rework_per_unit": 4.0, "holding_per_unit_year": 36.5, "overhead_per_year": 3.65e6,
         "late_per_unit": 20.0}
    t = price(b, {"costs": c, "components": [{"name": "display", "holding_per_unit_year": 3.65}]})
    # 70 M over 7 years is 10 M a year, for 7/365 of a year; two lanes of 7 M are 1 M a year each
    assert t["capex"] == pytest.approx(10e6 * 7 / 365 + 2 * 1e6 * 7 / 365 + 3 * 1000.0)
    assert t["labour"] == pytest.approx(10.0 * 1.5 * 168 + 10 * 5.0 * (40 + 5 * 1.5))  # 2520 + 2375
    assert t["workforce"] == pytest.approx(4 * 500 + 200)
    assert t["energy"] == pytest.approx(100.0)
    assert t["maintenance"] == pytest.approx(2 * 300 + 5 * 100)
    assert t["material"] == pytest.approx(1.5e6)
    assert t["scrap"] == pytest.approx(20 * 150 + 20 * 0.5 * 20 + 7 * 50)  # 3000 + 200 + 350
    assert t["rework"] == pytest.approx(120.0)
    assert t["holding"] == pytest.approx(150 * 36.5 * 7 / 365 + 400 * 3.65 * 7 / 365)  # 105 + 28
    assert t["overhead"] == pytest.approx(3.65e6 * 7 / 365)  # 70,000
    assert t["lateness"] == pytest.approx(250 * 20.0)
    # the building as an asset class of its own: 70 M over 20 years, the lanes still over 7
    by_class = price(b, {"costs": {**c, "plant_depreciation_years": 20.0}, "components": []})
    assert by_class["capex"] == pytest.approx(3.5e6 * 7 / 365 + 2 * 1e6 * 7 / 365 + 3 * 1000.0)
    leased = price(b, {"costs": {**c, "lanes_leased": True, "lease_per_lane_hour": 2.0}, "components": []})
    assert leased["capex"] == pytest.approx(10e6 * 7 / 365 + 2.0 * 1.5 * 168 + 3000.0)


def test_capital_charge_is_the_textbook_equivalent_annual_cost():
    from twin.cost import capital_charge, life_cycle_capital

    # 1 M over 5 years at 10 %: the capital recovery factor 0.263797 of interest tables; with a
    # 10 % salvage the textbook form (P - S) x CRF + S x r gives 237,417.7 + 10,000
    crf = 0.1 * 1.1 ** 5 / (1.1 ** 5 - 1)
    assert crf == pytest.approx(0.26380, abs=5e-6)
    assert capital_charge(1e6, 5, 0.1) == pytest.approx(263_797.48, abs=0.01)
    assert capital_charge(1e6, 5, 0.1, 0.1) == pytest.approx(0.9e6 * crf + 0.1e6 * 0.1)
    # at a zero rate it is straight-line depreciation to the salvage value
    assert capital_charge(7e6, 7, 0.0) == pytest.approx(1e6)
    assert capital_charge(7e6, 7, 0.0, 0.2) == pytest.approx(0.8e6)
    # the annuity's present value is the life-cycle capital: price less discounted salvage
    pv_factor = (1 - 1.1 ** -5) / 0.1
    assert capital_charge(1e6, 5, 0.1, 0.1) * pv_factor == pytest.approx(life_cycle_capital(1e6, 5, 0.1, 0.1))
    assert life_cycle_capital(1e6, 5, 0.1, 0.1) == pytest.approx(1e6 - 1e5 / 1.61051)


def test_capital_priced_by_hand():
    # a week of 2 owned lanes of 7 M (1 of them bought half way through) and a 70 M plant
    b = {"span_s": WEEK, "owned_lane_s": 1.5 * WEEK, "bought_lanes": 1.0, "bought_lane_s": 0.5 * WEEK,
         "deployed_lane_s": 1.5 * WEEK, "deploys": 0, "hired": 0.0, "shed": 0.0, "pools": [], "kwh": 0.0,
         "repairs": 0, "planned": 0, "good": 1.0, "escaped": 0.0, "scrap_units": 0.0, "scrap_work_unit_s": 0.0,
         "reworked": 0.0, "wip_mean": 0.0, "fg_stock_mean": 0.0, "component_stock_means": [], "late_units": 0.0}
    c = {"capex": 70e6, "capex_per_lane": 7e6, "lanes_leased": False, "lease_per_lane_hour": 0.0,
         "depreciation_years": 7.0, "plant_depreciation_years": 20.0, "cost_of_capital": 0.08,
         "salvage_share": 0.1, "module_deploy_cost": 0.0, "labour_per_lane_hour": 0.0, "wage_per_hour": {},
         "overtime_premium": 0.5, "hiring_per_worker": 0.0, "severance_per_worker": 0.0, "energy_per_kwh": 0.0,
         "repair_cost": 0.0, "planned_maintenance_cost": 0.0, "material_per_unit": 0.0, "conversion_per_hour": 0.0,
         "escape_cost": 0.0, "rework_per_unit": 0.0, "holding_per_unit_year": 0.0, "overhead_per_year": 0.0,
         "late_per_unit": 0.0}
    # interest tables: CRF(8 %, 7 y) = 0.192072, CRF(8 %, 20 y) = 0.101852; sinking fund (8 %, 7 y) = 0.112072
    lane_year = 7e6 * 0.192072 - 0.7e6 * 0.112072
    plant_year = 70e6 * 0.101852
    t = price(b, {"costs": c, "components": []})
    assert t["capex"] == pytest.approx((plant_year + 1.5 * lane_year) * 7 / 365, rel=1e-5)  # the tables round to 6 digits
    # charged over its life: the bought lane costs its price less its salvage discounted 7 years
    life = price(b, {"costs": {**c, "bought_capacity": "life"}, "components": []})
    assert life["capex"] == pytest.approx((plant_year + lane_year) * 7 / 365 + 7e6 - 0.7e6 / 1.08 ** 7, rel=1e-5)  # the tables round to 6 digits


def test_price_paths():
    assert is_price_path("costs.capex_per_lane") and is_price_path("costs.wage_per_hour.operators")
    assert is_price_path("components.display.holding_per_unit_year")
    assert not is_price_path("costs.currency") and not is_price_path("stations.smt.servers")
    assert not is_price_path("components.display.reorder_point")
    spec = load(resolve("static-line"))
    with pytest.raises(SpecError, match="not a price"):
        set_price(prices_of(spec), "capacity.lead_time", 3.0)
    with pytest.raises(SpecError, match="capex_per_lane"):
        set_price(prices_of(spec), "costs.capex_per_lane", -1.0)
    with pytest.raises(SpecError, match="no item named"):
        set_price(prices_of(spec), "components.nothing.holding_per_unit_year", 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_reprice_equals_rerun_all_prices_at_once(factory):
    """Every price range of lines/uncertainty.toml that applies to the factory at its high end at
    once: priced again from the nominal run's record, the money KPIs equal a run with the same
    prices set (--set) to 1e-9 relative, and nothing else moves."""
    spec = load(resolve(factory))
    pars = _price_params(factory)
    assert pars, "the uncertainty file has price ranges for every reference factory"
    prices = prices_of(spec)
    overrides = {}
    for p in pars:
        assert p.scale is None  # prices are given as values
        prices = set_price(prices, p.path, p.high)
        overrides[p.path] = p.high
    nominal = _run(spec)
    rerun = _run(spec.with_overrides(overrides))
    again = reprice(nominal.kpis.iloc[0].to_dict(), nominal.cost_basis, prices)
    want = rerun.kpis.iloc[0].to_dict()
    assert nominal.cost_basis["transition"] is not None
    for k in MONEY:
        assert _close(again[k], want[k]), (k, again[k], want[k])
    for k, v in want.items():
        if k not in MONEY and isinstance(v, float):
            assert _close(again[k], v), k
    assert again["unit_cost"] != nominal.kpis.iloc[0]["unit_cost"]


@pytest.mark.slow
@pytest.mark.parametrize("factory", FACTORY_NAMES)
def test_reprice_equals_rerun_each_price(factory):
    """The same, one price path of the uncertainty file at a time, at its low and its high end."""
    spec = load(resolve(factory))
    nominal = _run(spec)
    for p in _price_params(factory):
        for v in (p.low, p.high):
            rerun = _run(spec.with_overrides({p.path: v})).kpis.iloc[0]
            again = reprice(nominal.kpis.iloc[0].to_dict(), nominal.cost_basis,
                            set_price(prices_of(spec), p.path, v))
            for k in MONEY:
                assert _close(again[k], float(rerun[k])), (p.path, v, k)


def test_late_units_are_the_fill_rates_complement():
    # the late units the price multiplies are the units the fill rate counts as not on time
    spec = load(resolve("static-line"))
    s = apply(spec, Scenario.model_validate({"name": "s", "shifts": [{"kind": "step", "at": "1d", "factor": 2.0}]}),
              2.0, 0.5 * WEEK)
    res = run_once(s, s.run.horizon, s.run.warmup, 3)
    o = res.orders
    due = o[(o["due"] >= s.run.warmup) & (o["due"] < s.run.horizon)]
    units = float(due["qty"].sum())
    fill = float(res.kpis.iloc[0]["fill_rate"])
    late = res.cost_basis["window"]["late_units"]
    assert late > 0  # demand doubled: the line cannot keep up
    assert late == pytest.approx((1.0 - fill) * units, rel=1e-12)
    priced = reprice(res.kpis.iloc[0].to_dict(), res.cost_basis,
                     set_price(prices_of(s), "costs.late_per_unit", 100.0))
    assert priced["cost_lateness"] * res.cost_basis["window"]["good"] == pytest.approx(100.0 * late)


def test_a_stored_job_with_a_stale_cost_basis_is_run_again(tmp_path, capsys):
    import json

    from twin.compare import Job, _load_job
    from twin.cost import BASIS_KEYS

    spec = load(resolve("microfactory"))
    res = run_once(spec, 2 * 86400.0, 0.0, 1)
    assert set(res.cost_basis["window"]) == set(BASIS_KEYS)  # the list says what basis() counts
    job = Job("microfactory", "baseline", 0, 1)
    stale = {"factory": "microfactory", "scenario": "baseline", "replication": 0, "seed": 1, "kpis": {}, "daily": {},
             "costs": {}, "stations": {}, "prices": prices_of(spec),
             "cost_basis": {"window": {k: v for k, v in res.cost_basis["window"].items() if k != "late_units"}}}
    path = tmp_path / "j.json"
    path.write_text(json.dumps(stale))
    assert _load_job(path, job) is None
    assert "another version" in capsys.readouterr().err
    stale["cost_basis"] = res.cost_basis
    path.write_text(json.dumps(stale))
    assert _load_job(path, job) is not None


@pytest.mark.slow
def test_lanes_bought_in_the_window_are_counted_from_the_purchases():
    # a 1.5x step makes the microfactory buy modules; each works buy_lead_time after its order
    spec = load(resolve("microfactory"))
    s = apply(spec, Scenario.model_validate({"name": "s", "shifts": [{"kind": "step", "at": "1d", "factor": 1.5}]}),
              8.0, WEEK)
    res = run_once(s, s.run.horizon, s.run.warmup, 3)
    t0, t1, lead = s.run.warmup, s.run.horizon, s.capacity.buy_lead_time
    works = [t + lead for t, kind, _ in res.record.events if kind == "buy" and t0 <= t + lead < t1]
    w = res.cost_basis["window"]
    assert len(works) > 0
    assert w["bought_lanes"] == len(works)
    assert w["bought_lane_s"] == pytest.approx(sum(t1 - t for t in works), rel=1e-12)
    prices = prices_of(s)
    life = reprice(res.kpis.iloc[0].to_dict(), res.cost_basis, set_price(prices, "costs.bought_capacity", "life"))
    window = reprice(res.kpis.iloc[0].to_dict(), res.cost_basis, prices)
    c = s.costs
    from twin.cost import capital_charge, life_cycle_capital
    extra = (len(works) * life_cycle_capital(c.capex_per_lane, c.depreciation_years, c.cost_of_capital, c.salvage_share)
             - capital_charge(c.capex_per_lane, c.depreciation_years, c.cost_of_capital, c.salvage_share)
             * sum(t1 - t for t in works) / (365 * 86400.0))
    assert (life["cost_capex"] - window["cost_capex"]) * w["good"] == pytest.approx(extra, rel=1e-9)
