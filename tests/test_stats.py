"""Honest statistics: paired differences, Holm, selection of the best, MSER warm-up, Latin
hypercube draws and win probabilities, each against numbers worked out by hand or a law."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats
from helpers import expo, line

import twin
from twin.compare import paired
from twin.report import reading
from twin.stats import holm, latin_hypercube, mean_ci, mser, paired_diff, select_best, win_probabilities

# a small table: five replications of two designs on the same seeds
A = [50.0, 46.0, 52.0, 44.0, 49.0]
B = [48.8, 45.2, 51.0, 42.9, 48.1]  # A - B = 1.2, 0.8, 1.0, 1.1, 0.9


def test_paired_difference_is_significant_where_the_separate_intervals_overlap():
    # by hand: differences 1.2, 0.8, 1.0, 1.1, 0.9 -> mean 1.0; deviations .2 -.2 0 .1 -.1 -> s^2 = 0.1/4
    # = 0.025, s = 0.15811; se = s / sqrt 5 = 0.070711; t_{0.975,4} = 2.776 -> half-width 0.19629
    d = paired_diff(A, B)
    assert d["diff_mean"] == pytest.approx(1.0)
    assert d["ci95"] == pytest.approx(2.776 * math.sqrt(0.025 / 5), rel=1e-6)
    assert d["n"] == 5 and d["p"] < 0.001  # t = 14.1 on 4 degrees of freedom
    # the separate intervals: A 48.2 +- 3.96, B 47.2 +- 3.9: they overlap, yet the loss is real
    (ma, ha), (mb, hb) = mean_ci(A), mean_ci(B)
    assert abs(ma - mb) < ha + hb


def test_holm_adjusts_step_down():
    # sorted p: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04 -> kept monotone at 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([float("nan"), 0.2])[0]) and holm([float("nan"), 0.2])[1] == pytest.approx(0.2)


def test_the_reading_uses_the_paired_difference():
    runs = pd.DataFrame([{"factory": f, "scenario": "s", "replication": r, "unit_cost": v}
                         for f, vals in (("static-line", A), ("dark-factory", B)) for r, v in enumerate(vals)])
    pairs = paired(runs)
    summ = {"s": {f: {"unit_cost": dict(zip(("mean", "ci95"), mean_ci(v)))}
                  for f, v in (("static-line", A), ("dark-factory", B))}}
    text = reading(summ, {"s": "a scenario"}, paired=pairs)
    line_ = next(t for t in text if t.startswith("- unit cost"))
    assert line_.startswith("- unit cost: dark-factory is $1.00 ± $0.20 cheaper than static-line")
    # without the pairing the same table reads as no significant difference
    assert any("no significant difference" in t for t in reading(summ, {"s": "a scenario"}))


def test_selection_needs_replications_by_the_clark_yang_formula():
    sel = select_best({"a": A, "b": B}, "low", delta=0.1)
    # k = 2: t_{0.95,4} = 2.1318; S = 0.15811 -> n >= (2.1318 x 0.15811 / 0.1)^2 = 11.36 -> 12
    assert sel["best"] == "b" and sel["n_needed"] == 12 and not sel["met"]
    sel = select_best({"a": A, "b": B}, "low", delta=0.5)
    assert sel["n_needed"] == max(2, math.ceil((2.1318 * math.sqrt(0.025) / 0.5) ** 2)) and sel["met"]  # n0 >= 2


@pytest.mark.slow
def test_selection_picks_the_best_buffer_allocation_of_a_line():
    # two allocations of 2 buffer places on a 3-station exponential line, 12 replications on
    # common random numbers: putting both in front of the middle station is not better
    base = [{"name": n, "process_time": expo(1.0)} for n in ("a", "b", "c")]
    samples = {}
    for label, bufs in (("1-1", (1, 1)), ("2-0", (2, 0))):
        st = [dict(s) for s in base]
        st[1]["buffer"], st[2]["buffer"] = bufs
        res = twin.simulate(line(st), horizon=20_000, replications=12, seed=4)
        samples[label] = res.kpis["throughput_per_hour"].to_numpy()
    sel = select_best(samples, "high", delta=20.0)
    assert sel["best"] == "1-1"


def test_mser_finds_a_known_step():
    rng = np.random.default_rng(7)
    for start in (100, 400, 1000):
        y = np.concatenate([8 + rng.normal(0, 1, start), rng.normal(0, 1, 4000)])
        d = mser(y)
        assert start - 5 <= d <= start + 25  # all of the step cut, at most five batches of noise besides


def test_mser_finds_the_transient_of_an_mm1_started_empty():
    # M/M/1 at rho = 0.9 starts empty; the hourly WIP climbs towards its mean of 9 for a few
    # relaxation times (about 1 / (mu (1 - sqrt rho))^2 ~ 400 s at mu = 1/s), then fluctuates
    spec = line([{"name": "m", "process_time": expo(1.0)}], source={"kind": "poisson", "rate_per_hour": 0.9 * 3600})
    res = twin.simulate(spec, horizon=400_000, replications=1, seed=2)
    ts = res.timeseries
    d = mser(ts["wip"].to_numpy())
    assert 0 <= d <= 40  # hours; the transient is over well within the first tenth of the run


def test_latin_hypercube_hits_every_stratum_once_and_repeats_from_its_seed():
    x = latin_hypercube(12, 4, seed=3)
    assert x.shape == (12, 4)
    for j in range(4):
        assert sorted((x[:, j] * 12).astype(int)) == list(range(12))
    assert np.array_equal(x, latin_hypercube(12, 4, seed=3)) and not np.array_equal(x, latin_hypercube(12, 4, 4))


def test_win_probabilities_sum_to_one_and_split_ties():
    worlds = [{"a": 1.0, "b": 2.0, "c": 3.0}, {"a": 2.0, "b": 2.0, "c": 3.0}, {"a": 3.0, "b": 1.0, "c": float("nan")},
              {"a": 5.0, "b": 5.0, "c": 5.0}]
    p = win_probabilities(worlds, "low")
    # worlds: a; a/b tie; b (c cannot win with NaN); a/b/c three-way tie
    assert p == pytest.approx({"a": (1 + 0.5 + 0 + 1 / 3) / 4, "b": (0 + 0.5 + 1 + 1 / 3) / 4, "c": (1 / 3) / 4})
    assert sum(p.values()) == pytest.approx(1.0)


# --------------------------------------------------------------------------- parameter uncertainty
UNC = """
[[parameter]]
name = "cell capex"
factory = "microfactory"
path = "costs.capex_per_lane"
low = 0.0
high = 12e6
reason = "a range wide enough to decide the cost ranking by itself (test)"

