"""``twin optimize`` against exact answers: buffer allocation in an exponential tandem line
(a Markov chain solved here) and M/M/c staffing (Erlang C)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import expo, line

import twin
from twin import optimize, optimize_report
from twin.units import WEEK
from twin.cli import build_parser, main
from twin.commands import _name_list
from twin.spec import SpecError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.design import command  # noqa: E402 - the protocol's commands live with the benchmarks


# --------------------------------------------------------------------------- exact tandem lines
def tandem_throughput(mu: list[float], buffers: list[int]) -> float:
    """Exact throughput of a saturated exponential tandem line with blocking after service
    (BAS): station i serves at rate ``mu[i]``; ``buffers[i]`` waiting places in front of
    station i + 1. The state is, per station, (parts held, blocked?); the chain is solved
    for its stationary distribution."""
    n = len(mu)
    cap = [math.inf] + [b + 1 for b in buffers]  # parts a station can hold (the first: always one)

    def moves(state):
        # state: tuple of (held, blocked) per station; station 0 always holds one part
        out = []
        for i in range(n):
            held, blocked = state[i]
            if held == 0 or blocked:
                continue
            s = [list(x) for x in state]
            if i == n - 1:
                s[i][0] -= 1
            elif s[i + 1][0] < cap[i + 1]:
                s[i + 1][0] += 1
                s[i][0] -= 1
            else:
                s[i][1] = True
                out.append((mu[i], _settle(s)))
                continue
            if i == 0:
                s[0][0] = 1
            out.append((mu[i], _settle(s)))
        return out

    def _settle(s):
        # blocked parts move on as soon as there is room, upstream ones after them
        changed = True
        while changed:
            changed = False
            for i in range(n - 1, 0, -1):
                if s[i - 1][1] and s[i][0] < cap[i]:
                    s[i][0] += 1
                    s[i - 1][1] = False
                    s[i - 1][0] -= 1
                    if i - 1 == 0:
                        s[0][0] = 1
                    changed = True
        return tuple((h, b) for h, b in s)

    start = tuple([(1, False)] + [(0, False)] * (n - 1))
    index = {start: 0}
    todo = [start]
    edges = []
    while todo:
        st = todo.pop()
        for rate, nxt in moves(st):
            if nxt not in index:
                index[nxt] = len(index)
                todo.append(nxt)
            edges.append((index[st], index[nxt], rate))
    m = len(index)
    q = np.zeros((m, m))
    for a, b, r in edges:
        q[a, b] += r
        q[a, a] -= r
    a = np.vstack([q.T, np.ones(m)])
    rhs = np.zeros(m + 1)
    rhs[-1] = 1.0
    pi = np.linalg.lstsq(a, rhs, rcond=None)[0]
    last_busy = sum(pi[i] for st, i in index.items() if st[-1][0] > 0)
    return mu[-1] * last_busy


def test_the_chain_gives_the_known_tandem_results():
    # two equal stations, B places between: mu (B + 2) / (B + 3); Hunt (1956): three, none, 0.5641 mu
    for b in (0, 1, 3):
        assert tandem_throughput([1.0, 1.0], [b]) == pytest.approx((b + 2) / (b + 3), rel=1e-9)
    assert tandem_throughput([1.0, 1.0, 1.0], [0, 0]) == pytest.approx(0.5641, abs=1e-4)


def _tandem_spec(means: list[float]) -> twin.Spec:
    st = [{"name": "a", "process_time": expo(means[0])}]
    st += [{"name": n, "process_time": expo(m), "buffer": 0} for n, m in zip("bcd", means[1:])]
    return line(st, run={"horizon": 20000, "warmup": 500})


@pytest.mark.slow
def test_buffer_allocation_is_within_one_percent_of_the_exact_optimum():
    # four places to share between two buffers of a three-station line with a slow middle
    means = [1.0, 1.2, 0.9]
    mu = [1 / m for m in means]
    exact = {(b, c): tandem_throughput(mu, [b, c]) * 3600 for b in range(5) for c in range(5) if b + c <= 4}
    best_design = max(exact, key=exact.get)
    res = optimize.optimize(_tandem_spec(means),
                            [optimize.parse_dimension("stations.b.buffer=0..4"),
                             optimize.parse_dimension("stations.c.buffer=0..4")],
                            [("throughput_per_hour", "maximize")],
                            ["stations.b.buffer + stations.c.buffer <= 4"], trials=30, replications=2, seed=3)
    assert res["meta"]["sampler"] == "grid" and res["meta"]["trials"] == 15
    pick = res["best"]["params"]
    picked = exact[(pick["stations.b.buffer"], pick["stations.c.buffer"])]
    assert picked >= 0.99 * exact[best_design]
    reported = [res["best"]["params"]] + [r["params"] for r in res["runners_up"]]
    assert {"stations.b.buffer": best_design[0], "stations.c.buffer": best_design[1]} in reported
    # the simulated throughput of the pick agrees with the chain (8 replications of ~16k units)
    assert res["best"]["kpis"]["throughput_per_hour"]["mean"] == pytest.approx(picked, rel=0.02)


# --------------------------------------------------------------------------- M/M/c staffing
def _erlang_c_lq(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    rho = a / c
    if rho >= 1:
        return math.inf
    s = sum(a ** k / math.factorial(k) for k in range(c))
    top = a ** c / math.factorial(c) / (1 - rho)
    pw = top / (s + top)
    return pw * rho / (1 - rho)


@pytest.mark.slow
def test_mmc_staffing_finds_the_erlang_c_optimum():
    # cost per server-hour 2 (energy of a server drawing 2 kW at 1 $/kWh, busy or idle) plus 4 per
    # unit-hour in the system (holding): cost rate(c) = 2c + 4 (Lq(c) + lambda/mu); per unit served
    # the optimiser minimises unit_cost = cost rate / lambda
    lam, mu = 1 / 10.0, 1 / 40.0  # per second: four servers' worth of work
    year = 365 * 86400.0
    spec = line([{"name": "m", "process_time": expo(40.0), "servers": 5,
                  "power_kw": {"busy": 2.0, "idle": 2.0}}],
                source={"kind": "poisson", "rate_per_hour": lam * 3600},
                costs={"energy_per_kwh": 1.0, "holding_per_unit_year": 4 * year / 3600.0},
                run={"horizon": 400000, "warmup": 10000})
    cost = {c: 2 * c + 4 * (_erlang_c_lq(lam, mu, c) + lam / mu) for c in range(5, 10)}
    best = min(cost, key=cost.get)
    assert best == 6 and cost[5] > cost[6] * 1.1 and cost[7] > cost[6] * 1.01  # a clear optimum
    res = optimize.optimize(spec, [optimize.parse_dimension("stations.m.servers=5..9")],
                            [("unit_cost", "minimize")], trials=10, replications=3, seed=5)
    assert res["best"]["params"]["stations.m.servers"] == best
    # the simulated unit cost is the Erlang C cost per unit served
    assert res["best"]["kpis"]["unit_cost"]["mean"] == pytest.approx(cost[best] / (lam * 3600), rel=0.03)


# --------------------------------------------------------------------------- the grammar and the command
def test_the_constraint_grammar_is_safe_and_exact():
    c = optimize.parse_constraint("stations.b.buffer + 2 * (stations.c.buffer - 1) <= 6")
    assert c.names == {"stations.b.buffer", "stations.c.buffer"}
    assert c.holds({"stations.b.buffer": 2, "stations.c.buffer": 3})
    assert not c.holds({"stations.b.buffer": 3, "stations.c.buffer": 3})
    assert optimize.parse_constraint("fill_rate >= 0.98").holds({"fill_rate": 0.98})
    assert not optimize.parse_constraint("fill_rate > 0.98").holds({"fill_rate": 0.98})
    for bad in ("__import__('os').system('true') <= 1", "a <= b <= c", "a +", "x = 3", "a <= 1;b"):
        with pytest.raises(SpecError):
            optimize.parse_constraint(bad)


def test_dimensions_parse_ranges_durations_and_choices():
    d = optimize.parse_dimension("stations.b.buffer=0..6")
    assert (d.kind, d.values()) == ("int", list(range(7)))
    d = optimize.parse_dimension("capacity.hiring_lag=2h..12h")
    assert (d.kind, d.low, d.high) == ("float", 7200.0, 43200.0)
    d = optimize.parse_dimension("planning.policy=hourly,forecast")
    assert (d.kind, d.choices) == ("categorical", ("hourly", "forecast"))
    for bad in ("stations.b.buffer=5..2", "x=1.5..1.5", "nopath", "=1..2"):
        with pytest.raises(SpecError):
            optimize.parse_dimension(bad)


@pytest.mark.parametrize("args, message", [
    (["--vary", "stations.x.buffer=0..3", "--maximize", "throughput_per_hour"], "no item named 'x'"),
    (["--vary", "stations.b.buffer=3..0", "--maximize", "throughput_per_hour"], "is empty"),
    (["--vary", "stations.b.buffer=0..3", "--maximize", "thruput"], "no KPI 'thruput'"),
    (["--vary", "stations.b.buffer=0..3", "--maximize", "throughput_per_hour", "--constraint",
      "stations.b.buffer >= 5"], "no design in the space meets"),
    (["--vary", "stations.b.buffer=0..3", "--maximize", "throughput_per_hour", "--constraint",
      "stations.b.bufer <= 2"], "neither a varied path"),
])
def test_bad_optimisations_are_refused_before_anything_runs(tmp_path, capsys, args, message):
    spec = tmp_path / "t.toml"
    spec.write_text(_tandem_spec([1.0, 1.0, 1.0]).to_toml())
    out = tmp_path / "out"
    assert main(["optimize", str(spec), *args, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_optimize_writes_a_runnable_best_spec_and_the_json(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(_tandem_spec([1.0, 1.2, 0.9]).to_toml())
    out = tmp_path / "out"
    rc = main(["optimize", str(spec), "--vary", "stations.b.buffer=0..2", "--vary", "stations.c.buffer=0..2",
               "--maximize", "throughput_per_hour", "--minimize", "wip_mean", "--trials", "8",
               "--replications", "2", "--horizon", "4000", "--warmup", "200", "--jobs", "1", "--json",
               "--out", str(out)])
    assert rc == 0
    body = json.loads(capsys.readouterr().out)
    assert set(body) >= {"best", "runners_up", "trials", "pareto"}
    assert body["meta"]["sampler"] == "NSGA-II" and len(body["trials"]) == 8
    assert body["pareto"]  # two objectives: a front
    for name in ("trials.csv", "best.toml", "kpis.json", "report.html"):
        assert (out / name).is_file()
    best = twin.load(out / "best.toml")
    assert best.station("b").buffer == body["best"]["params"]["stations.b.buffer"]
    assert main(["run", str(out / "best.toml"), "--horizon", "1000", "--warmup", "0", "--replications", "1",
                 "--json"]) == 0


def test_the_same_seed_gives_the_same_search():
    spec = _tandem_spec([1.0, 1.2, 0.9])
    kw = dict(trials=6, replications=1, horizon=3000.0, warmup=100.0, seed=9)
    space = [optimize.parse_dimension("stations.b.buffer=0..6"), optimize.parse_dimension("stations.c.buffer=0..6")]
    a = optimize.optimize(spec, space, [("throughput_per_hour", "maximize")], **kw)
    b = optimize.optimize(spec, space, [("throughput_per_hour", "maximize")], **kw)
    assert a["meta"]["sampler"] == "TPE"
    assert a["trials"] == b["trials"] and a["best"] == b["best"]


def _lanes_spec() -> twin.Spec:
    return line(
        [{"name": "a", "lanes": 4, "process_time": 30.0, "dispatch": "fixed"}],
        source={"kind": "orders"},
        demand={"base_per_week": 10000.0, "order_size": 10, "due": "2d"},
        planning={"policy": "hourly", "lanes": 4},
        costs={"capex": 0.0, "capex_per_lane": 7e6, "depreciation_years": 7.0},
        run={"horizon": "4d", "warmup": "0s"},
    )


def test_scenarios_and_linked_paths_design_a_line_count():
    # one lane makes 120 units/h, demand is 60/h (90/h in the pulse): every line count meets
    # demand, so owned capital decides and the fewest lines win; each per-scenario value is
    # exactly that scenario's own run, and KPI k is their equal-weight mean
    spec = _lanes_spec()
    pulse = twin.scenario.Scenario(name="pulse", shifts=[{"kind": "pulse", "at": "1d", "duration": "2d",
                                                          "factor": 1.5}])
    base = twin.scenario.Scenario(name="baseline")
    space = [optimize.parse_dimension("planning.lanes,stations.a.lanes=2..4")]
    assert space[0].also == ("stations.a.lanes",)
    res = twin.experiment.optimize(spec, space, [("conversion_cost", "minimize")], ["pulse.fill_rate >= 0.9"],
                                   trials=3, replications=1, confirm=2, confirm_replications=2, seed=4,
                                   scenarios=[base, pulse])
    assert res["meta"]["sampler"] == "grid" and len(res["trials"]) == 3
    assert res["best"]["params"] == {"planning.lanes": 2}
    for row in res["trials"]:
        both = (row["kpi.baseline.conversion_cost"], row["kpi.pulse.conversion_cost"])
        assert row["conversion_cost"] == pytest.approx(sum(both) / 2, rel=1e-12)
    row = next(r for r in res["trials"] if r["planning.lanes"] == 3)
    one = twin.scenario.apply(spec.with_overrides({"planning.lanes": 3, "stations.a.lanes": 3}), pulse,
                              4 * 86400 / WEEK, 0.0)
    k = twin.runs.run_once(one, 4 * 86400.0, 0.0, twin.runs.replication_seed(4, 0)).kpis.iloc[0]
    assert row["kpi.pulse.good_units"] == k["good_units"] and row["kpi.pulse.unit_cost"] == k["unit_cost"]
    best = optimize_report.best_spec(spec, res)
    assert best.planning.lanes == best.station("a").lanes == 2


def test_a_scenario_that_does_not_fit_the_horizon_is_refused(tmp_path, capsys):
    spec = tmp_path / "t.toml"
    spec.write_text(_lanes_spec().to_toml())
    out = tmp_path / "out"
    rc = main(["optimize", str(spec), "--vary", "planning.lanes,stations.a.lanes=2..4", "--minimize",
               "conversion_cost", "--scenarios", "baseline,surge", "--horizon", "2w", "--warmup", "0s",
               "--out", str(out), "-q"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "scenario surge" in err and "beyond the end of the observation" in err and "Traceback" not in err
    assert not out.exists()
    # the scenarios given as separate words, as twin compare takes them: the same check
    assert main(["optimize", str(spec), "--vary", "planning.lanes,stations.a.lanes=2..4", "--minimize",
                 "conversion_cost", "--scenarios", "baseline", "surge", "--horizon", "2w", "--warmup", "0s",
                 "--out", str(out), "-q"]) == 2
    assert "scenario surge" in capsys.readouterr().err
    assert main(["optimize", str(spec), "--vary", "planning.lanes=2..4", "--minimize", "conversion_cost",
                 "-q"]) == 2
    # a line count the stations do not follow is named, with the way to link them
    assert "stations.a.lanes" in capsys.readouterr().err


def test_an_unmeetable_outcome_says_which_design_came_closest_and_by_how_much():
    spec = _tandem_spec([1.0, 1.0, 1.0])
    space = [optimize.parse_dimension("stations.b.buffer=0..2")]
    with pytest.raises(SpecError) as e:
        optimize.optimize(spec, space, [("throughput_per_hour", "maximize")],
                          ["throughput_per_hour >= 1e9", "wip_mean >= 0"], trials=3, replications=1,
                          horizon=2000.0, warmup=100.0)
    msg = e.value.problems[0]
    # the largest buffer gives the most throughput: it is the closest, and only the unmet constraint is named
    assert "none of the 3 designs" in msg and "Closest: stations.b.buffer = 2" in msg
    assert "throughput_per_hour >= 1e9 (left side" in msg and "wip_mean >= 0 (" not in msg


@pytest.mark.parametrize("factory, designs", [("static-line", 4), pytest.param("dark-factory", 2, marks=pytest.mark.slow),
                                              ("microfactory", 5)])
def test_the_design_protocol_commands_are_valid_searches_of_the_reference_factories(tmp_path, factory, designs):
    # the commands lines/SOURCES.md records, checked against today's specs the way `twin optimize`
    # checks them before running: paths, scenarios that fit the horizon, KPIs, the feasible grid
    # one of them with the priced-lateness objective of the protocol's sensitivity run
    args = build_parser().parse_args(command(factory, tmp_path, 100.0 if factory == "dark-factory" else None))
    p = optimize.Problem(twin.load(twin.spec.resolve(args.spec)), [optimize.parse_dimension(v) for v in args.vary],
                         [(k, "minimize") for k in args.minimize],
                         [optimize.parse_constraint(c) for c in args.constraint],
                         horizon=args.horizon, warmup=args.warmup, seed=args.seed,
                         scenarios=[twin.scenario.load_scenario(s) for s in _name_list(args.scenarios, "--scenarios")])
    optimize.check(p)
    assert p.grid is not None and len(p.grid) == designs
    assert set(p.formulas) == ({"conversion_cost + 100 * (1 - fill_rate)"} if factory == "dark-factory" else set())
    assert {c.text: c.kind for c in p.constraints}["baseline.fill_rate >= 0.98"] == "outcome"
    if factory == "static-line":
        assert all(d["workers.operators.size"] == 261 * d["planning.lanes"] for d in p.grid)
        best = optimize_report.best_spec(p.spec, {"best": {"params": p.grid[-1]}, "meta": {"space": [
            {"path": d.path, "also": list(d.also)} for d in p.space]}})
        assert {s.lanes for s in best.stations if s.lanes > 1} == {12}


def test_an_objective_may_be_an_expression_of_kpis():
    # throughput less a price on WIP: each trial's objective is the mean over its replications of
    # the expression, and (being linear) the expression of its KPI means
    spec = _tandem_spec([1.0, 1.2, 0.9])
    text = "throughput_per_hour - 100 * wip_mean"
    res = twin.experiment.optimize(spec, [optimize.parse_dimension("stations.b.buffer=0..3")], [(text, "maximize")],
                                   trials=4, replications=2, horizon=3000.0, warmup=100.0, confirm=2)
    for row in res["trials"]:
        assert row[text] == pytest.approx(row["kpi.throughput_per_hour"] - 100 * row["kpi.wip_mean"], rel=1e-9)
    assert res["best"]["kpis"][text]["mean"] >= max(r["kpis"][text]["mean"] for r in res["runners_up"])
    for bad, msg in (("fill_rate >= 0.9", "no comparison"), ("thruput * 2", "no KPI 'thruput'"), ("", "empty")):
        with pytest.raises(SpecError, match=msg):
            twin.experiment.optimize(spec, [optimize.parse_dimension("stations.b.buffer=0..3")], [(bad, "maximize")],
                                     trials=2, replications=1, horizon=1000.0, warmup=0.0)
