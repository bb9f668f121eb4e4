"""Demand scenarios, adaptation metrics, cost arithmetic and `twin compare` (issue 4)."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import line

import twin
from twin import compare
from twin.adapt import fill_rate, time_to_recover
from twin.cli import main
from twin.commands import _name_list
from twin.cost import costs
from twin.demand import expected_units, order_stream, shares_at
from twin.model import Model
from twin.record import MaintKind
from twin.results import build
from twin.spec import Demand

DAY = 86400.0
WEEK = 7 * DAY
H = 3600.0


# --------------------------------------------------------------------------- demand
def _demand(**shift):
    return Demand.model_validate({"base_per_week": 16800, "order_size": 10, "due": "2d",
                                  "shares": {"a": 0.75, "b": 0.25}, "shifts": [shift] if shift else []})


def test_step_doubles_the_order_rate_from_its_time():
    d = _demand(kind="step", at="1w", factor=2.0)
    exp = expected_units(d, ["a", "b"], np.array([0.0, WEEK, 2 * WEEK]))
    assert exp.sum(axis=1) == pytest.approx([16800, 33600])
    orders = order_stream(d, ["a", "b"], 2 * WEEK, np.random.default_rng(5))
    t = np.array([o[0] for o in orders])
    units = np.array([o[2] for o in orders])
    w1, w2 = units[t < WEEK].sum(), units[t >= WEEK].sum()
    # ~1,680 and ~3,360 Poisson orders: the ratio's s.d. is ~3 %; 10 % is > 3 s.d.
    assert w2 / w1 == pytest.approx(2.0, rel=0.10)
    assert w1 == pytest.approx(16800, rel=0.08)
    assert all(o[3] == pytest.approx(o[0] + 2 * DAY) for o in orders)


def test_mix_shift_moves_the_shares():
    d = _demand(kind="mix", at="1w", shares={"a": 0.25, "b": 0.75})
    s = shares_at(d, ["a", "b"], np.array([WEEK - 1, WEEK + 1]), {"a": 0.75, "b": 0.25})
    assert s[0] == pytest.approx([0.75, 0.25])
    assert s[1] == pytest.approx([0.25, 0.75])
    orders = order_stream(d, ["a", "b"], 2 * WEEK, np.random.default_rng(2))
    late = [o for o in orders if o[0] >= WEEK]
    share_b = sum(o[2] for o in late if o[1] == 1) / sum(o[2] for o in late)
    assert share_b == pytest.approx(0.75, abs=0.04)


def test_new_product_is_ordered_only_from_its_time():
    d = Demand.model_validate({"base_per_week": 16800, "order_size": 10, "shares": {"a": 1.0, "n": 0.0},
                               "shifts": [{"kind": "new_product", "at": "1w", "product": "n", "share": 0.2}]})
    orders = order_stream(d, ["a", "n"], 2 * WEEK, np.random.default_rng(3))
    new = [o for o in orders if o[1] == 1]
    assert new and min(o[0] for o in new) >= WEEK
    assert sum(o[2] for o in new) / sum(o[2] for o in orders if o[0] >= WEEK) == pytest.approx(0.2, abs=0.03)
    # pulses and ramps
    p = Demand.model_validate({"base_per_week": 16800, "shifts": [{"kind": "pulse", "at": "1d", "duration": "1d",
                                                                   "factor": 3}]})
    e = expected_units(p, ["x"], np.arange(0, 4) * DAY)[:, 0]
    assert e == pytest.approx([2400, 7200, 2400])


def test_every_factory_gets_the_same_orders():
    sc = compare.load_scenario("surge")
    lists = []
    for f in compare.FACTORIES:
        spec = compare.apply(twin.load(f), sc, weeks=4, warmup=WEEK)
        lists.append(Model(spec, 123, spec.run.horizon).order_list)
    assert lists[0] == lists[1] == lists[2]
    assert len(lists[0]) > 1000


def test_scenario_errors_name_the_file_and_field(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[shifts]]\nkind = "new_product"\nat = "1w"\nproduct = "nexgen"\nshare = 0.1\n'
                   '[[shifts]]\nkind = "step"\nat = "99w"\nfactor = 2\n')
    out = tmp_path / "out"
    code = main(["compare", "--factories", "dark-factory", "--scenarios", str(bad), "--weeks", "4", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "shifts.0.product: unknown product 'nexgen' (did you mean 'next_gen'?)" in err
    assert f"{bad}: shifts.1.at: at 99 w (5.98752e+07 s) is at or beyond the end of the observation (4 w" in err
    assert str(bad) in err
    assert "Traceback" not in err
    assert not out.exists()
    code = main(["compare", "--scenarios", "no_such", "--out", str(out)])
    assert code == 2 and "unknown scenario" in capsys.readouterr().err
    assert not out.exists()


def test_name_lists_take_spaces_commas_or_both(tmp_path, capsys):
    assert _name_list(["baseline,surge", "slump", " mix_shift , "], "--scenarios") == [
        "baseline", "surge", "slump", "mix_shift"]
    assert _name_list(None, "--scenarios") == []
    out = tmp_path / "out"
    for args in (["--scenarios", ","], ["--factories", " , "]):
        assert main(["compare", *args, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"{args[0]}: no name given" in err and "Traceback" not in err
    assert main(["ablate", "dark-factory", "--scenarios", "", "--out", str(out)]) == 2
    assert "--scenarios: an empty value" in capsys.readouterr().err
    # a comma list is read as names in compare and ablate too (the form twin optimize takes)
    assert main(["compare", "--scenarios", "baseline,no_such", "--out", str(out)]) == 2
    assert "no_such: unknown scenario" in capsys.readouterr().err
    assert main(["ablate", "dark-factory", "--scenarios", "surge,no_such", "--out", str(out)]) == 2
    assert "no_such: unknown scenario" in capsys.readouterr().err
    assert not out.exists()


# --------------------------------------------------------------------------- adaptation definitions
def test_time_to_recover_on_a_hand_made_series():
    days = 40
    t_end = np.arange(1, days + 1) * DAY
    demand = np.full(days, 100.0)
    output = np.full(days, 100.0)
    output[10:12] = 0.0      # days 11-12: nothing made
    output[12:16] = 150.0    # days 13-16: catching up the 200 missing units
    backlog = 300.0 + np.cumsum(demand - output)
    # trailing output/demand since the shift: day 16 is the first with output >= 95 % of demand
    # (600/600) and the backlog back at 300 (cover 3 d <= 1.1 x 3 + 0.1); recovery dated at its start
    assert time_to_recover(t_end, demand, output, backlog, t_shift=10 * DAY, order_size=10) == pytest.approx(5 * DAY)
    # never catching up: not recovered
    slow = output.copy()
    slow[12:] = 90.0
    backlog2 = 300.0 + np.cumsum(demand - slow)
    assert np.isnan(time_to_recover(t_end, demand, slow, backlog2, 10 * DAY, 10))
    # a shift absorbed at once
    assert time_to_recover(t_end, demand, np.full(days, 100.0), np.full(days, 300.0), 10 * DAY, 10) == 0.0


def test_fill_rate_counts_units_due_in_the_window_delivered_by_their_due_date():
    o = pd.DataFrame({"qty": [10, 20, 30, 40], "due": [5.0, 15.0, 25.0, 200.0],
                      "t_delivered": [4.0, 16.0, np.nan, 10.0]})
    o["on_time"] = o["t_delivered"] <= o["due"]
    # due in [0, 100): orders 1-3 (60 units); on time: 10 units
    assert fill_rate(o, 0.0, 100.0) == pytest.approx(10 / 60)


# --------------------------------------------------------------------------- cost arithmetic
def test_cost_terms_by_hand():
    spec = line(
        [{"name": "m", "process_time": 36, "power_kw": {"busy": 10, "idle": 2}}],
        workers=[{"name": "ops", "size": 2}],
        costs={"capex": 8.76e6, "depreciation_years": 1, "wage_per_hour": {"ops": 20},
               "energy_per_kwh": 0.1, "material_per_unit": 5, "holding_per_unit_year": 31536,
               "overhead_per_year": 3.1536e6},
    )
    horizon = 36018.0  # 1,000 units of 36 s finish by 36,000 s
    m = Model(spec, 1, horizon)
    m.run(horizon)
    res = build(m.rec, 0.0, horizon)
    c = res.costs.set_index("term")["total"]
    assert res.kpis["good_units"].iloc[0] == 1000
    year = 365 * 86400
    assert c["capex"] == pytest.approx(8.76e6 * horizon / year)        # 10,005.00
    assert c["labour"] == pytest.approx(2 * 20 * horizon / 3600)        # 400.20 (no calendar: paid around the clock)
    assert c["energy"] == pytest.approx(10 * horizon / 3600 * 0.1)      # busy all the time: 10.005
    assert c["material"] == pytest.approx(5 * 1000)
    assert c["holding"] == pytest.approx(1.0 * 31536 * horizon / year)  # one unit always in process: 36.018
    assert c["overhead"] == pytest.approx(3.1536e6 * horizon / year)    # 3,601.8
    assert c["scrap"] == 0 and c["maintenance"] == 0
    total = 8.76e6 * horizon / year + 2 * 20 * horizon / 3600 + horizon / 3600 + 5000 + 36.018 + 3601.8
    assert c["total"] == pytest.approx(total)
    assert res.kpis["unit_cost"].iloc[0] == pytest.approx(total / 1000)


def test_transition_costs_split_off_shift_time_once():
    # a day-shift station blocked across nights by its slower neighbour: its blocked spells span
    # closed hours, and only their closed part is off shift. The transition cost must be the cost
    # of the window from the raw states split once; splitting the split frame again (as it once
    # was) moved ~1,300 s of open blocked and idle time to off shift, where no power is drawn
    spec = line(
        [{"name": "a", "process_time": 30.0, "calendar": "day", "power_kw": {"busy": 10, "idle": 4, "off_shift": 0}},
         {"name": "b", "process_time": {"dist": "exponential", "mean": 120.0}, "calendar": "day", "buffer": 0}],
        source={"kind": "orders"},
        demand={"base_per_week": 3000.0, "order_size": 10, "due": "3d",
                "shifts": [{"kind": "step", "at": "1w", "factor": 1.3}]},
        calendars=[{"name": "day", "shifts": [{"days": "mon-fri", "start": "06:00", "end": "22:00"}]}],
        costs={"energy_per_kwh": 0.5, "material_per_unit": 1.0},
        run={"horizon": "3w", "warmup": "0s"},
    )
    horizon = spec.run.horizon
    m = Model(spec, 3, horizon)
    m.run(horizon)
    res = build(m.rec, 0.0, horizon)
    k = res.kpis.iloc[0]
    ts = WEEK
    t_rec = horizon if np.isnan(k["time_to_recover_s"]) else ts + k["time_to_recover_s"]
    assert ts < t_rec
    expected = costs(m.rec, res.states, res.lots, res.scraps, ts, t_rec)[1]["unit_cost"]  # raw states, split once
    assert k["unit_cost_transition"] == pytest.approx(expected, rel=1e-12)


def test_overtime_scrap_and_maintenance_costs_by_hand():
    spec = line(
        [{"name": "m", "process_time": 60, "operators": "ops",
          "quality": {"defect_rate": 0.1, "inspect": "inline", "detection": 1.0},
          "failures": {"ttf": "10h", "ttr": "1h"}}],
        calendars=[{"name": "c", "shifts": [{"days": "mon-fri", "start": "08:00", "end": "16:00"}],
                    "overtime": [{"days": "sat", "start": "08:00", "end": "12:00"}]}],
        workers=[{"name": "ops", "size": 3, "calendar": "c"}],
        costs={"wage_per_hour": {"ops": 10}, "overtime_premium": 0.5, "repair_cost": 100,
               "material_per_unit": 7, "conversion_per_hour": 360},
    )
    m = Model(spec, 2, WEEK)
    m.calendars["c"].set_level(1)  # overtime all week
    m.run(WEEK)
    res = build(m.rec, 0.0, WEEK)
    c = res.costs.set_index("term")["total"]
    # 40 regular hours and 4 overtime hours for 3 operators
    assert c["labour"] == pytest.approx(3 * 10 * 40 + 3 * 10 * 1.5 * 4)
    repairs = int((m.rec.array("maint")["kind"] == int(MaintKind.REPAIR)).sum())
    assert repairs >= 3 and c["maintenance"] == pytest.approx(100 * repairs)
    sc = res.extra["scraps"]
    # each scrapped unit loses its material and its 60 s of work at 360/h
    assert c["scrap"] == pytest.approx(sc["units"].sum() * (7 + 60 / 3600 * 360))


# --------------------------------------------------------------------------- twin compare end to end
ARGS = ["compare", "--scenarios", "baseline", "surge", "--replications", "2", "--weeks", "4", "--warmup", "1w"]


def _run(out: Path, *extra: str) -> str:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*ARGS, "--out", str(out), *extra]) == 0
    return buf.getvalue()


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    text = _run(out, "--jobs", "2")
    return out, text


@pytest.mark.slow  # shares the module's full compare run (about a minute on 2 cores)
def test_compare_writes_every_report_file(compare_out):
    out, text = compare_out
    for f in ("report.html", "report.md", "kpis.json", "runs.csv", "daily.csv", "costs.csv", "stations.csv"):
        assert (out / f).stat().st_size > 0
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    for name in compare.FACTORIES + ["baseline", "surge"]:
        assert name in md and name in page and name in text
    assert "## Reading" in md
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 3 * 2 * 2
    assert set(runs["factory"]) == set(compare.FACTORIES)
    # the same seed gives every factory the same demand in a replication
    dem = runs.groupby(["scenario", "replication"])["demand_units"].nunique()
    assert (dem == 1).all()
    costs = pd.read_csv(out / "costs.csv")
    assert {"capex", "labour", "energy", "maintenance", "material", "scrap", "holding", "overhead"} <= set(costs["term"])


@pytest.mark.slow  # shares the module's full compare run (about a minute on 2 cores)
def test_report_html_opens_offline(compare_out):
    page = (compare_out[0] / "report.html").read_text()
    # plotly.js is embedded once; nothing is fetched from outside (strings inside the
    # library's own code, such as its logo link, are not loaded)
    assert page.count("<script type='text/javascript'>") == 1
    outside = re.sub(r"<script[^>]*>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", outside)
    assert "@import" not in outside and "url(http" not in outside


@pytest.mark.slow
@pytest.mark.slow  # shares the module's full compare run (about a minute on 2 cores)
def test_compare_is_identical_twice_and_across_jobs(compare_out, tmp_path):
    out, _ = compare_out
    again = tmp_path / "again"
    _run(again, "--jobs", "1")
    for f in ("runs.csv", "daily.csv", "costs.csv", "stations.csv", "report.md"):
        if f == "report.md":
            a = (out / f).read_text().split("twin 0")[1:]  # command line differs by --jobs/--out only
            b = (again / f).read_text().split("twin 0")[1:]
            assert a == b
        else:
            assert (out / f).read_bytes() == (again / f).read_bytes(), f
    import json
    ka = json.loads((out / "kpis.json").read_text())
    kb = json.loads((again / "kpis.json").read_text())
    assert ka["summary"] == kb["summary"]


@pytest.mark.slow  # shares the module's full compare run (about a minute on 2 cores)
def test_resume_runs_only_missing_jobs(compare_out, tmp_path, monkeypatch):
    out, _ = compare_out
    copy = tmp_path / "resume"
    shutil.copytree(out, copy)
    missing = copy / "jobs" / "dark-factory__surge__1.json"
    missing.unlink()
    (copy / "runs.csv").unlink()
    calls = []
    real = compare.run_job

    def counting(*a):
        calls.append(a[1:4])
        return real(*a)

    monkeypatch.setattr(compare, "run_job", counting)
    grid = compare.Grid(compare.FACTORIES, ["baseline", "surge"], 2, 4.0, WEEK, 1)
    results = compare.run_grid(grid, jobs=1, out=copy, resume=True)
    assert [(c[0], c[2]) for c in calls] == [("dark-factory", 1)]
    fresh = compare.runs_frame(results).to_csv(index=False, float_format="%.10g", lineterminator="\n")
    assert fresh == (out / "runs.csv").read_text()
    # a resume with different options is refused rather than mixing grids
    with pytest.raises(twin.SpecError, match="--resume"):
        compare.run_grid(compare.Grid(compare.FACTORIES, ["baseline", "surge"], 3, 4.0, WEEK, 1), out=copy, resume=True)


def test_names_in_the_report_are_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    spec = tmp_path / "evil.toml"
    spec.write_text(f'''name = "evil"
[source]
kind = "orders"
[demand]
base_per_week = 1000
order_size = 10
[[products]]
name = "mix_fold"
route = ["{evil}"]
[[stations]]
name = "{evil}"
process_time = 60
''')
    out = tmp_path / "out"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["compare", "--factories", str(spec), "--scenarios", "baseline", "--replications", "1",
                     "--weeks", "1", "--warmup", "1d", "--jobs", "1", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.slow
@pytest.mark.slow  # shares the module's full compare run (about a minute on 2 cores)
def test_set_overrides_one_factory_and_leaves_the_others_alone(compare_out, tmp_path, capsys):
    out0, _ = compare_out
    out = tmp_path / "set"
    # a dearer tariff in the dark factory only: its energy cost scales with the price
    # (0.09 -> 0.27 $/kWh, x3) and nothing else moves; the other factories are untouched
    _run(out, "--jobs", "2", "--set", "dark-factory:costs.energy_per_kwh=0.27")
    a, b = pd.read_csv(out0 / "runs.csv"), pd.read_csv(out / "runs.csv")
    key = ["factory", "scenario", "replication"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    dark = a["factory"] == "dark-factory"
    assert b.loc[dark, "cost_energy"].to_numpy() == pytest.approx(3 * a.loc[dark, "cost_energy"].to_numpy())
    assert b.loc[dark, "good_units"].tolist() == a.loc[dark, "good_units"].tolist()
    assert b[~dark].equals(a[~dark])
    assert "Changed from the reference specs:** dark-factory: `costs.energy_per_kwh = 0.27`" in \
        (out / "report.md").read_text()
    # a resume with other overrides is refused; a bad override or factory writes nothing
    assert main([*ARGS, "--out", str(out), "--resume"]) == 2
    bad = tmp_path / "bad"
    assert main([*ARGS, "--out", str(bad), "--set", "dark-factory:costs.energy_per_kwh=-1"]) == 2
    assert main([*ARGS, "--out", str(bad), "--factories", "static-line", "--set", "microfactory:planning.lanes=3"]) == 2
    err = capsys.readouterr().err
    assert "costs.energy_per_kwh" in err and "microfactory: not among the compared factories" in err
    assert not bad.exists()


@pytest.mark.slow
def test_supply_shortage_starves_every_factory(tmp_path):
    """The supply_shortage scenario reaches all three reference factories: each one's assembly
    waits for displays (starved_material), fewer requested displays come from stock at once than
    at baseline, and the component stock's carrying cost is in the holding term."""
    out = tmp_path / "o"
    rc = main(["compare", "--scenarios", "baseline", "supply_shortage", "--replications", "1", "--weeks", "6",
               "--warmup", "1w", "--jobs", "1", "--out", str(out), "-q"])
    assert rc == 0
    st = pd.read_csv(out / "stations.csv")
    asm = st[st["station"] == "assembly"].set_index(["factory", "scenario"])["starved_material"]
    runs = pd.read_csv(out / "runs.csv").set_index(["factory", "scenario"])
    for f in ("static-line", "dark-factory", "microfactory"):
        assert asm[(f, "supply_shortage")] > 0.01 > asm[(f, "baseline")]
        assert runs.loc[(f, "supply_shortage"), "material_fill_rate"] < runs.loc[(f, "baseline"), "material_fill_rate"]
        assert runs.loc[(f, "baseline"), "component_stock_mean"] > 0
