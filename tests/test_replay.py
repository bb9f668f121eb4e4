"""The layout and the replay's data: places, trips measured on the plan, watched runs that change
nothing, buffer levels and unit flows checked against what the line physically did, and
queueing theory (an M/M/1 queue's mean length read from the recorded levels)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import twin
from twin import floorplan
from twin.cli import main
from twin.eventlog import log_frame
from twin.frames import buffer_table, flow_table, frames
from twin.model import Model
from twin.results import build
from twin.spec import SpecError
from twin.tracker import StateTracker
from twin.watch import Watch

ROOT = Path(__file__).resolve().parent.parent

LINE = """
name = "cell"
[source]
kind = "poisson"
rate_per_hour = 50
[[stations]]
name = "cut"
process_time = {dist = "exponential", mean = "50s"}
buffer = 6
[[stations]]
name = "weld"
servers = 2
process_time = {dist = "gamma", mean = "110s", cv = 0.5}
buffer = 4
routing = {weld = 0.05, bench = 0.05}
quality = {defect_rate = 0.04, inspect = "inline", rework = 0.5, rework_at = "fix"}
[[stations]]
name = "bench"
process_time = 120
[[stations]]
name = "fix"
process_time = 200
[[stations]]
name = "pack"
process_time = {dist = "uniform", low = 30, high = 50}
[[products]]
name = "unit"
route = ["cut", "weld", "pack"]
[[transport]]
name = "agv"
vehicles = 2
moves = [["weld", "pack"]]
speed_m_per_s = 1.5
load_time = 5
unload_time = 5
"""


def _spec(tmp_path: Path, text: str = LINE, name: str = "cell.toml") -> twin.Spec:
    p = tmp_path / name
    p.write_text(text)
    return twin.load(p)


def _laid(tmp_path: Path) -> twin.Spec:
    return _spec(tmp_path, LINE + '[layout]\nstations = {cut = [0, 0], weld = [12, 0], pack = [30, 8], '
                                  'bench = [12, -10], fix = [20, -10]}\n')


def test_the_automatic_layout_places_every_station_in_layers_along_the_routes(tmp_path):
    spec = _spec(tmp_path, LINE.replace('moves = [["weld", "pack"]]\nspeed_m_per_s = 1.5', 'moves = [["weld", "pack"]]\ndistance_m = 30\nspeed_m_per_s = 1.5'))
    plan = floorplan.plan(spec)
    s = floorplan.SPACING_M
    assert plan.auto
    assert plan.stations["cut"] == (0.0, 0.0) and plan.stations["weld"] == (s, 0.0) and plan.stations["pack"] == (2 * s, 0.0)
    # off every route: a row below the station that sends lots there, side by side
    assert plan.stations["bench"] == (s, -s) and plan.stations["fix"] == (1.5 * s, -s)
    assert set(plan.buffers) == {st.name for st in spec.stations}
    assert plan.paths["agv"] == [plan.stations["weld"], plan.stations["pack"]]


def test_two_routes_that_share_stations_stack_a_layer(tmp_path):
    text = """