[[parameter]]
name = "electricity price"
factory = "*"
path = "costs.energy_per_kwh"
low = 0.08
high = 0.10
reason = "a narrow shared range (test)"

[[parameter]]
name = "dark cycle times"
factory = "dark-factory"
path = "stations.*.process_time.mean"
scale = [0.98, 1.02]
reason = "a narrow factor range (test)"
"""


@pytest.mark.slow
def test_uncertainty_draws_report_win_probabilities_and_the_decisive_parameter(tmp_path, capsys):
    from twin.cli import main

    (tmp_path / "u.toml").write_text(UNC)
    out = tmp_path / "out"
    rc = main(["compare", "--factories", "dark-factory", "microfactory", "--scenarios", "baseline", "--replications",
               "2", "--weeks", "1", "--warmup", "1d", "--jobs", "1", "--uncertainty", "6", "--uncertainty-file",
               str(tmp_path / "u.toml"), "--price-draws", "40", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    import json

    k = json.loads((out / "kpis.json").read_text())
    assert k["uncertainty_meta"]["combinations"] == 6 * 40
    for measure, probs in k["uncertainty"]["baseline"].items():
        assert sum(probs.values()) == pytest.approx(1.0), measure
        for f, (lo, hi) in k["uncertainty_ci"]["baseline"][measure].items():
            assert lo <= probs[f] <= hi, (measure, f)
    # a cell capex from 0 to 12 M USD (a price: drawn by re-pricing) decides the cost ranking: both
    # factories win somewhere, and it is the parameter the difference hangs on (PRCC near -1 or +1)
    p = k["uncertainty"]["baseline"]["conversion_cost"]
    assert 0 < p["microfactory"] < 1
    rows = k["tornado"]["baseline"]["conversion_cost"]["dark-factory vs microfactory"]
    assert rows[0]["parameter"] == "cell capex" and abs(rows[0]["prcc"]) > 0.9 and rows[0]["price"]
    # the price draws of a world share its runs: the effective sample size lies between the worlds
    # and the combinations
    assert 6 <= k["uncertainty_effective_n"]["baseline"]["conversion_cost"]["microfactory"] <= 240
    table = pd.read_csv(out / "uncertainty.csv")
    assert sorted(table["draw"].unique()) == list(range(6))
    factor = table.groupby("draw")["dark cycle times"].first().to_numpy()
    assert sorted((factor - 0.98) / 0.04 * 6 // 1) == list(range(6))  # one world per stratum
    assert "How sure is the ranking" in (out / "report.md").read_text()


def test_uncertainty_paths_that_match_nothing_are_refused(tmp_path, capsys):
    from twin.cli import main

    (tmp_path / "u.toml").write_text(UNC.replace("costs.capex_per_lane", "costs.capex_per_lame"))
    rc = main(["compare", "--factories", "dark-factory", "microfactory", "--scenarios", "baseline",
               "--uncertainty", "3", "--uncertainty-file", str(tmp_path / "u.toml"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "parameter.0 (cell capex)" in err and "capex_per_lame" in err
    assert not (tmp_path / "o").exists()


def test_the_reference_ranges_cover_every_factory_and_load():
    from twin import uncertainty

    pars, _ = uncertainty.load()
    facs = {p.factory for p in pars.parameter}
    assert {"static-line", "dark-factory", "microfactory", "*"} <= facs
    names = " ".join(p.path for p in pars.parameter)
    for must in ("capex_per_lane", "wage_per_hour", "process_time", "npi_lead_time", "failures.ttf"):
        assert must in names


def test_the_verdict_names_a_winner_only_where_the_paired_difference_is_significant():
    from twin.report import verdict

    rows = [{"factory": f, "scenario": sc, "replication": r, "conversion_cost": v + (0 if sc == "s1" else 0.0),
             "fill_rate": 0.99}
            for sc in ("s1", "s2") for f, vals in (("static-line", A), ("dark-factory", B)) for r, v in enumerate(vals)]
    runs = pd.DataFrame(rows)
    summ = {sc: {f: {"conversion_cost": dict(zip(("mean", "ci95"), mean_ci(v))),
                     "fill_rate": {"mean": 0.99, "ci95": 0.0}} for f, v in (("static-line", A), ("dark-factory", B))}
            for sc in ("s1", "s2")}
    v = verdict(summ, paired(runs), replications=5)
    cell = v["matrix"]["s1"]["conversion_cost"]
    # the margin is the interval at the level Holm tested it: the smallest of 4 p-values (two cost
    # and two fill-rate comparisons) at 0.05 / 4; the 95 % half-width is $0.20 = t(0.975, 4) se
    se = 0.20 / 2.776
    half = scipy_stats.t.ppf(1 - 0.05 / 4 / 2, 4) * se
    assert cell["winner"] == "dark-factory"
    assert cell["margin"].startswith(f"$1.00 ± ${half:.2f} cheaper than static-line (Holm-level interval)")
    # equal fill rates in every replication: inside the indifference zone, shown by the two one-sided tests
    assert v["matrix"]["s1"]["fill_rate"]["winner"] == "equivalent"
    assert "conversion cost/unit: dark-factory best in 2 of 2 scenarios." in v["lines"]
    assert not any(ln.startswith("Caution") for ln in v["lines"])
    assert any(ln.startswith("Caution: 2 replications") for ln in verdict(summ, paired(runs), 2)["lines"])


def test_shifting_bottleneck_by_the_active_period_method_on_a_hand_made_timeline():
    from twin.bottleneck import shifting_bottleneck

    # station a is active 0-6 and 8-10, station b 4-9: at each moment the longest current active
    # period leads. a's 6 s period leads 0-6 (b's 5 s period overlaps it 4-6: shifting), b leads
    # 6-9 (overlap with a's next period 8-9: shifting), a's 2 s period leads 9-10.
    rows = [("a", 0, "busy", 0, 6), ("a", 0, "idle", 6, 8), ("a", 0, "busy", 8, 10),
            ("b", 0, "idle", 0, 4), ("b", 0, "busy", 4, 7), ("b", 0, "down", 7, 9), ("b", 0, "blocked", 9, 10)]
    states = pd.DataFrame(rows, columns=["station", "server", "state", "start", "end"])
    sb = shifting_bottleneck(states, 0.0, 10.0)
    # the hand-overs: a (0-6) to b (4-9) overlap 4-6, b to a (8-10) overlap 8-9; each overlap is a
    # shifting bottleneck for both. a rules 0-6 and 9-10: sole 0-4 and 9-10 = 5 s, shifting 2 + 1 = 3 s;
    # b rules 6-9: sole 6-8 = 2 s, shifting 3 s
    assert sb.loc["a", "sole"] == pytest.approx(0.5) and sb.loc["a", "shifting"] == pytest.approx(0.3)
    assert sb.loc["b", "sole"] == pytest.approx(0.2) and sb.loc["b", "shifting"] == pytest.approx(0.3)


def test_how_sure_the_ranking_is_covers_every_verdict_measure():
    # the report's uncertainty reading speaks of each measure the verdict ranks (lead time included)
    from twin.compare_report import uncertainty_lines
    from twin.report import VERDICT_MEASURES

    probs = {k: {"dark-factory": 0.25, "microfactory": 0.75} for k in VERDICT_MEASURES}
    unc = {"meta": {"draws": 4}, "probabilities": {"baseline": probs}, "ties": {}, "tornado": {}}
    lines = uncertainty_lines(unc, ["baseline"])
    assert len(lines) == len(VERDICT_MEASURES)
    assert any(ln.startswith("baseline, lead time mean: microfactory is the best in 75% of 4") for ln in lines)
