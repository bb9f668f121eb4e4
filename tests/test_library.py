"""twin as a library (issue 8): the public surface, specs built in Python, TOML round
trips, overrides, policies from outside the package, and the examples."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import twin
from twin.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_public_surface_is_exactly_the_documented_one():
    documented = {
        "load", "validate", "simulate", "run_once", "summarize", "mean_ci", "Results", "Model", "Record", "State",
        "SpecError",
        "parse_duration", "Streams", "Snapshot", "Watch", "Layout", "Spec", "Station", "Buffer", "Product", "Source", "Setup", "Failures", "Maintenance",
        "Quality", "WorkerPool", "CalendarSpec", "Window", "Demand", "Shift", "Planning", "Capacity", "Costs", "Run",
        "MinorStops", "Batch", "Component", "Supplier", "Transport",
        "Constant", "Exponential", "Normal", "Lognormal", "Gamma", "Weibull", "Triangular", "Uniform", "Empirical",
        "experiment", "report", "policies", "register", "check_policy", "__version__",
    }
    assert set(twin.__all__) == documented
    for name in twin.__all__:
        assert hasattr(twin, name), name
    ns: dict = {}
    exec("from twin import *", ns)
    assert documented <= set(ns)


def _python_spec() -> twin.Spec:
    return twin.Spec(
        name="py",
        source=twin.Source(kind="poisson", rate_per_hour=30),
        products=[twin.Product(name="a", route=["m1", "m2"], lot_size=2, share=2),
                  twin.Product(name="b", route=["m1", "m2"])],
        stations=[
            twin.Station(name="m1", process_time=twin.Gamma(mean=40, cv=0.4), buffer=twin.Buffer(capacity=2),
                         setup=twin.Setup(default="2min"),
                         failures=twin.Failures(ttf=twin.Weibull(shape=2, scale="5h"),
                                                ttr=twin.Triangular(low=60, mode=300, high=900))),
            twin.Station(name="m2", servers=2, process_time=twin.Empirical(values=[50, 60, 90]),
                         process_time_by_product={"b": twin.Uniform(low=30, high=60)},
                         quality=twin.Quality(defect_rate=0.02, inspect="inline", detection=0.9)),
        ],
    )


def test_python_spec_and_its_toml_give_identical_results(tmp_path):
    spec = _python_spec()
    f = tmp_path / "py.toml"
    f.write_text(spec.to_toml())
    loaded = twin.load(f)
    assert loaded == spec
    a = twin.simulate(spec, horizon="2d", warmup="2h", replications=3, seed=9)
    b = twin.simulate(loaded, horizon="2d", warmup="2h", replications=3, seed=9)
    pd.testing.assert_frame_equal(a.kpis, b.kpis)
    pd.testing.assert_frame_equal(a.lots, b.lots)
    assert set(a.costs["term"]) >= {"capex", "labour", "energy", "total"}


def test_every_reference_factory_round_trips_through_toml():
    for name in ("static-line", "dark-factory", "microfactory"):
        spec = twin.load(name)
        assert twin.validate(tomllib.loads(spec.to_toml())) == spec


def test_overrides_are_validated_like_a_spec(capsys):
    # a thirteenth line: the planner and every station ("*" is every item of a list)
    spec = twin.load("dark-factory").with_overrides({"planning.lanes": 13, "stations.*.lanes": 13,
                                                     "stations.smt.dispatch": "fixed", "demand.base_per_week": 150000})
    assert [s.lanes for s in spec.stations] == [13] * len(spec.stations) and spec.demand.base_per_week == 150000
    assert spec.station("smt").dispatch == "fixed" and spec.station("assembly").dispatch != "fixed"
    with pytest.raises(twin.SpecError, match="stations.smt.lanes: 13 lanes, but planning.lanes is 12"):
        twin.load("dark-factory").with_overrides({"stations.smt.lanes": 13})
    with pytest.raises(twin.SpecError) as e:
        twin.load("dark-factory").with_overrides({"stations.smx.servers": 3, "stations.smt.servers": -1})
    text = "\n".join(e.value.problems)
    assert "<overrides>: stations.smx.servers: no item named 'smx' (did you mean 'smt'?)" in text
    assert main(["run", "dark-factory", "--set", "stations.smt.bufer=3", "--horizon", "1d", "--warmup", "0"]) == 2
    assert "stations.smt.bufer: unknown key (did you mean 'buffer'?)" in capsys.readouterr().err
    assert main(["run", "dark-factory", "--set", "stations.smt.servers=2", "--horizon", "2d", "--warmup", "1d",
                 "--replications", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["meta"]["overrides"] == ["stations.smt.servers=2"]


def test_a_policy_written_outside_the_package_runs_from_a_spec(tmp_path, capsys):
    (tmp_path / "my_rules.py").write_text('''
import twin

@twin.register("dispatch", "always_last")
class AlwaysLast:
    def __init__(self, station):
        self.n = len(station.lanes)

    def choose(self, lot):
        return self.n - 1
''')
    spec = '''name = "plugin line"
plugins = ["my_rules"]
[source]
kind = "poisson"
rate_per_hour = 20
[[stations]]
name = "m"
lanes = 3
dispatch = "always_last"
process_time = 60
'''
    f = tmp_path / "line.toml"
    f.write_text(spec)
    assert main(["run", str(f), "--horizon", "1d", "--warmup", "0", "--replications", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    busy = {k: v["busy"]["mean"] for k, v in out["stations"].items()}
    assert busy["m"] == pytest.approx(1 / 3 * 20 * 60 / 3600, rel=0.15)  # all work on one of three lanes
    # without the plugin (in a fresh process) the rule is unknown: a clear error, no import of user code
    f.write_text(spec.replace('plugins = ["my_rules"]\n', ""))
    r = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                        "validate", str(f)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "stations.m.dispatch: unknown dispatch rule 'always_last'" in r.stderr
    f.write_text(spec.replace("my_rules", "no_such_module"))
    assert main(["validate", str(f)]) == 2
    assert "plugins.0: cannot import 'no_such_module'" in capsys.readouterr().err


@pytest.mark.parametrize("script", ["01_three_station_line", "02_custom_dispatch",
                                    pytest.param("03_pdm_recall_sweep", marks=pytest.mark.slow),
                                    pytest.param("04_break_even", marks=pytest.mark.slow), "06_shop_floor",
                                    "08_buffer_allocation"])
def test_examples_run(script, tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / f"{script}.py"), "--quick", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()
    if script != "02_custom_dispatch":
        assert any(p.suffix == ".html" for p in tmp_path.iterdir())
    if script == "02_custom_dispatch":
        rows = {ln.split()[0]: float(ln.split()[1]) for ln in r.stdout.splitlines()[1:]}
        # the changeover-aware rule is at least as good as fixed assignment on lead time
        assert rows["fewest_setups"] <= rows["fixed"]


def test_buffer_objects_and_default_distribution_names():
    assert twin.Station(name="s", process_time=1, buffer=twin.Buffer(capacity=0)).buffer == 0  # hand-off
    assert twin.Station(name="s", process_time=1, buffer=twin.Buffer()).buffer is None  # unlimited
    with pytest.raises(twin.SpecError, match="<Buffer>: capacity: "):
        twin.Buffer(capacity=-1)
    # a class names its distribution; a table in a spec file must still say `dist`
    assert twin.Exponential(mean="2min").mean == 120
    with pytest.raises(twin.SpecError, match="needs a 'dist' key"):
        twin.validate({"name": "x", "stations": [{"name": "s", "process_time": {"mean": 5}}]})


@pytest.mark.slow  # a week of the dark factory, twice: 6-7 s (the default run is held to 4 min on 2 cores)
def test_results_carry_orders_and_scraps_per_replication():
    res = twin.simulate(twin.load("static-line"), horizon="2w", warmup="1w", replications=2, seed=3)
    o = res.orders
    assert {"replication", "order", "product", "qty", "t_order", "due", "t_delivered", "on_time"} <= set(o.columns)
    assert set(o["replication"]) == {0, 1} and set(res.scraps["replication"]) <= {0, 1}
    # the fill-rate KPI is what the order table says: units due in the window delivered by their due date
    for r, g in o.groupby("replication"):
        due = g[(g["due"] >= 604800) & (g["due"] < 2 * 604800)]
        expected = due.loc[due["t_delivered"] <= due["due"], "qty"].sum() / due["qty"].sum()
        assert res.kpis.loc[res.kpis["replication"] == r, "fill_rate"].iloc[0] == pytest.approx(expected)
    # a line fed by a source, not by orders, has an empty order table
    assert twin.simulate(twin.load(ROOT / "examples" / "two_machine.toml"), horizon="2h", warmup=0).orders.empty


def test_sweep_runs_a_grid_with_common_random_numbers_on_any_executor():
    from twin.experiment import sweep, sweep_table

    spec = twin.validate({"name": "mm1", "source": {"kind": "poisson", "rate_per_hour": 20},
                          "stations": [{"name": "m", "process_time": {"dist": "exponential", "mean": 60}}]})
    grid = {"source.rate_per_hour": [20, 40]}
    df = sweep(spec, grid, horizon="4w", warmup="1d", replications=4, seed=7, jobs=2)
    assert list(df.columns[:2]) == ["source.rate_per_hour", "replication"] and len(df) == 8
    # each point is exactly twin.simulate of the overridden spec with the same seed
    ref = twin.simulate(spec.with_overrides({"source.rate_per_hour": 40}), horizon="4w", warmup="1d",
                        replications=4, seed=7).kpis
    got = df[df["source.rate_per_hour"] == 40].reset_index(drop=True)
    assert got["throughput_per_hour"].tolist() == ref["throughput_per_hour"].tolist()
    assert df.equals(sweep(spec, grid, horizon="4w", warmup="1d", replications=4, seed=7, jobs=1))
    # M/M/1 (mean service 1 min): throughput = arrival rate; time in system 1/(mu - lambda)
    # = 1.5 min and 3 min. Four 4-week replications, ~54,000 units at the busier point:
    # the CI half-widths are ~1-4 %; tolerances 5 % and 8 %
    tab = sweep_table(df).set_index("source.rate_per_hour")
    assert tab.loc[20, "throughput_per_hour"] == pytest.approx(20, rel=0.05)
    assert tab.loc[40, "throughput_per_hour"] == pytest.approx(40, rel=0.05)
    assert tab.loc[20, "lead_time_mean_s"] == pytest.approx(90, rel=0.08)
    assert tab.loc[40, "lead_time_mean_s"] == pytest.approx(180, rel=0.08)
    assert tab.loc[40, "lead_time_mean_s_ci95"] > 0
    with pytest.raises(twin.SpecError, match="stations.nope"):
        sweep(spec, {"stations.nope.servers": [1]}, horizon="1h", replications=1)