name = "two"
[[stations]]
name = "a"
process_time = 10
[[stations]]
name = "b"
process_time = 10
[[stations]]
name = "c"
process_time = 10
[[stations]]
name = "d"
process_time = 10
[[products]]
name = "x"
route = ["a", "b", "d"]
[[products]]
name = "y"
route = ["a", "c", "b", "d"]
"""
    lay = floorplan.layers(_spec(tmp_path, text))
    assert lay == {"a": 0, "c": 1, "b": 2, "d": 3}  # b after c on y's route: the longest way to it


def test_a_fleet_measures_its_trips_on_the_layout(tmp_path):
    spec = _laid(tmp_path)
    agv = spec.transport[0]
    assert agv.distance_m is None
    assert agv.trip_m == pytest.approx(18 + 8)  # rectilinear: |30 - 12| + |8 - 0|
    assert float(agv.trip_time().value) == pytest.approx(26 / 1.5)
    euclid = _spec(tmp_path, LINE + '[layout]\nmetric = "euclidean"\nstations = {cut = [0, 0], weld = [12, 0], '
                                    'pack = [30, 8], bench = [12, -10], fix = [20, -10]}\n', "e.toml")
    assert euclid.transport[0].trip_m == pytest.approx(np.hypot(18, 8))
    grid = _spec(tmp_path, LINE + '[layout]\nunit = "grid"\ncell_m = 2\nstations = {cut = [0, 0], weld = [6, 0], '
                                  'pack = [15, 4], bench = [6, -5], fix = [10, -5]}\npaths = {agv = [[6, 0], [6, 4], [15, 4]]}\n',
                 "g.toml")
    assert grid.transport[0].trip_m == pytest.approx(2 * (4 + 9))  # the drawn path, in cells of 2 m
    # the same trips as the fleet given the distance outright: the same run to the bit
    given = _spec(tmp_path, LINE.replace("speed_m_per_s = 1.5", "speed_m_per_s = 1.5\ndistance_m = 26"), "d.toml")
    a = Model(spec, 3, 86400.0).run(86400.0)
    b = Model(given, 3, 86400.0).run(86400.0)
    assert a.states == b.states and a.finishes == b.finishes


@pytest.mark.parametrize("extra, field, words", [
    ('[layout]\nstations = {cut = [0, 0], weld = [12, 0], pack = [30, 8], bench = [12, -10], fixx = [1, 1]}\n',
     "layout.stations.fixx", "unknown station 'fixx'"),
    ('[layout]\nstations = {cut = [0, 0], weld = [12, 0], pack = [30, 8], bench = [12, -10]}\n',
     "layout.stations", "no place for 'fix'"),
    ('[layout]\nstations = {cut = [0, 0], weld = [12, 0], pack = [12, 0], bench = [12, -10], fix = [1, 1]}\n',
     "layout.stations.pack", "stands where 'weld' stands"),
    ('[layout]\npaths = {agvv = [[0, 0], [1, 1]]}\n', "layout.paths.agvv", "unknown transport fleet"),
    ('', "transport.agv.distance_m", "missing: give distance_m, or a [layout]"),
])
def test_a_bad_layout_is_named_by_field(tmp_path, extra, field, words):
    with pytest.raises(SpecError) as e:
        _spec(tmp_path, LINE + extra)
    assert any(field in p and words in p and "cell.toml" in p for p in e.value.problems), e.value.problems


def test_a_watched_run_is_the_unwatched_run(tmp_path):
    spec = _laid(tmp_path)
    for s in (spec, twin.load(twin.builtins.factories()["static-line"])):
        h = 2 * 86400.0 if s is spec else 86400.0
        a = Model(s, 11, h).run(h, 3600.0)
        b = Model(s, 11, h, watch=Watch(7200.0, h / 2, 3600.0)).run(h, 3600.0)
        for name in ("states", "releases", "finishes", "scraps", "reworks", "maint"):
            assert np.array_equal(a.array(name), b.array(name)), name
        assert a.trace is None and b.trace is None  # the watch's trace counts and is gone
        assert len(b.levels) > 0


def test_buffer_levels_are_the_lots_the_event_log_leaves_waiting(tmp_path):
    """Truth from another path: the state tracker folds the run's event log (lots started,
    left, ...) into the lots waiting in each buffer; the watched levels must say the same."""
    text = """
name = "plain"
[source]
kind = "poisson"
rate_per_hour = 55
[[stations]]
name = "a"
process_time = {dist = "exponential", mean = "50s"}
buffer = 5
[[stations]]
name = "b"
servers = 2
process_time = {dist = "gamma", mean = "100s", cv = 0.6}
buffer = 3
[[stations]]
name = "c"
process_time = {dist = "exponential", mean = "55s"}
buffer = 2
"""
    spec = _spec(tmp_path, text, "plain.toml")
    h = 8 * 3600.0
    log = log_frame(Model(spec, 5, h, trace=True).run(h))
    rec = Model(spec, 5, h, watch=Watch(0.0, h)).run(h)
    bt = buffer_table(rec)
    rng = np.random.default_rng(2)
    for t in np.sort(rng.uniform(600, h - 600, 12)):
        snap = StateTracker(spec).fold(log[log.timestamp <= t]).snapshot(float(t))
        want = {b.station: len(b.lots) for b in snap.buffers}
        got = bt[(bt["start"] <= t) & (bt["end"] > t)].groupby("station")["level"].sum().to_dict()
        for st in ("a", "b", "c"):
            assert got.get(st, 0) == want.get(st, 0), (t, st, got, want)


def test_an_mm1_queue_length_read_from_the_levels_is_rho_squared_over_one_minus_rho(tmp_path):
    """M/M/1 at rho = 0.75: Lq = rho^2 / (1 - rho) = 2.25. 1,500 h (~90,000 customers); the
    time-average's standard error there is about 0.09 (batch means), so 4 s.e. is 0.36."""
    text = """
name = "mm1"
[source]
kind = "poisson"
rate_per_hour = 60
[[stations]]
name = "s"
process_time = {dist = "exponential", mean = "45s"}
"""
    spec = _spec(tmp_path, text, "mm1.toml")
    h = 1500 * 3600.0
    rec = Model(spec, 1, h, watch=Watch(50 * 3600.0, h)).run(h)
    bt = buffer_table(rec)
    lq = float(((bt["end"] - bt["start"]) * bt["level"]).sum() / (h - 50 * 3600.0))
    assert lq == pytest.approx(2.25, abs=0.36)


