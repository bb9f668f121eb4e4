"""Starting a line from a snapshot of its state (issue 27, part 1): residual laws, hand-computed
completions, a restart that reproduces the state it started from, and long-run agreement."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pytest
from scipy import integrate, stats

from twin import dists as D
from twin.cli import main
from twin.model import Model
from twin.runs import run_once
from twin.snapshot import Snapshot, SnapshotError, parse, problems
from twin.spec import validate

# --------------------------------------------------------------------------- residual laws
_S2 = math.log(1 + 0.8 ** 2)
LAWS = [  # our distribution and scipy's own, independently parametrised
    (D.Lognormal(mean=100, cv=0.8), stats.lognorm(s=math.sqrt(_S2), scale=100 / math.sqrt(1 + 0.8 ** 2))),
    (D.Gamma(mean=100, cv=0.5), stats.gamma(4, scale=25)),
    (D.Weibull(shape=2, scale=100), stats.weibull_min(2, scale=100)),
    (D.Weibull(shape=0.7, scale=100), stats.weibull_min(0.7, scale=100)),
    (D.Uniform(low=20, high=150), stats.uniform(20, 130)),
    (D.Triangular(low=10, mode=40, high=200), stats.triang(30 / 190, loc=10, scale=190)),
]


@pytest.mark.parametrize("law,ref", LAWS, ids=lambda x: type(x).__name__)
@pytest.mark.parametrize("elapsed", [0.0, 30.0, 80.0, 140.0])
def test_the_residual_law_is_the_conditional_law(law, ref, elapsed):
    # KS against scipy's conditional CDF (F(e + x) - F(e)) / S(e), and the mean residual life
    # against its integral ∫ S / S(e); 3,000 draws: KS's 1e-3 level is a 1-in-1000 false alarm per case,
    # the mean within 4 standard errors
    rng = np.random.default_rng(17)
    x = np.array([D.residual(law, elapsed, rng) for _ in range(3000)])
    assert (x >= 0).all()
    surv = ref.sf(elapsed)
    assert stats.kstest(x + elapsed, lambda y: 1 - ref.sf(np.maximum(y, elapsed)) / surv).pvalue > 1e-3
    mrl = integrate.quad(ref.sf, elapsed, np.inf)[0] / surv
    assert abs(x.mean() - mrl) < 4 * x.std() / math.sqrt(len(x))


def test_the_truncated_normal_residual():
    law = D.Normal(mean=60, cv=0.5)
    mu, sd, _ = D.truncated_normal(60, 0.5)
    ref = stats.truncnorm(-mu / sd, np.inf, loc=mu, scale=sd)
    rng = np.random.default_rng(3)
    for e in (0.0, 50.0, 100.0):
        x = np.array([D.residual(law, e, rng) for _ in range(3000)])
        assert stats.kstest(x + e, lambda y, e=e: 1 - ref.sf(np.maximum(y, e)) / ref.sf(e)).pvalue > 1e-3


def test_memoryless_constant_and_empirical_residuals():
    rng = np.random.default_rng(5)
    # exponential: the residual is the law itself, whatever the age
    x = np.array([D.residual(D.Exponential(mean=50), 400.0, rng) for _ in range(3000)])
    assert stats.kstest(x, stats.expon(scale=50).cdf).pvalue > 1e-3
    assert D.residual(D.Constant(value=30), 12.0, rng) == 18.0
    assert D.residual(D.Constant(value=30), 40.0, rng) == 0.0  # overdue: done now
    assert D.residual(D.Uniform(low=1, high=5), 7.0, rng) == 0.0
    emp = D.Empirical(values=[10, 20, 30, 40])
    got = {D.residual(emp, 25.0, rng) for _ in range(200)}
    assert got == {5.0, 15.0}  # only the values beyond 25 s remain, each equally likely
    # a lot of 4 units of a gamma(cv 0.5) unit law: the engine's lot law is gamma(mean 400, var 4·2500)
    lot = np.array([D.residual(D.Gamma(mean=100, cv=0.5), 300.0, rng, qty=4) for _ in range(3000)])
    ref = stats.gamma(16, scale=25)
    assert stats.kstest(lot + 300, lambda y: 1 - ref.sf(np.maximum(y, 300)) / ref.sf(300)).pvalue > 1e-3


# --------------------------------------------------------------------------- hand-computed starts
DET = """
name = "det"
[source]
kind = "poisson"
rate_per_hour = 1e-6
[[products]]
name = "a"
route = ["m1", "m2"]
[[products]]
name = "b"
route = ["m1", "m2"]
[[stations]]
name = "m1"
process_time = 10.0
setup = { default = 7.0 }
failures = { ttf = 1000.0, ttr = 600.0 }
buffer = 5
[[stations]]
name = "m2"
process_time = 30.0
buffer = 5
"""


def _spec(text):
    return validate(tomllib.loads(text))


def test_deterministic_times_give_hand_computed_completions():
    snap = parse({
        "time": 1000.0,
        "servers": [
            # m1: 4 s into a lot of a, 990 s old: 10 s of life left, so it fails 6 s after the lot ends
            {"station": "m1", "server": 0, "state": "busy", "lot": {"id": 40, "product": "a", "qty": 1},
             "job_elapsed": 4.0, "age": 990.0, "last_product": "a"},
            # m2: 25 s into its lot: done at 1005
            {"station": "m2", "server": 0, "state": "busy", "since": 25.0, "lot": {"id": 39, "product": "a", "qty": 1}},
        ],
        "buffers": [{"station": "m1", "lots": [{"id": 41, "product": "b", "qty": 1}]},
                    {"station": "m2", "lots": [{"id": 38, "product": "a", "qty": 1, "released": 900.0}]}],
    })
    res = run_once(_spec(DET), 3600.0, 0.0, 1, state=snap)
    lots = res.lots.set_index("lot")
    # the record numbers the snapshot's lots 0.. in the order given (servers, then buffers)
    done = dict(zip(lots.index, lots.t_done))
    # m2: 39 ends at 1005, then 38 (waiting) at 1035; m1: 40 ends at 1006 and joins m2's queue
    # behind 38, so it ends at 1065. m1 then sets up for b (7 s: 1006-1013), fails after 4 s of
    # b's work (its 10 s of life) at 1017, is repaired at 1617 and ends b at 1623; m2 ends it at 1653
    assert done[1] == pytest.approx(1005.0)  # lot 39
    assert done[3] == pytest.approx(1035.0)  # lot 38
    assert done[0] == pytest.approx(1065.0)  # lot 40
    assert done[2] == pytest.approx(1653.0)  # lot 41
    assert lots.loc[3, "t_release"] == 900.0 and lots.loc[0, "t_release"] == 1000.0
    maint = res.record.array("maint")
    assert maint["t"].tolist() == pytest.approx([1017.0]) and maint["duration"].tolist() == pytest.approx([600.0])
    # the hourly series begins at the snapshot: 4 lots in the line at 1000 s, all 4 out by 1653 s
    ts = res.timeseries
    assert ts.t_start.iloc[0] == 1000.0 and ts.t_end.iloc[-1] == 4600.0
    assert ts.good.tolist() == [4.0] and ts.wip.tolist() == [0.0]
    res2 = run_once(_spec(DET), 600.0, 0.0, 1, state=snap)  # to 1600: lot 41 is still in the line
    assert res2.timeseries.wip.tolist() == [1.0] and res2.kpis.good_units.iloc[0] == 3


def test_a_down_server_resumes_its_repair_and_then_its_job():
    snap = parse({"time": 500.0, "servers": [
        {"station": "m1", "server": 0, "state": "down", "since": 200.0, "job_elapsed": 3.0,
         "lot": {"id": 7, "product": "a", "qty": 1}}]})
    res = run_once(_spec(DET), 2000.0, 0.0, 1, state=snap)
    # 400 s of repair left (constant 600), then 7 s of work at m1 and 30 s at m2
    assert res.lots.t_done.tolist() == pytest.approx([500 + 400 + 7 + 30])
    st = res.states[res.states.station == "m1"]
    assert st.state.tolist()[:2] == ["down", "busy"] and st.end.tolist()[0] == pytest.approx(900.0)


# --------------------------------------------------------------------------- a restart reproduces the state
RICH = """
name = "rich"
[source]
kind = "poisson"
rate_per_hour = 70
[[products]]
name = "a"
route = ["cut", "weld", "test"]
share = 0.6
[[products]]
name = "b"
route = ["cut", "weld", "test"]
share = 0.4
[[stations]]
name = "cut"
process_time = { dist = "gamma", mean = "40s", cv = 0.5 }
setup = { default = { dist = "uniform", low = "30s", high = "90s" } }
buffer = 6
[[stations]]
name = "weld"
servers = 2
process_time = { dist = "lognormal", mean = "90s", cv = 0.7 }
failures = { ttf = { dist = "weibull", shape = 1.6, scale = "40min" }, ttr = { dist = "triangular", low = "2min", mode = "4min", high = "10min" } }
buffer = 3
[[stations]]
name = "test"
process_time = { dist = "exponential", mean = "45s" }
failures = { ttf = { dist = "gamma", mean = "1h", cv = 0.8 }, ttr = "5min", basis = "calendar" }
buffer = 4
"""


def _comparable(snap: Snapshot, eps: float) -> dict:
    d = json.loads(snap.to_json())
    for s in d["servers"]:
        s.pop("since")  # a restart's spell begins at the snapshot
    return d


@pytest.mark.parametrize("t,shows", [(14433.3, "blocked"), (21601.1, "down"), (25299.0, "setup")])
def test_a_snapshot_restarted_reproduces_the_state_it_was_taken_in(t, shows):
    spec = _spec(RICH)
    a = Model(spec, 11, 10 * 3600)
    a.run(t)
    snap = a.snapshot()
    states = {s.state for s in snap.servers}
    assert shows in states and sum(len(b.lots) for b in snap.buffers) > 0
    b = Model(spec, 99, t + 3600, state=Snapshot.model_validate_json(snap.to_json()))
    eps = 1e-7
    b._advance(t + eps)
    again = b.snapshot()
    want, got = _comparable(snap, eps), _comparable(again, eps)
    want["time"] = pytest.approx(got["time"])
    for s in want["servers"]:
        # the work and the age go on for the instant the restart advanced
        for k in ("job_elapsed", "age"):
            if k in s:
                s[k] = pytest.approx(s[k], abs=1e-5)
    assert got == want
    b._advance(t + 1800)  # and it runs on as a line does: every lot where its route puts it
    later = b.snapshot()
    assert not problems(later, spec) and later.lots()


def test_an_exponential_line_started_mid_state_has_the_long_run_throughput_of_one_started_empty():
    # an open Jackson line at ρ = 0.8 and 0.6 started with 25 lots queued and both servers busy: over
    # 120 h the backlog is worked off, and the mean throughput of 12 replications equals the one started
    # empty within 4 standard errors of the difference (and both the arrival rate, 60/h, within 3 %)
    text = """
