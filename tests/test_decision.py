"""The decision map's arithmetic against independent truth: break-evens computed by hand, the
binomial table for the intervals, and sensitivity and noise measures on series whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from twin.decision import breakevens, iso_cost
from twin.stats import clopper_pearson, effective_n, noise_share, prcc
from twin.uncertainty import UncertaintyFile

YEAR = 365 * 86400.0
ZERO_COSTS = {"currency": "USD", "capex": 0.0, "capex_per_lane": 0.0, "lanes_leased": False, "lease_per_lane_hour": 0.0,
              "hiring_per_worker": 0.0, "severance_per_worker": 0.0, "depreciation_years": 1.0,
              "module_deploy_cost": 0.0, "wage_per_hour": {}, "overtime_premium": 0.5, "energy_per_kwh": 0.0,
              "repair_cost": 0.0, "planned_maintenance_cost": 0.0, "material_per_unit": 0.0,
              "conversion_per_hour": 0.0, "rework_per_unit": 0.0, "escape_cost": 0.0, "holding_per_unit_year": 0.0,
              "overhead_per_year": 0.0, "labour_per_lane_hour": 0.0, "late_per_unit": 0.0}


def _basis(**kw):
    b = {"span_s": YEAR, "owned_lane_s": 0.0, "deployed_lane_s": 0.0, "deploys": 0, "hired": 0.0, "shed": 0.0,
         "pools": [], "kwh": 0.0, "repairs": 0, "planned": 0, "good": 1000.0, "escaped": 0.0, "scrap_units": 0.0,
         "scrap_work_unit_s": 0.0, "reworked": 0.0, "wip_mean": 0.0, "fg_stock_mean": 0.0,
         "component_stock_means": [], "late_units": 0.0}
    b.update(kw)
    return b


def _job(factory, rep, basis, **costs):
    return {"factory": factory, "scenario": "baseline", "replication": rep,
            "kpis": {"unit_cost": 0.0, "conversion_cost": 0.0, "cost_material": 0.0},
            "cost_basis": {"window": basis}, "prices": {"costs": {**ZERO_COSTS, **costs}, "components": []}}


def _pars(*rows):
    return UncertaintyFile.model_validate({"parameter": [{"reason": "test", **r} for r in rows]})


# A owns one lane for the year (1,000 good units): capex_per_lane / 1,000 a unit, 50 at 50 k.
# B pays one worker 10 an hour around the clock: 87,600 a year, 87.60 a unit.
# A is cheaper while capex_per_lane < 87,600; with the depreciation period d, while 50 / d < 87.6,
# i.e. d > 50 / 87.6 = 0.5708 years.
JOBS = [j for r in (0, 1) for j in (
    _job("A", r, _basis(owned_lane_s=YEAR), capex_per_lane=50_000.0),
    _job("B", r, _basis(pools=[["crew", 1.0, YEAR, 0.0]]), wage_per_hour={"crew": 10.0}))]


def test_breakeven_of_a_linear_price_by_hand():
    pars = _pars({"name": "lane capex", "factory": "A", "path": "costs.capex_per_lane", "low": 20_000, "high": 120_000},
                 {"name": "wage", "factory": "B", "path": "costs.wage_per_hour.crew", "low": 2.0, "high": 8.0})
    be = breakevens(JOBS, pars)["baseline"]["conversion_cost"]["A vs B"]
    capex = be["A:costs.capex_per_lane"]
    assert capex["value"] == pytest.approx(87_600.0, rel=1e-12)
    assert capex["nominal"] == 50_000.0 and capex["inside_range"] and capex["cheaper_above"] == "B"
    assert capex["cheaper_at_nominal"] == "A" and capex["diff_at_nominal"] == pytest.approx(50.0 - 87.6)
    assert capex["swing"] == pytest.approx((120_000 - 20_000) / 1000.0)  # the exact partial effect
    wage = be["B:costs.wage_per_hour.crew"]  # B matches A at 50 a unit: 50,000 / 8,760 h an hour
    assert wage["value"] == pytest.approx(50_000 / 8760.0, rel=1e-12) and wage["inside_range"]
    assert wage["cheaper_above"] == "A"


def test_breakeven_of_a_depreciation_period_is_found_by_root_search():
    pars = _pars({"name": "life", "factory": "A", "path": "costs.depreciation_years", "low": 0.5, "high": 3.0})
    row = breakevens(JOBS, pars)["baseline"]["conversion_cost"]["A vs B"]["A:costs.depreciation_years"]
    assert row["value"] == pytest.approx(50.0 / 87.6, rel=1e-9) and row["inside_range"]
    assert row["cheaper_above"] == "A"


def test_no_breakeven_when_no_price_flips_the_ranking():
    pars = _pars({"name": "B energy", "factory": "B", "path": "costs.energy_per_kwh", "low": 0.0, "high": 1.0})
    row = breakevens(JOBS, pars)["baseline"]["conversion_cost"]["A vs B"]["B:costs.energy_per_kwh"]
    assert row["value"] is None and not row["inside_range"]  # B uses no energy: nothing to flip


def test_iso_cost_map_of_two_prices():
    pars = _pars({"name": "lane capex", "factory": "A", "path": "costs.capex_per_lane", "low": 0.0, "high": 200_000},
                 {"name": "wage", "factory": "B", "path": "costs.wage_per_hour.crew", "low": 0.0, "high": 20.0})
    px, py = pars.parameter
    iso = iso_cost(JOBS, "baseline", px, py, n=21)
    # A is cheapest where capex / 1000 < wage * 8.76, i.e. below the line capex = 8,760 × wage
    for i, y in enumerate(iso["y"]):
        for j, x in enumerate(iso["x"]):
            if abs(x / 1000 - y * 8.76) > 1.0:
                assert iso["winner"][i][j] == ("A" if x / 1000 < y * 8.76 else "B"), (x, y)


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (19, 20, 0.7513, 0.9987),  # exact binomial 95 % limits from the standard table
    (0, 10, 0.0, 0.3085),
    (5, 10, 0.1871, 0.8129),
    (10, 10, 0.6915, 1.0),
])
def test_clopper_pearson_matches_the_binomial_table(k, n, lo, hi):
    a, b = clopper_pearson(k, n)
    assert a == pytest.approx(lo, abs=1e-4) and b == pytest.approx(hi, abs=1e-4)


def test_effective_sample_size_counts_a_world_once_when_its_draws_agree():
    same = np.repeat(np.array([[1.0], [0.0], [1.0], [1.0]]), 50, axis=1)  # 4 worlds, 50 draws that agree
    assert effective_n(same) == pytest.approx(4.0)
    rng = np.random.default_rng(3)
    indep = (rng.random((40, 50)) < 0.3).astype(float)  # no world effect: ~all 2,000 count
    assert effective_n(indep) > 1500


def test_noise_share_of_a_known_decomposition():
    rng = np.random.default_rng(7)
    worlds = rng.normal(0.0, 2.0, size=(400, 1))  # parameter variance 4
    d = worlds + rng.normal(0.0, 2.0, size=(400, 4))  # noise variance 4, 4 replications: 1 in the means
    assert noise_share(d) == pytest.approx(1.0 / 5.0, abs=0.04)  # 1 / (4 + 1)
    assert noise_share(np.zeros((5, 3))) == 0.0


def test_prcc_finds_the_monotone_driver_and_not_the_bystander():
    rng = np.random.default_rng(11)
    x = rng.random((300, 3))
    y = np.exp(3 * x[:, 0]) - 2 * x[:, 1] ** 3 + 0.01 * rng.standard_normal(300)
    r = prcc(x, y)
    assert r[0] > 0.95 and r[1] < -0.5 and abs(r[2]) < 0.15
    assert np.isnan(prcc(np.column_stack([x[:, 0], np.ones(300)]), y)[1])  # a constant column


# --------------------------------------------------------------------------- statistics that say what they mean
def test_kaplan_meier_median_by_hand():
    from twin.stats import kaplan_meier, share_by

    # 1, 2+, 3, 4+, 5: S(1) = 4/5, S(3) = 4/5 × 2/3 = 8/15, S(5) = 0, so the median is 5
    km = kaplan_meier([1, 2, 3, 4, 5], [True, False, True, False, True])
    assert km["median"] == 5.0 and km["events"] == 3
    assert share_by(km, 3.5) == pytest.approx(1 - 8 / 15)
    # no censoring: the ordinary median (the first time at which half have had the event)
    assert kaplan_meier([4, 1, 3, 2, 5], [True] * 5)["median"] == 3.0
    # fewer than half known to have had it: no median, and an interval the data do not close
    none = kaplan_meier([10, 10, 10, 2], [False, False, False, True])
    assert np.isnan(none["median"]) and none["ci"][1] == float("inf")


def test_kaplan_meier_recovers_a_known_exponential_median_under_censoring():
    from twin.stats import kaplan_meier

    rng = np.random.default_rng(5)
    t = rng.exponential(10.0, 4000)  # median 10 ln 2 = 6.93; this sample's own median 6.55
    c = rng.uniform(0, 30, 4000)  # independent censoring hides 21 % of the times
    km = kaplan_meier(np.minimum(t, c), t <= c)
    # the censored estimate finds what the uncensored sample shows, within a few of its standard
    # errors (1 / (2 f(m) sqrt(n)) ~ 0.16 here)
    assert km["median"] == pytest.approx(float(np.median(t)), abs=0.3)
    assert km["ci"][0] < float(np.median(t)) < km["ci"][1]
    assert km["median"] == pytest.approx(10 * np.log(2), rel=0.1)


def test_two_one_sided_tests_and_a_zero_variance_difference():
    from twin.stats import paired_diff, tost

    assert tost([0.001, -0.002, 0.0015, 0.0], 0.01)["equivalent"]
    assert not tost([0.001, 0.05, -0.04], 0.01)["equivalent"]  # too noisy to show it
    assert not tost([0.02, 0.02], 0.01)["equivalent"]  # outside the zone
    # all replications give the same non-zero difference: untestable, not significant by fiat
    d = paired_diff([3.0, 4.0], [2.0, 3.0])
    assert d["zero_variance"] and np.isnan(d["p"])
    assert paired_diff([3.0, 4.0], [3.0, 4.0])["p"] == 1.0


def test_one_holm_family_without_duplicate_measures():
    import pandas as pd

    from twin.compare import paired

    # conversion cost = unit cost − the same material cost: the same differences, one test
    rows = [{"factory": f, "scenario": "s", "replication": r, "unit_cost": 100 + v, "conversion_cost": v,
             "fill_rate": 0.9 + 0.01 * r}
            for f, vals in (("a", [1.0, 2.0, 1.5]), ("b", [3.0, 3.9, 3.6])) for r, v in enumerate(vals)]
    p = paired(pd.DataFrame(rows))["s"]
    u, c, f = p["unit_cost"]["a vs b"], p["conversion_cost"]["a vs b"], p["fill_rate"]["a vs b"]
    assert u["holm_family"] == 2 and f["p"] == 1.0  # cost once, fill rate (equal: p = 1) once
    assert u["p_holm"] == c["p_holm"] and u["ci95_holm"] == c["ci95_holm"]
    assert c["p_holm"] == pytest.approx(min(1.0, 2 * c["p"]))  # the smaller of two p-values, times 2


def test_the_quick_profile_watches_every_shift_to_its_end_and_after():
    from twin.commands import quick_weeks

    assert quick_weeks(["baseline"]) == 10.0
    assert quick_weeks(["baseline", "surge"]) == 14.0  # the surge runs weeks 3-11, then 3 weeks
    assert quick_weeks(["slump"]) == 11.0  # a step at week 8 lasts: 3 weeks after it