def test_flows_balance_against_what_the_line_released_made_and_scrapped(tmp_path):
    """Counted physically: what reached good and scrap is the KPIs' good and scrapped units; what
    left the release is what entered less what still waits at the first station; and what
    started at the stations and has not started anywhere after (nor finished) is the WIP at the
    end less those waiting lots (one unit a lot)."""
    spec = _laid(tmp_path)
    h = 3 * 86400.0
    rec = Model(spec, 4, h, watch=Watch(0.0, h, 0.0)).run(h)
    res = build(rec)
    ft = flow_table(rec)
    into = ft.groupby("target")["units"].sum()
    out = ft.groupby("source")["units"].sum()
    assert into["good"] == int(res.kpis["good_units"].iloc[0])
    assert into.get("scrapped", 0) == int(res.kpis["scrap_units"].iloc[0]) > 0
    bt = buffer_table(rec)
    waiting = int(bt[(bt["station"] == "cut") & (bt["end"] == h)]["level"].sum())
    lots = res.lots
    entered = int(lots["qty"][lots["status"] != "lost"].sum())
    assert out["released"] == entered - waiting
    stations = [s.name for s in spec.stations]
    inside = sum(int(into.get(n, 0)) - int(out.get(n, 0)) for n in stations)
    assert inside == int(res.kpis["wip_end"].iloc[0]) - waiting
    kinds = {(a, b) for a, b in zip(ft["source"], ft["target"])}
    assert {("weld", "weld"), ("weld", "bench"), ("bench", "weld"), ("weld", "fix")} <= kinds


SHUTTLE = """
name = "shuttle"
[source]
kind = "saturated"
[[stations]]
name = "a"
process_time = 100
buffer = 1
[[stations]]
name = "b"
process_time = 100
[[transport]]
name = "cart"
moves = [["a", "b"]]
speed_m_per_s = 1
"""
"""Two constant-time stations and a cart between them (1 m/s): trips that can be timed by hand."""


def test_frames_sample_the_state_table_and_move_vehicles_on_their_trips(tmp_path):
    text = SHUTTLE + """load_time = 10
unload_time = 10
[layout]
stations = {a = [0, 0], b = [40, 0]}
"""
    spec = _spec(tmp_path, text, "shuttle.toml")
    rec = Model(spec, 1, 2000.0, watch=Watch(0.0, 1000.0)).run(2000.0)
    res = build(rec)
    data = frames(rec, res.states, floorplan.plan(spec), 0.0, 1000.0, step=5.0)
    t = np.asarray(data["t"])
    xs = np.array([v[0][0] for v in data["vehicles"]])
    # the first lot: a works 0-100, the cart loads 100-110, drives 40 m 110-150, unloads 150-160,
    # drives back 160-200: at 130 s it is half way, at 155 s at b, at 180 s half way back
    assert xs[t == 130.0][0] == pytest.approx(20.0) and xs[t == 155.0][0] == pytest.approx(40.0)
    assert xs[t == 180.0][0] == pytest.approx(20.0) and xs[t == 105.0][0] == pytest.approx(0.0)
    st = res.states
    for j in (3, 40, 150):
        for i, key in enumerate(data["servers"]):
            name, k = key.rsplit("/", 1)
            row = st[(st["station"] == name) & (st["server"] == int(k)) & (st["start"] <= t[j]) & (st["end"] > t[j])]
            want = row["state"].iloc[0] if len(row) else "idle"
            assert data["states"][j][i] == twin.state.LETTERS[want]
    assert data["out"][-1] == int(((rec.array("finishes")["t"] <= 1000.0) & (rec.array("finishes")["fate"] == 1)).sum())


def test_twin_run_writes_the_replay_and_its_tables(tmp_path):
    spec = tmp_path / "cell.toml"
    spec.write_text(LINE.replace("speed_m_per_s = 1.5", "speed_m_per_s = 1.5\ndistance_m = 20"))
    out = tmp_path / "out"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        assert main(["run", str(spec), "--horizon", "1d", "--warmup", "2h", "--replications", "2",
                     "--animate", "3h+6h", "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "id='replay'" in page and "361 frames, one every 1 min" in page
    bt = pd.read_csv(out / "buffers.csv")
    assert bt["start"].min() == 3 * 3600.0 and bt["end"].max() == 9 * 3600.0
    ft = pd.read_csv(out / "flows.csv")
    kp = json.loads((out / "kpis.json").read_text())
    # the flows are the first replication's over the observation window
    first = pd.read_csv(out / "replications.csv").iloc[0]
    assert ft[ft["target"] == "good"]["units"].sum() == first["good_units"]
    assert kp["replications"] == 2
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(spec), "--horizon", "1d", "--warmup", "2h", "--replications", "1",
                     "--no-animate", "--out", str(tmp_path / "plain")]) == 0
    assert "id='replay'" not in (tmp_path / "plain" / "report.html").read_text()
    assert not (tmp_path / "plain" / "buffers.csv").exists()


