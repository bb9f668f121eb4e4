"""Issue 26 items 1-2: machines wear along a degradation path the plant reads with a sensor,
and predictive maintenance learns from what the plant logged, never from the drawn life."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import expo, line
from scipy import stats

import twin
from twin.experiment import run_once
from twin.learn import ConditionModel, age_replacement_interval
from twin.model import Model
from twin.policies.registry import register
from twin.spec import SpecError
from twin.wear import FutureReading, HiddenValue, MachineView, ObservedLife, WearLaw, plant_history

H = 3600.0
INF = float("inf")


def _law(**kw) -> WearLaw:
    base = dict(wear_life=100 * H, wear_cv=0.4, threshold_cv=0.0, shock_mttf=INF, reading_every=H, reading_noise=0.0)
    base.update(kw)
    return WearLaw(**base)


def test_wear_lives_follow_the_wiener_first_passage_law_at_every_reading():
    # a Wiener path with drift 1/100 h reaching level 1: inverse Gaussian with mean 100 h and
    # cv 0.4 (shape = mean / cv**2). The bridge correction makes the law exact at the reading
    # ages; 4,000 lives: the DKW band at 1 - 0.001 is sqrt(ln(2000) / 8000) = 0.031
    law, n = _law(), 4000
    rng = np.random.default_rng(11)
    lives = np.array([law.life(rng)[0] for _ in range(n)])
    mean, shape = 100 * H, 100 * H / 0.4 ** 2
    ig = stats.invgauss(mu=mean / shape, scale=shape)
    ages = H * np.arange(1, 400)
    gap = np.abs(np.searchsorted(np.sort(lives), ages, side="right") / n - ig.cdf(ages))
    assert gap.max() < 0.031, gap.max()
    # without the bridge (crossings only seen at readings) the lives would be late by about
    # 0.5826 sigma sqrt(step) in level (Siegmund's correction): 1.9 h here; the drawn ones are not
    assert abs(lives.mean() - mean) < 3 * lives.std() / math.sqrt(n)


def test_shock_failures_are_exponential_and_readings_say_nothing_of_them():
    law = _law(wear_life=1e6 * H, shock_mttf=50 * H, reading_noise=0.05)
    rng = np.random.default_rng(3)
    draws = [law.life(rng) for _ in range(3000)]
    lives = np.array([d[0] for d in draws])
    assert stats.kstest(lives / H, stats.expon(scale=50).cdf).pvalue > 0.001
    # the reading at 5 h of the lives that last longer carries no trace of when they end
    # (the old signal, u * age / life, was a readout of it: correlation about -0.9)
    r5 = np.array([d[1][4] for d in draws if len(d[1]) >= 5])
    l5 = np.array([d[0] for d in draws if len(d[1]) >= 5])
    assert abs(stats.pearsonr(r5, l5)[0]) < 4 / math.sqrt(len(r5))


def test_readings_are_taken_before_the_failure_only_and_the_mean_life_is_the_quadrature():
    law = _law(threshold_cv=0.2, shock_mttf=300 * H, reading_noise=0.05)
    rng = np.random.default_rng(5)
    draws = [law.life(rng) for _ in range(3000)]
    assert all(len(r) == math.ceil(life / H) - 1 for life, r in draws)
    lives = np.array([d[0] for d in draws])
    assert abs(lives.mean() - law.mean_life) < 3 * lives.std() / math.sqrt(len(lives))


def test_a_machines_drawn_life_is_hidden_from_every_policy_but_the_oracle():
    view = MachineView(np.array([0.1, 0.2]), H)
    with pytest.raises(HiddenValue):
        _ = view.life
    assert not hasattr(view, "life") and not hasattr(view, "_truth")
    assert view.reading(2) == 0.2 and view.reading(3) is None  # failed before its third hour
    assert MachineView(None, H, life=5.0).life == 5.0
    with pytest.raises(HiddenValue, match="no condition signal"):
        MachineView(None, H).reading(1)


def _pdm(**maint) -> dict:
    m = {"policy": "predictive", "history_weeks": 8, "horizon": "8h", "duration": "30min"}
    m.update(maint)
    return {"name": "m", "process_time": 1800.0,
            "failures": {"degradation": {"wear_life": "100h", "wear_cv": 0.3, "threshold_cv": 0.05,
                                         "reading_noise": 0.02}, "ttr": "2h"},
            "maintenance": m}


@register("maintenance", "test_peeks_ahead")
class _PeeksAhead:
    """Reads the condition two readings ahead and plans maintenance before them (not allowed)."""

    def __init__(self, spec, rng):
        pass

    def plan(self, view):
        k = 1
        while (r := view.reading(k + 2)) is not None and r < 0.9:
            k += 1
        return k * view.every


def test_a_policy_that_reads_a_reading_the_plant_has_not_logged_stops_the_run():
    spec = line([_pdm(policy="test_peeks_ahead")])
    with pytest.raises(FutureReading, match="test_peeks_ahead|_PeeksAhead"):
        run_once(spec, 200 * H, 0.0, 1)


@register("maintenance", "test_reads_life")
class _ReadsLife:
    def __init__(self, spec, rng):
        pass

    def plan(self, view):
        return view.life * 0.9


def test_a_policy_that_asks_for_the_drawn_life_fails():
    spec = line([_pdm(policy="test_reads_life")])
    with pytest.raises(HiddenValue):
        run_once(spec, 200 * H, 0.0, 1)


def test_the_learned_threshold_catches_wear_when_readings_are_exact_and_never_alarms_on_shocks():
    # identical machines failing at level 1 read without noise: alarm just below 1, nearly every failure caught
    law = _law(wear_cv=0.3)
    rng = np.random.default_rng(1)
    m = ConditionModel(H)
    m.train(plant_history(law.life, 20, 2000 * H, rng, H), 2 * H, 0.5 * H)
    assert 0.8 < m.threshold < 1.0
    caught = [m.alarm_age(MachineView(r, H)) < life for life, r in (law.life(rng) for _ in range(500))]
    assert np.mean(caught) > 0.9
    # shocks only (memoryless lives): no reading helps; never alarming is the least stop time
    shocks = _law(wear_life=1e6 * H, shock_mttf=50 * H, reading_noise=0.05)
    s = ConditionModel(H)
    s.train(plant_history(shocks.life, 20, 2000 * H, rng, H), 2 * H, 0.5 * H)
    assert s.threshold == INF


def test_a_life_cut_short_by_an_alarm_scores_every_lower_threshold_as_its_whole_life_would():
    # the censoring rule: lives stopped by an alarm at h say exactly what any threshold up to h would have done
    law = _law(reading_noise=0.03)
    rng = np.random.default_rng(2)
    hist = plant_history(law.life, 10, 1000 * H, rng, H)
    full, cut = ConditionModel(H), ConditionModel(H)
    full.train(hist, 2 * H, 0.5 * H)
    cut.train(hist, 2 * H, 0.5 * H)
    h_life = float(np.quantile(full.grid[:-1], 0.6))
    for _ in range(200):
        life, r = law.life(rng)
        full.add(ObservedLife(r, life, True, h_life), 2 * H, 0.5 * H)
        hit = np.flatnonzero(r >= h_life)
        if len(hit):  # stopped at its alarm: readings to it, not failed
            age = (hit[0] + 1) * H
            cut.add(ObservedLife(r[:hit[0] + 1], age, False, h_life), 2 * H, 0.5 * H)
        else:
            cut.add(ObservedLife(r, life, True, h_life), 2 * H, 0.5 * H)
    low = full.grid <= h_life
    assert np.array_equal(full._stop[low], cut._stop[low]) and np.allclose(full._up[low], cut._up[low])


def test_predictive_maintenance_learns_from_its_history_and_from_the_run():
    spec = line([_pdm()])
    model = Model(spec, 3, 3000 * H)
    rel = model.stations["m"].reliability
    pol = rel.policy
    before = pol.model.lives
    assert before == len(rel.history) > 0 and math.isfinite(pol.threshold)
    model.run(3000 * H)
    assert pol.model.lives > before + 10  # every life of the run joined the data
    # and the run reports how much data the threshold had: the history and every stop
    from twin.results import maintenance_outcomes
    assert maintenance_outcomes(model.rec, 0.0, 3000 * H)["m"]["pdm_lives_learned"] == pol.model.lives


def test_measured_recall_falls_when_the_readings_get_noisier():
    recall = []
    for noise in (0.01, 0.15, 0.6):
        d = _pdm()
        d["failures"]["degradation"]["reading_noise"] = noise
        res = run_once(line([d]), 20000 * H, 0.0, 7)
        st = res.stations.loc["m"]
        recall.append(st["pdm_recall"])
        assert 0.0 <= st["pdm_precision"] <= 1.0 and st["pdm_lead_h"] <= 8.0
    assert recall[0] > recall[1] + 0.05 and recall[1] > recall[2], recall
    assert recall[0] > 0.7


def test_age_replacement_starts_from_the_optimum_its_history_shows():
    shape, scale, repair, pm = 2.5, 20 * H, 4 * H, 1 * H
    spec = line([{"name": "m", "process_time": expo(60.0),
                  "failures": {"ttf": {"dist": "weibull", "shape": shape, "scale": scale},
                               "ttr": {"dist": "constant", "value": repair}},
                  "maintenance": {"policy": "age_replacement", "history_weeks": 52,
                                  "duration": {"dist": "constant", "value": pm}}}])
    pol = Model(spec, 4, H).stations["m"].reliability.policy
    # 52 weeks of one machine run to failure: ~490 lives; the cost curve is flat near its minimum
    assert len(pol.ages) > 400 and pol.fits == 1
    assert pol.interval == pytest.approx(age_replacement_interval(shape, scale, repair, pm), rel=0.2)


@pytest.mark.parametrize("policy", ["reactive", "preventive", "age_replacement", "predictive", "oracle"])
def test_every_maintenance_policy_runs_on_a_wearing_station(policy):
    # the PdM ablation swaps predictive for age_replacement on the dark factory's wearing
    # stations; a learning policy gets the history whatever its failures' law
    extra = {"preventive": {"interval": "50h"}, "oracle": {"recall": 0.9, "lead_time": "4h"}}.get(policy, {})
    spec = line([_pdm(policy=policy, **extra)])
    res = run_once(spec, 2000 * H, 0.0, 5)
    assert res.kpis["good_units"].iloc[0] > 0 and res.stations.loc["m", "maintenance"] > 0 or policy == "reactive"
    rel = Model(spec, 5, H).stations["m"].reliability
    learns = hasattr(rel.policy, "learn")
    assert (len(rel.history) > 0) == learns


@pytest.mark.parametrize("change, field", [
    (lambda d: d["maintenance"].update(signal_noise=0.1), "signal_noise"),
    (lambda d: d["failures"].update(ttf="100h"), "ttf"),
    (lambda d: d["failures"].update(basis="calendar"), "operating"),
    (lambda d: d["maintenance"].update(history_weeks=0), "history_weeks"),
    (lambda d: d["failures"].update(degradation=None, ttf="100h"), "condition"),
])
def test_a_wear_law_and_its_policy_refuse_what_does_not_fit(change, field):
    d = _pdm()
    change(d)
    if d["failures"].get("degradation") is None:
        d["failures"].pop("degradation")
    with pytest.raises(SpecError, match=field):
        line([d])


def test_the_dark_factorys_condition_monitored_stations_wear_and_learn():
    spec = twin.load("dark-factory")
    pdm = [s for s in spec.stations if s.maintenance is not None and s.maintenance.policy == "predictive"]
    assert len(pdm) == 4 and all(s.failures.degradation is not None for s in pdm)
