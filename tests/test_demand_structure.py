"""Issue 26 item 6: demand with structure a learner can use (a weekly profile, dated events
announced ahead), a forecaster that uses it, and planners that build ahead for what they know."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import expo, line

from twin.demand import known_factor, order_stream, volume_factor
from twin.experiment import run_once
from twin.learn import DemandForecaster
from twin.model import Model
from twin.policies.planning import prebuild_units
from twin.spec import SpecError
from twin.units import DAY, WEEK

PROFILE = [1.3, 1.1, 1.0, 1.0, 1.0, 0.8, 0.8]


def _spec(planning: str = "forecast", shifts: list | None = None, profile: list | None = None, **demand):
    d = {"base_per_week": 7000, "order_size": 10, "due": "2d", "shifts": shifts or []}
    if profile:
        d["weekly_profile"] = profile
    d.update(demand)
    # one machine at 1.44x the base rate (7000 a week is 41.7 an hour; one per 60 s is 60 an hour)
    return line([{"name": "m", "process_time": expo(60.0), "buffer": 50}], source={"kind": "orders"},
                demand=d, planning={"policy": planning, "period": "1h" if planning != "campaign" else "1d"},
                run={"horizon": "12w"})


def test_orders_follow_the_weekly_profile():
    spec = _spec(profile=PROFILE)
    orders = order_stream(spec.demand, [p.name for p in spec.products],
                          40 * WEEK, np.random.default_rng(4))
    t = np.array([o[0] for o in orders])
    units = np.bincount((t // DAY).astype(int) % 7, minlength=7) * 10.0 / 40  # per weekday, mean over 40 weeks
    truth = 1000.0 * np.array(PROFILE) / np.mean(PROFILE)
    # units a day are 10 x Poisson(orders): sd of a 40-day mean = 10 sqrt(truth / 10 / 40)
    assert np.all(np.abs(units - truth) < 4 * 10 * np.sqrt(truth / 10 / 40)), (units, truth)


def test_an_announced_event_is_known_from_its_announcement_and_an_unannounced_one_never():
    spec = _spec(shifts=[{"kind": "pulse", "at": "5w", "duration": "1w", "factor": 2.0, "announced": "3w"},
                         {"kind": "pulse", "at": "7w", "duration": "1w", "factor": 1.5}])
    t = np.array([5.5 * WEEK, 7.5 * WEEK])
    assert known_factor(spec.demand, t, now=1.9 * WEEK).tolist() == [1.0, 1.0]
    assert known_factor(spec.demand, t, now=2.0 * WEEK).tolist() == [2.0, 1.0]
    assert volume_factor(spec.demand, t).tolist() == [2.0, 1.5]  # the orders have both


def test_announcing_is_only_for_demand_shifts_and_a_profile_has_seven_days():
    with pytest.raises(SpecError, match="announced"):
        _spec(shifts=[{"kind": "disruption", "at": "1w", "duration": "1d", "target": "m", "announced": "1w"}])
    with pytest.raises(SpecError, match="seven"):
        _spec(profile=[1.0, 2.0])


def _days(profile, weeks, rng, level=1000.0, factors=None):
    w = np.array(profile) / np.mean(profile)
    lam = level * np.resize(w, 7 * weeks) * (factors if factors is not None else 1.0)
    return rng.poisson(lam / 10.0) * 10.0


def test_the_forecaster_recovers_a_weekly_profile_within_its_measured_error():
    rng = np.random.default_rng(8)
    y = _days(PROFILE, 16, rng)
    f, flat = DemandForecaster(prior=1000.0, season=7), DemandForecaster(prior=1000.0)
    for v in y:
        f.observe(v)
        flat.observe(v)
    assert f.seasonal
    truth = 1000.0 * np.array(PROFILE) / np.mean(PROFILE)
    # the next week's forecast per day is within the one-step error the forecaster measured
    assert np.all(np.abs(f.forecast(7) - truth) < f.rmse), (f.forecast(7), truth, f.rmse)
    assert f.mape < flat.mape - 0.03  # the season is worth learning: flat smoothing misses it


def test_an_announced_peak_is_forecast_and_does_not_bend_the_level():
    rng = np.random.default_rng(9)
    weeks = 16
    factors = np.ones(7 * weeks)
    factors[70:80] = 1.6  # an announced ten-day festival in weeks 11-12
    y = _days([1.0] * 7, weeks, rng, factors=factors)
    f = DemandForecaster(prior=1000.0, season=7)
    for v, k in zip(y, factors):
        f.observe(v, known=k)
    # the level learned through the festival is the underlying 1000 a day, within the measured error
    assert np.all(np.abs(f.forecast(7) - 1000.0) < f.rmse)
    # the festival's days were scored against the forecast times their known factor
    assert np.mean(np.abs(f.errors[70:80])) < 2 * f.rmse


def test_prebuild_is_the_largest_cumulative_shortfall():
    # spare 20 a day for two days, then 50 a day short for two: 60 must be on hand now
    assert prebuild_units(np.array([80.0, 80.0, 150.0, 150.0]), 100.0) == 60.0
    assert prebuild_units(np.array([80.0, 90.0]), 100.0) == 0.0


def test_a_launch_announced_ahead_is_prepared_from_its_announcement():
    shift = {"kind": "new_product", "at": "6w", "product": "b", "share": 0.3, "duration": "4w"}
    products = [{"name": "a", "share": 1.0, "route": ["m"]}, {"name": "b", "share": 0.0, "route": ["m"]}]

    def ready(announced, npi):
        s = dict(shift, announced=announced) if announced else shift
        spec = line([{"name": "m", "process_time": 30.0}], source={"kind": "orders"}, products=products,
                    demand={"base_per_week": 1000, "order_size": 10, "shifts": [s]},
                    planning={"policy": "hourly", "npi_lead_time": npi}, run={"horizon": "12w"})
        return Model(spec, 1, 10 * WEEK).available_from[1]

    assert ready(None, "2w") == 8 * WEEK  # unannounced: the set-up starts with the first order
    assert ready("8w", "2w") == 6 * WEEK  # announced 8 weeks ahead: ready on launch day
    assert ready("1w", "2w") == 7 * WEEK  # announced too late for a 2-week set-up: one week late


@pytest.mark.slow  # 10 s each: the default run stays inside its 4 minutes on 2 cores
@pytest.mark.parametrize("planning", ["forecast", "campaign", "backlog"])
def test_an_announced_festival_is_built_ahead_and_served_better_than_a_surprise(planning):
    # a 10-day pulse at 1.8x on a line with 1.44x capacity: it cannot be made as it comes
    pulse = {"kind": "pulse", "at": "6w", "duration": "10d", "factor": 1.8}
    out = {}
    for name, shifts in (("announced", [dict(pulse, announced="3w")]), ("surprise", [pulse])):
        k = [run_once(_spec(planning, shifts), 9 * WEEK, 0.0, seed).kpis.iloc[0] for seed in (1, 2)]
        out[name] = (np.mean([x["event_prebuild_units"] for x in k if not math.isnan(x["event_prebuild_units"])] or [0]),
                     np.mean([x["fill_rate"] for x in k]))
    # the 10 days ask 18,000 units, the machine makes 14,400 in them (and some more in the two
    # days orders may wait): about 2,500-3,600 must be on hand as it starts (seed 1: 2,590 and 2,795)
    assert out["announced"][0] > 2000, out
    assert out["announced"][1] > out["surprise"][1] + 0.02, out