@pytest.mark.parametrize("window, words", [("20h+6h", "after the horizon"), ("5h..4h", "ends before it begins"),
                                           ("5h", "not FROM..TO")])
def test_a_bad_window_is_refused(tmp_path, window, words, capsys):
    spec = tmp_path / "cell.toml"
    spec.write_text(LINE.replace("speed_m_per_s = 1.5", "speed_m_per_s = 1.5\ndistance_m = 20"))
    try:
        code = main(["run", str(spec), "--horizon", "1d", "--animate", window, "--out", str(tmp_path / "o")])
    except SystemExit as e:  # refused by the option's parser
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert "--animate" in err and words in err and "Traceback" not in err
    assert not (tmp_path / "o" / "report.html").exists()


def test_the_howto_runs_as_written(tmp_path, monkeypatch):
    """The how-to's layout is the example's, and its commands run as written."""
    import re
    import shlex
    import shutil

    page = (ROOT / "docs" / "howto" / "12_lay_out_a_line_and_watch_it.md").read_text()
    example = (ROOT / "examples" / "laid_out_line.toml").read_text()
    layout = re.search(r"```toml\n(.*?)```", page, re.S).group(1)
    assert layout.strip() in example
    spec = twin.load(ROOT / "examples" / "laid_out_line.toml")
    assert spec.transport[0].trip_m == pytest.approx(40.0)  # "the 40 m of its drawn path"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "laid_out_line.toml", tmp_path / "examples")
    commands = [shlex.split(ln.split("#")[0])[1:] for block in re.findall(r"```bash\n(.*?)```", page, re.S)
                for ln in block.splitlines() if ln.startswith("twin ")]
    assert [c[0] for c in commands] == ["validate", "run"]
    for c in commands:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(c) == 0, c
    html = (tmp_path / "laid-out" / "report.html").read_text()
    assert "361 frames, one every 2 min" in html and "the spec's <code>[layout]</code>" in html
    flows = pd.read_csv(tmp_path / "laid-out" / "flows.csv")
    pairs = set(zip(flows["source"], flows["target"]))
    assert {("weld", "bench"), ("bench", "weld"), ("weld", "touch_up")} <= pairs


def test_a_run_with_a_shift_replays_the_hours_around_it(tmp_path):
    spec = tmp_path / "cell.toml"
    spec.write_text(LINE.replace("speed_m_per_s = 1.5", "speed_m_per_s = 1.5\ndistance_m = 20").replace(
        'rate_per_hour = 50\n', 'rate_per_hour = 50\nshifts = [{kind = "step", at = "30h", factor = 1.3}]\n'))
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(spec), "--horizon", "3d", "--warmup", "2h", "--replications", "1", "--out", str(out)]) == 0
    bt = pd.read_csv(out / "buffers.csv")
    assert bt["start"].min() == 24 * 3600.0 and bt["end"].max() == 48 * 3600.0  # 6 h before to 18 h after


def test_a_vehicle_follows_its_fleets_drawn_path(tmp_path):
    text = SHUTTLE + """[layout]
stations = {a = [0, 0], b = [40, 0]}
paths = {cart = [[0, 0], [0, 10], [40, 10], [40, 0]]}
"""
    spec = _spec(tmp_path, text, "path.toml")
    assert spec.transport[0].trip_m == pytest.approx(60.0)
    rec = Model(spec, 1, 1000.0, watch=Watch(0.0, 500.0)).run(1000.0)
    data = frames(rec, build(rec).states, floorplan.plan(spec), 0.0, 500.0, step=5.0)
    at = dict(zip(data["t"], (v[0] for v in data["vehicles"])))
    # leaves a at 100 s, 60 m at 1 m/s: up the first 10 m, along 40 m, down 10 m; back the same way
    assert at[105.0] == pytest.approx([0.0, 5.0]) and at[130.0] == pytest.approx([20.0, 10.0])
    assert at[155.0] == pytest.approx([40.0, 5.0]) and at[190.0] == pytest.approx([20.0, 10.0])