name = "mm"
[source]
kind = "poisson"
rate_per_hour = 60
[[products]]
name = "p"
route = ["s1", "s2"]
[[stations]]
name = "s1"
process_time = { dist = "exponential", mean = "48s" }
[[stations]]
name = "s2"
process_time = { dist = "exponential", mean = "36s" }
"""
    spec = _spec(text)
    snap = parse({"time": 7200.0, "servers": [
        {"station": "s1", "server": 0, "state": "busy", "lot": {"id": 0, "product": "p", "qty": 1}, "job_elapsed": 30},
        {"station": "s2", "server": 0, "state": "busy", "lot": {"id": 1, "product": "p", "qty": 1}}],
        "buffers": [{"station": "s1", "lots": [{"id": 2 + i, "product": "p", "qty": 1} for i in range(25)]}]})
    h = 120 * 3600.0
    full = [run_once(spec, h, 0.0, 100 + r, state=snap).kpis.throughput_per_hour.iloc[0] for r in range(12)]
    empty = [run_once(spec, h, 0.0, 200 + r).kpis.throughput_per_hour.iloc[0] for r in range(12)]
    se = math.sqrt(np.var(full, ddof=1) / 12 + np.var(empty, ddof=1) / 12)
    assert abs(np.mean(full) - np.mean(empty)) < 4 * se
    assert np.mean(empty) == pytest.approx(60, rel=0.03) and np.mean(full) == pytest.approx(60, rel=0.03)


# --------------------------------------------------------------------------- bad snapshots
@pytest.mark.parametrize("body,message", [
    ({"servers": [{"station": "nope", "server": 0, "state": "idle"}]}, "servers[0].station: unknown station 'nope'"),
    ({"servers": [{"station": "m1", "server": 3, "state": "idle"}]}, "servers[0].server: station m1 has servers 0..0"),
    ({"servers": [{"station": "m1", "server": 0, "state": "busy"}]}, "servers[0].lot: a server in state busy holds a lot"),
    ({"servers": [{"station": "m2", "server": 0, "state": "down", "lot": None}]}, "station m2 has no failures"),
    ({"servers": [{"station": "m1", "server": 0, "state": "sleeping"}]}, "servers.0.state"),
    ({"buffers": [{"station": "m2", "lots": [{"id": i, "product": "a", "qty": 1} for i in range(6)]}]},
     "buffers[0].lots: 6 lots in a buffer of 5 places"),
    ({"buffers": [{"station": "m2", "lots": [{"id": 1, "product": "zz", "qty": 1}]}]}, "unknown product 'zz'"),
    ({"time": -5}, "time: Input should be greater than or equal to 0"),
])
def test_a_bad_snapshot_is_refused_naming_the_file_and_field(tmp_path, capsys, body, message):
    spec = tmp_path / "det.toml"
    spec.write_text(DET)
    snap = tmp_path / "s.json"
    snap.write_text(json.dumps(body))
    assert main(["run", str(spec), "--from-state", str(snap), "--horizon", "1h", "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{snap}: " in err and message in err and "Traceback" not in err


def test_a_spec_a_snapshot_cannot_carry_is_refused():
    spec = _spec(DET.replace('kind = "poisson"\nrate_per_hour = 1e-6', 'kind = "saturated"').replace(
        'buffer = 5\n[[stations]]\nname = "m2"', 'buffer = 5\nbatch = { size = 2 }\n[[stations]]\nname = "m2"'))
    with pytest.raises(SnapshotError, match="batch stations"):
        Model(spec, 1, 100.0, state=parse({}))


def test_cli_writes_a_state_and_starts_from_it(tmp_path, capsys):
    spec = tmp_path / "rich.toml"
    spec.write_text(RICH)
    s1 = tmp_path / "s1.json"
    assert main(["run", str(spec), "--horizon", "2h", "--replications", "1", "--write-state", str(s1), "-q"]) == 0
    snap = Snapshot.model_validate_json(s1.read_text())
    assert snap.time == 7200.0 and snap.spec == "rich"
    capsys.readouterr()
    assert main(["run", str(spec), "--from-state", str(s1), "--horizon", "1h", "--replications", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from_state"]["time"] == 7200.0 and out["warmup_method"] == "a state start"
    assert main(["run", str(spec), "--from-state", str(s1), "--warmup", "1h", "-q"]) == 2
    assert "no warm-up" in capsys.readouterr().err
