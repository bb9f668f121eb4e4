"""Robustness, round three (issue 30): one section per root cause, each generating several
instances of it. Timeouts only guard against hangs; nothing here measures wall time."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

import twin
from twin.policies.capacity import lane_rate_per_hour

ROOT = Path(__file__).resolve().parent.parent
BASE = tomllib.loads((ROOT / "examples" / "two_machine.toml").read_text())


def _twin(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI in a child process: an input that hangs must not hang the suite."""
    return subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in this process (no interpreter to start: these inputs are refused or run at once;
    the cases that could hang use :func:`_twin`)."""
    from twin.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


def _base() -> dict:
    d = json.loads(json.dumps(BASE))
    d["run"].update({"horizon": "1d", "warmup": 0, "replications": 1})
    return d


def _write(tmp_path: Path, data: dict, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(tomli_w.dumps(data))
    return p


def _refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


# --------------------------------------------------------------------------- 1. time that stops advancing
TINY = st.sampled_from([0.0, 1e-300, 1e-12, 1e-3, 0.5, 0.999])
PERIODIC = {  # where a repeating interval lives, and the field the refusal names
    "failures": (lambda s, v: s.update(failures={"ttf": v, "ttr": 60}), "stations.smt.failures.ttf"),
    "failures_exp": (lambda s, v: s.update(failures={"ttf": {"dist": "exponential", "mean": max(v, 1e-300)}, "ttr": 60}),
                     "stations.smt.failures.ttf"),
    "minor_stops": (lambda s, v: s.update(minor_stops={"every": v, "duration": v}), "stations.smt.minor_stops.every"),
    "maintenance": (lambda s, v: s.update(maintenance={"policy": "preventive", "interval": max(v, 1e-300), "duration": 1}),
                    "stations.smt.maintenance.interval"),
    "reading_every": (lambda s, v: s.update(failures={"degradation": {"wear_life": 3600, "reading_every": max(v, 1e-300)},
                                                      "ttr": 60}, maintenance={"policy": "predictive"}),
                      "stations.smt.failures.degradation.reading_every"),
    "wear_life": (lambda s, v: s.update(failures={"degradation": {"wear_life": max(v, 1e-300)}, "ttr": 60}),
                  "stations.smt.failures.degradation.wear_life"),
}


@settings(max_examples=25, deadline=None, derandomize=True)
@given(where=st.sampled_from(sorted(PERIODIC)), value=TINY)
def test_a_repeating_interval_under_a_second_is_refused_naming_its_field(where, value):
    data = _base()
    put, field = PERIODIC[where]
    put(data["stations"][0], value)
    with pytest.raises(twin.SpecError) as e:
        twin.validate(data, source="spec.toml")
    assert any(field in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("review", [0.0, 1e-300, 0.2])
def test_a_component_review_under_a_second_is_refused(review):
    data = _base()
    data["components"] = [{"name": "chip", "policy": "RS", "order_up_to": 100, "review": review,
                           "supplier": {"lead_time": 60}}]
    data["products"][0]["bom"] = {"chip": 1}
    with pytest.raises(twin.SpecError) as e:
        twin.validate(data, source="spec.toml")
    assert any("components.chip.review" in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("p_back", [0.99999] + [pytest.param(p, marks=pytest.mark.slow)  # one in the default run
                                    for p in (0.999999, 0.9999999)])
def test_a_zero_time_retest_loop_stops_with_a_message_not_a_hang(tmp_path, p_back):
    # each lot loops ~1/(1 - p) times at a station that takes no time: valid, but simulated time
    # stands still; the run-time watchdog stops it whether or not the loop records anything
    # (0.99999 loops 1e5 times a lot: time advances, but over 4 weeks the run would need ~4e9
    # events, past the 2e9 twin stops at; the others stand still within a lot)
    data = _base()
    data["run"]["horizon"] = "4w"
    data["stations"][1]["process_time"] = 0
    data["stations"][1]["routing"] = {data["stations"][1]["name"]: p_back}
    out = tmp_path / "out"
    r = _twin("run", str(_write(tmp_path, data)), "--out", str(out))
    _refused(r, "simulated time", "retest or rework loop", "events moved it by")
    assert not out.exists()


def test_a_zero_time_detour_loop_stops_with_a_message(tmp_path):
    data = _base()
    a, b = data["stations"][0]["name"], data["stations"][1]["name"]
    data["stations"].append({"name": "bench", "process_time": 0})
    data["stations"][1]["process_time"] = 0
    data["stations"][1]["routing"] = {"bench": 0.9999999}
    r = _twin("run", str(_write(tmp_path, data)), "--replications", "1")
    _refused(r, "simulated time stopped advancing")
    assert a and b


def test_the_watchdog_changes_no_result():
    # the run loop with its watchdog processes the same events as simpy's own run(): a run is
    # bit-identical to one advanced by env.run (the engine's other tests hold its numbers)
    spec = twin.load(ROOT / "examples" / "two_machine.toml")
    m1 = twin.Model(spec, seed=7, horizon=2 * 86400.0)
    r1 = m1.run(2 * 86400.0, warmup=3600.0)
    m2 = twin.Model(spec, seed=7, horizon=2 * 86400.0)
    m2.env.run(until=3600.0)
    m2.rec.counters_at_warmup = m2.counters()
    m2.env.run(until=2 * 86400.0)
    r2 = m2.finish(2 * 86400.0, 3600.0)
    assert r1.finishes == r2.finishes and len(r1.finishes) > 100
    assert r1.states == r2.states


# --------------------------------------------------------------------------- 2. rates at the edge
@settings(max_examples=60, deadline=None, derandomize=True)
@given(ttf=st.floats(1.0, 1e7), ttr=st.floats(0.0, 1e7), every=st.floats(1.0, 1e6), dur=st.floats(0.0, 1e6),
       retest=st.floats(0.0, 0.999))
def test_a_lane_rate_is_finite_and_positive_for_every_valid_spec(ttf, ttr, every, dur, retest):
    data = _base()
    s = data["stations"][0]
    s.update(failures={"ttf": ttf, "ttr": ttr}, minor_stops={"every": every, "duration": dur})
    s["routing"] = {s["name"]: retest}
    spec = twin.validate(data, source="spec.toml")
    rate = lane_rate_per_hour(spec)
    assert np.isfinite(rate) and rate > 0


@pytest.mark.parametrize("fields", [{"failures": {"ttf": 0, "ttr": 0}}, {"minor_stops": {"every": 0, "duration": 0}},
                                    {"failures": {"ttf": 0, "ttr": 5}, "minor_stops": {"every": 0, "duration": 1}}])
def test_zero_intervals_are_refused_before_any_rate_is_computed(tmp_path, fields):
    data = _base()
    data["stations"][0].update(fields)
    r = _twin("validate", str(_write(tmp_path, data)))
    _refused(r, "at least 1 s")


# --------------------------------------------------------------------------- 3. loops that never leave
def _absorption(route: list[str], routing: dict[str, dict[str, float]]) -> np.ndarray:
    """Probability that a lot at each step of ``route`` ever leaves it, solved as an absorbing
    Markov chain, (I - Q) x = r, by linear algebra (independently of the validator's graph search).
    The engine's rules: a retest or a detour comes back to the same step; a station of the route
    sends the lot to its nearest visit at or before this step, else the first after it."""
    n = len(route)
    Q = np.zeros((n, n))
    r = np.zeros(n)
    for i, s in enumerate(route):
        rt = routing.get(s, {})
        stay = 1.0 - sum(rt.values())
        if i + 1 < n:
            Q[i, i + 1] += stay
        else:
            r[i] += stay
        for t, q in rt.items():
            if t == s or t not in route:
                Q[i, i] += q
            else:
                j = next((k for k in range(i, -1, -1) if route[k] == t), route.index(t))
                Q[i, j] += q
    # states that cannot reach the exit make I - Q singular: solve by least squares on the
    # reachable-to-exit part (iterating x = Qx + r converges to the absorption probability)
    x = np.zeros(n)
    for _ in range(20_000):
        x = Q @ x + r
    return x


def _reachable(route, routing):
    n = len(route)
    seen, todo = {0}, [0]
    while todo:
        i = todo.pop()
        s = route[i]
        rt = {t: q for t, q in routing.get(s, {}).items() if q > 0}
        nxt = set()
        if sum(rt.values()) < 1 - 1e-12 and i + 1 < n:
            nxt.add(i + 1)
        for t in rt:
            if t in route and t != s:
                nxt.add(next((k for k in range(i, -1, -1) if route[k] == t), route.index(t)))
        for j in nxt - seen:
            seen.add(j)
            todo.append(j)
    return seen


STATIONS = ["a", "b", "c", "d"]


@st.composite
def routings(draw):
    route = draw(st.lists(st.sampled_from(STATIONS), min_size=1, max_size=5))
    present = sorted(set(route))
    routing: dict[str, dict[str, float]] = {}
    for s in present:
        targets = draw(st.lists(st.sampled_from(STATIONS + ["bench"]), max_size=2, unique=True))
        probs = draw(st.lists(st.sampled_from([0.0, 0.3, 0.5, 1.0]), min_size=len(targets), max_size=len(targets)))
        rt = {t: q for t, q in zip(targets, probs)}
        total = sum(rt.values())
        if total > 1:
            rt = {t: q / total for t, q in rt.items()}
        if rt.get(s, 0) >= 1:
            rt[s] = 0.5  # the in-place retest with probability 1 has its own, older message
        routing[s] = {t: q for t, q in rt.items() if q > 0}
    return route, routing


@settings(max_examples=150, deadline=None, derandomize=True)
@given(case=routings())
def test_a_route_is_refused_exactly_when_its_absorbing_chain_can_trap_a_lot(case):
    route, routing = case
    stations = [{"name": s, "process_time": 10, **({"routing": routing[s]} if routing.get(s) else {})}
                for s in STATIONS + ["bench"]]
    data = {"name": "loops", "stations": stations, "products": [{"name": "p", "route": route}],
            "source": {"kind": "saturated"}}
    x = _absorption(route, routing)
    trapped = any(x[i] < 1 - 1e-6 for i in _reachable(route, routing))
    try:
        twin.validate(data, source="loops.toml")
        refused = False
    except twin.SpecError as e:
        assert all("never leave" in p for p in e.problems if "routing" in p), e.problems
        refused = any("never leave" in p for p in e.problems)
    assert refused == trapped, (route, routing, x)


@pytest.mark.parametrize("routing", [{"assembly": {"smt": 1.0}}] + [pytest.param(r, marks=pytest.mark.slow)  # one by default
                                     for r in ({"assembly": {"smt": 0.5, "assembly": 0.5}},
                                               {"smt": {"assembly": 0.4}, "assembly": {"smt": 1.0}})])
def test_a_loop_that_never_leaves_is_refused_by_validate_and_run(tmp_path, routing):
    data = _base()
    for s in data["stations"]:
        if s["name"] in routing:
            s["routing"] = routing[s["name"]]
    path = _write(tmp_path, data)
    for cmd in ("validate", "run"):
        _refused(_twin(cmd, str(path)), "never leave its route", "stations.")


def _nothing_reason(data: dict) -> str | None:
    from twin.results import why_nothing
    from twin.stats import summarize
    spec = twin.validate(data, source="spec.toml")
    return why_nothing(spec, summarize(twin.simulate(spec)))


# each way of making nothing, and the words its reason must have
NOTHING = {
    "route longer than the run": (lambda d, x: (d["run"].update(horizon=f"{x}h"),
                                                d["stations"][1].update(process_time=3600 * x + 60)),
                                  "lengthen the horizon"),
    "a station always down": (lambda d, x: d["stations"][1].update(failures={"ttf": 5 * x, "ttr": 1e8}),
                              "'assembly', on every route, was stopped"),
    "everything scrapped": (lambda d, x: d["stations"][1].update(quality={"defect_rate": 1.0, "inspect": "inline"}),
                            "scrapped"),
    "nothing released": (lambda d, x: d.update(source={"kind": "poisson", "rate_per_hour": 1e-6 * x}),
                         "released nothing"),
}


@pytest.mark.parametrize("case", sorted(NOTHING))
@pytest.mark.parametrize("x", [1, 3])
def test_a_run_that_makes_nothing_says_why(case, x):
    data = _base()
    put, words = NOTHING[case]
    put(data, x)
    reason = _nothing_reason(data)
    assert reason is not None and words in reason, reason


@pytest.mark.parametrize("rate", [1e-9, 3e-7])
def test_an_arrival_rate_slower_than_any_duration_is_refused(rate):
    data = _base()
    data["source"] = {"kind": "poisson", "rate_per_hour": rate}
    with pytest.raises(twin.SpecError) as e:
        twin.validate(data, source="spec.toml")
    assert any("source.rate_per_hour" in p for p in e.value.problems), e.value.problems


@pytest.mark.slow  # the reference factories run through the CLI: 7 s (the default run is held to 4 min)
def test_a_run_that_makes_something_gives_no_reason_and_the_cli_shows_one(tmp_path):
    assert _nothing_reason(_base()) is None
    data = _base()
    NOTHING["route longer than the run"][0](data, 1)
    spec = _write(tmp_path, data)
    r = _twin("run", str(spec), "--json")
    assert r.returncode == 0, r.stderr
    assert "lengthen the horizon" in json.loads(r.stdout)["nothing_made"]
    r = _twin("run", str(spec), "--out", str(tmp_path / "out"))
    assert r.returncode == 0 and "nothing made: a lot takes" in r.stdout, r.stdout
    assert "Nothing made:" in (tmp_path / "out" / "report.html").read_text()
    assert "nothing_made" not in json.loads(_twin("run", str(_write(tmp_path, _base(), "ok.toml")), "--json").stdout)


# --------------------------------------------------------------------------- 5. a full disk
def _limited(limit: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI with a file-size limit (RLIMIT_FSIZE): the kernel refuses every write past
    ``limit`` bytes (EFBIG), the way a full disk refuses it (ENOSPC), without needing one."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, timeout=300, cwd=cwd, preexec_fn=cap,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


WRITERS = {  # a command, and the output it writes (made inside a folder that does not exist yet)
    "run --out": (lambda spec, o: ["run", spec, "--replications", "1", "--out", str(o / "res")], "res"),
    "run --event-log": (lambda spec, o: ["run", spec, "--replications", "1", "--event-log", str(o / "logs" / "e.csv")],
                        "logs"),
    "sweep --out": (lambda spec, o: ["sweep", spec, "--vary", "stations.smt.buffer=1,2", "--replications", "1",
                                     "--out", str(o / "sw")], "sw"),
    "init": (lambda spec, o: ["init", str(o / "new" / "line.toml")], "new"),
    "compare --out": (lambda spec, o: ["compare", "--quick", "--replications", "1", "--scenarios", "baseline",
                                       "--out", str(o / "cmp")], "cmp"),
}


@pytest.mark.parametrize("limit", [0, 700])
@pytest.mark.parametrize("writer", [pytest.param(w, marks=pytest.mark.slow) if w == "compare --out" else w
                                    for w in sorted(WRITERS)])  # compare's grid run is the slow one
def test_a_write_the_disk_refuses_is_one_message_and_leaves_nothing(tmp_path, writer, limit):
    data = _base()
    data["run"]["horizon"] = "2h"
    spec = _write(tmp_path, data)
    make, made = WRITERS[writer]
    out = tmp_path / "o"
    out.mkdir()
    r = _limited(limit, *make(str(spec), out), cwd=tmp_path)
    _refused(r, "cannot write it", "file-size limit", "nothing was written there")
    assert str(out) in r.stderr
    assert list(out.iterdir()) == [], [str(p) for p in out.rglob("*")]  # no folder, file or temporary left


@pytest.mark.parametrize("fail_at", ["fsync", "replace", "mkstemp"])
def test_a_full_disk_names_the_path_the_bytes_and_what_is_free(tmp_path, monkeypatch, fail_at):
    import errno

    import twin.io as tio

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    target = {"fsync": (tio.os, "fsync"), "replace": (tio.os, "replace"), "mkstemp": (tio.tempfile, "mkstemp")}[fail_at]
    before = tmp_path / "kept.csv"
    before.write_text("old\n")
    monkeypatch.setattr(*target, full)
    for path in (before, tmp_path / "a" / "b" / "new.csv"):
        with pytest.raises(twin.SpecError) as e:
            tio.atomic_write_text(path, "x" * 1234)
        msg = e.value.problems[0]
        assert str(path) in msg and "disk (or quota) is full" in msg and "1,234 bytes" in msg and "bytes free" in msg
    monkeypatch.undo()
    assert before.read_text() == "old\n"  # the file that was there is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]  # no temporary, no folder a/b


def test_a_compare_that_fills_the_disk_mid_run_keeps_its_jobs_for_resume(tmp_path, monkeypatch):
    import errno

    import twin.io as tio
    from twin.compare import Grid, run_grid

    real, calls = tio.atomic_write_bytes, []

    def fill_after_three(path, data):
        calls.append(path)
        if len(calls) > 3:
            raise tio.write_error(OSError(errno.ENOSPC, "No space left on device"), Path(path), len(data))
        real(path, data)

    grid = Grid(factories=["static-line"], scenarios=["baseline"], replications=3, weeks=0.2, warmup=0.0, seed=3)
    monkeypatch.setattr(tio, "atomic_write_bytes", fill_after_three)
    monkeypatch.setattr("twin.io.atomic_write_bytes", fill_after_three)
    with pytest.raises(twin.SpecError) as e:
        run_grid(grid, out=tmp_path / "cmp")
    assert any("kept in" in p and "--resume" in p for p in e.value.problems), e.value.problems
    assert len(list((tmp_path / "cmp" / "jobs").glob("*.json"))) == 3  # grid.json and two finished jobs


# --------------------------------------------------------------------------- 6. uncertainty entries that match nothing
def _unc(*entries: tuple[str, str]):
    from twin.uncertainty import UncertaintyFile

    return UncertaintyFile(parameter=[{"name": f"p{i}", "factory": f, "path": path, "scale": [0.5, 1.5],
                                       "reason": "test"} for i, (f, path) in enumerate(entries)])


@pytest.fixture(scope="module")
def tiny():
    return {"tiny.toml": twin.load(ROOT / "examples" / "two_machine.toml"),
            "dark-factory": twin.load(ROOT / "lines" / "dark_factory.toml")}


@pytest.mark.parametrize("entries,needle", [
    ([("tinny", "stations.smt.buffer")], "factory 'tinny' is not in this comparison"),
    ([("tiny.tom", "stations.smt.buffer")], "factory 'tiny.tom' is not in this comparison"),
    ([("*", "stations.nowhere.buffer")], "matches nothing in any factory"),
    ([("*", "costs.no_such_price")], "matches nothing in any factory"),
    ([("tiny", "stations.smt.buffer"), ("*", "stations.*.buffer"), ("Tiny", "stations.smt.buffer")],
     "parameter.2 (p2): factory 'Tiny'"),
    ([("microfactory", "costs.capex_per_lane")], "no parameter concerns a factory of this comparison"),
])
def test_an_uncertainty_entry_that_matches_nothing_is_an_error_naming_it(tiny, entries, needle):
    from twin import uncertainty

    with pytest.raises(twin.SpecError) as e:
        d = uncertainty.resolve(_unc(*entries), "u.toml", tiny)
        uncertainty.draws(d, "u.toml", tiny, 2, seed=1)
    assert any(needle in p and p.startswith("u.toml: ") for p in e.value.problems), e.value.problems


def test_an_entry_named_by_the_file_stem_or_the_spec_name_varies_that_factory(tiny):
    from twin import uncertainty

    pars = uncertainty.resolve(_unc(("tiny", "stations.smt.process_time.mean"),
                                    ("two-machine line", "stations.assembly.process_time.value"),
                                    ("microfactory", "costs.capex_per_lane")), "u.toml", tiny)
    assert [p.factory for p in pars.parameter] == ["tiny.toml", "tiny.toml", "microfactory"]  # a built-in not compared stays
    d = uncertainty.draws(pars, "u.toml", tiny, 4, seed=1)
    smt = [w["tiny.toml"].stations[0].process_time.mean for w in d.worlds]
    asm = [w["tiny.toml"].stations[1].process_time.mean for w in d.worlds]
    assert len(set(smt)) > 1 and len(set(asm)) > 1  # both varied, across worlds
    assert all(w["dark-factory"] == tiny["dark-factory"] for w in d.worlds)  # nothing there was varied


# --------------------------------------------------------------------------- 8. twin ablate's names
@pytest.mark.parametrize("name", ["all", "full", "ALL", "Full"])
def test_a_capability_named_like_an_ablation_run_is_refused(name):
    data = tomllib.loads((ROOT / "lines" / "dark_factory.toml").read_text())
    data["capabilities"][1]["name"] = name
    with pytest.raises(twin.SpecError) as e:
        twin.validate(data, source="dark.toml")
    assert any("capabilities.1.name" in p and "twin ablate" in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("scenarios", [["baseline", "baseline"], ["surge", "baseline", "surge"], ["baseline,baseline"],
                                       ["baseline", str(ROOT / "benchmarks" / "scenarios" / "baseline.toml")]])
@pytest.mark.parametrize("command", ["ablate", "optimize"])
def test_a_scenario_given_twice_is_refused_before_anything_runs(tmp_path, scenarios, command):
    args = (["ablate", "dark-factory", "--scenarios", *scenarios] if command == "ablate" else
            ["optimize", "dark-factory", "--vary", "capacity.initial_lanes=11,12", "--minimize", "conversion_cost",
             "--scenarios", *scenarios])
    r = _twin(*args, "--out", str(tmp_path / "o"))
    _refused(r, "--scenarios", "is given twice")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- 9. units and ranges
@pytest.mark.parametrize("value,needle", [
    ("2h", "not a duration"), ("1.1", "not a duration"), (-1, "at least 1"), (0.9, "at least 1"), (True, "is a number"),
    ({"dist": "uniform", "low": 1, "high": "2h"}, "high: a factor is a plain number"),
    ({"dist": "uniform", "low": 0.5, "high": 1.5}, "low: a factor must be at least 1"),
    ({"dist": "triangular", "low": 1, "mode": 0.9, "high": 2}, "mode: a factor must be at least 1"),
    ({"dist": "empirical", "values": [1.0, 0.5]}, "values[1]"),
    ({"dist": "exponential", "mean": 1.1}, "can draw factors below 1"),
    ({"dist": "lognormal", "mean": 1.2, "cv": 0.1}, "can draw factors below 1"),
    ({"dist": "gamma", "mean": 2, "cv": 0.1}, "can draw factors below 1"),
])
def test_a_speed_loss_is_a_factor_of_at_least_one_never_a_duration(value, needle):
    d = _base()
    d["stations"][0]["speed_loss"] = value
    with pytest.raises(twin.SpecError) as e:
        twin.validate(d, source="s.toml")
    msg = " ".join(e.value.problems)
    assert "stations.smt.speed_loss" in msg and needle in msg, msg
    assert " s)" not in msg and "got -1 s" not in msg  # a factor is not called a duration


@settings(max_examples=30, deadline=None, derandomize=True)
@given(low=st.floats(1.0, 3.0), width=st.floats(0.01, 2.0))
def test_every_drawn_speed_loss_is_at_least_one(low, width):
    d = _base()
    d["stations"][0]["speed_loss"] = {"dist": "uniform", "low": low, "high": low + width}
    spec = twin.validate(d, source="s.toml")
    sampler = twin.dists.Sampler(spec.stations[0].speed_loss, np.random.default_rng(1))
    draws = [sampler.one() for _ in range(200)]
    assert min(draws) >= 1.0 and min(draws) >= low


def _fleets(*fleets: dict) -> dict:
    d = _base()
    d["transport"] = [{"name": f"f{i}", "travel_time": 10, **f} for i, f in enumerate(fleets)]
    return d


@pytest.mark.parametrize("fleets,field,needle", [
    ([{"moves": [["smt", "assembly"]]}, {"moves": [["smt", "assembly"]]}], "transport.f1.moves.0", "already served by fleet 'f0'"),
    ([{"moves": [["smt", "assembly"], ["smt", "assembly"]]}], "transport.f0.moves.1", "listed twice"),
    ([{}, {}], "transport.f1.moves", "as fleet 'f0' already does"),
    ([{}, {"moves": [["assembly", "smt"]]}, {"cross_lane": True}], "transport.f2.moves", "as fleet 'f0' already does"),
])
def test_a_move_served_by_two_fleets_is_refused_naming_both(fleets, field, needle):
    with pytest.raises(twin.SpecError) as e:
        twin.validate(_fleets(*fleets), source="s.toml")
    assert any(field in p and needle in p for p in e.value.problems), e.value.problems


def test_a_fleet_for_every_move_beside_fleets_for_named_moves_is_accepted():
    twin.validate(_fleets({"moves": [["smt", "assembly"]]}, {}), source="s.toml")


@pytest.mark.parametrize("distance,speed", [(1e6, 1e-5), (1e5, 1e-6), (1e6, 1e-300)])
def test_a_trip_beyond_the_model_limit_is_one_message_at_validation(tmp_path, distance, speed):
    d = _fleets({"moves": [["smt", "assembly"]]})
    del d["transport"][0]["travel_time"]
    d["transport"][0].update(distance_m=distance, speed_m_per_s=speed)
    r = _cli("run", str(_write(tmp_path, d)), "--out", str(tmp_path / "o"))
    _refused(r, "transport.f0", "distance_m / speed_m_per_s", "m/s")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("factor", [1e300, 1e7, float("inf")])
def test_a_huge_scenario_factor_is_refused_at_the_scenario(tmp_path, factor):
    sc = tmp_path / "huge.toml"
    sc.write_text(f'name = "huge"\n[[shifts]]\nkind = "step"\nat = "1w"\nfactor = {"inf" if factor == float("inf") else repr(factor)}\n')
    r = _cli("compare", "--quick", "--scenarios", str(sc), "--out", str(tmp_path / "o"))
    _refused(r, "huge.toml", "shifts.0.factor")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("factors", [[1e5], [1e3, 1e3], [100.0, 100.0, 100.0]])
def test_volume_shifts_that_multiply_beyond_the_rate_bound_are_refused(factors):
    d = tomllib.loads((ROOT / "lines" / "static_line.toml").read_text())
    d["demand"]["shifts"] = [{"kind": "pulse" if i % 2 else "step", "at": 3600.0 * (i + 1), "duration": 3600.0,
                              "factor": f} for i, f in enumerate(factors)]
    with pytest.raises(twin.SpecError) as e:
        twin.validate(d, source="s.toml")
    assert any("demand" in p and "volume factors" in p for p in e.value.problems), e.value.problems


# --------------------------------------------------------------------------- 10. the Python API checks what the CLI checks
def _loaded() -> twin.Spec:
    return twin.validate(_base(), source="s.toml")


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: setattr(s.stations[0], "servers", 0), "stations.smt.servers"),
    (lambda s: setattr(s.stations[0], "servers", -3), "stations.smt.servers"),
    (lambda s: setattr(s.stations[1], "buffer", -1), "stations.assembly.buffer"),
    (lambda s: setattr(s.run, "replications", 0), "run.replications"),
    (lambda s: s.products[0].route.append("nowhere"), "nowhere"),
])
@pytest.mark.parametrize("call", ["simulate", "sweep"])
def test_a_field_assigned_after_loading_is_checked_before_running(mutate, needle, call):
    spec = _loaded()
    mutate(spec)
    with pytest.raises(twin.SpecError) as e:
        if call == "simulate":
            twin.simulate(spec, replications=1)
        else:
            twin.experiment.sweep(spec, {"stations.smt.process_time": [30, 40]}, replications=1)
    assert needle in " ".join(e.value.problems), e.value.problems


@pytest.mark.parametrize("kw,needle", [
    ({"replications": 2.5}, "replications: must be a whole number"), ({"replications": True}, "replications"),
    ({"replications": "2"}, "replications"), ({"replications": 0}, "between 1"),
    ({"seed": 1.5}, "seed: must be a whole number"), ({"seed": -1}, "seed: must be between"), ({"seed": "1"}, "seed"),
])
@pytest.mark.parametrize("call", ["simulate", "sweep"])
def test_counts_that_are_not_whole_numbers_are_refused_not_truncated(kw, needle, call):
    with pytest.raises(twin.SpecError) as e:
        if call == "simulate":
            twin.simulate(_loaded(), **kw)
        else:
            twin.experiment.sweep(_loaded(), {"stations.smt.process_time": [30]}, **kw)
    assert needle in " ".join(e.value.problems), e.value.problems


def test_a_whole_float_count_is_that_count():
    a = twin.simulate(_loaded(), replications=2.0, seed=3.0)
    b = twin.simulate(_loaded(), replications=2, seed=3)
    assert a.kpis.equals(b.kpis)


@pytest.mark.parametrize("bad", [42, None, 3.5, ["a"], object()])
def test_simulate_of_something_that_is_no_spec_says_what_it_takes(bad):
    with pytest.raises(twin.SpecError) as e:
        twin.simulate(bad)
    assert "expected a twin.Spec" in e.value.problems[0]


def test_simulate_takes_a_path_a_built_in_name_or_a_dict_like_the_cli(tmp_path):
    p = _write(tmp_path, _base())
    by_spec = twin.simulate(_loaded()).kpis
    assert twin.simulate(str(p)).kpis.equals(by_spec) and twin.simulate(p).kpis.equals(by_spec)
    assert twin.simulate(_base()).kpis.equals(by_spec)
    with pytest.raises(twin.SpecError) as e:
        twin.simulate("not a spec")
    assert "not a spec" in " ".join(e.value.problems)


@pytest.mark.parametrize("grid,needle", [
    ({"stations.smt.servers": []}, "stations.smt.servers: an axis needs"),
    ({"stations.smt.servers": [1], "stations.smt.process_time": ()}, "stations.smt.process_time"),
    ({"stations.smt.servers": 2}, "an axis needs a list"), ({"stations.smt.servers": "12"}, "an axis needs a list"),
])
def test_an_empty_or_scalar_sweep_axis_is_refused(grid, needle):
    with pytest.raises(twin.SpecError) as e:
        twin.experiment.sweep(_loaded(), grid, replications=1)
    assert needle in " ".join(e.value.problems), e.value.problems


# --------------------------------------------------------------------------- 11. terminal, signals, paths
INVISIBLE = ["\u202e", "\u202a", "\u2066", "\u2069", "\u200b", "\u200e", "\u200f", "\u2028", "\u2029", "\ufeff",
             "\u061c", "\u2060"]


@settings(max_examples=40, deadline=None, derandomize=True)
@given(ch=st.sampled_from(INVISIBLE), pre=st.text("abc", min_size=0, max_size=3), post=st.text("xyz", min_size=1, max_size=3))
def test_a_name_with_a_bidirectional_or_invisible_character_is_refused_by_code_point(ch, pre, post):
    d = _base()
    name = pre + ch + post
    d["products"][0]["name"] = name
    with pytest.raises(twin.SpecError) as e:
        twin.validate(d, source="s.toml")
    msg = " ".join(e.value.problems)
    assert f"U+{ord(ch):04X} at position {len(pre) + 1}" in msg, msg


def test_invisible_characters_in_any_message_reach_the_terminal_escaped(tmp_path):
    d = _base()
    d["stations"][0]["name"] = "sm\u202et"
    r = _cli("validate", str(_write(tmp_path, d)))
    _refused(r, "U+202E")
    assert not any(ch in r.stderr for ch in INVISIBLE) and "\\u202e" in r.stderr
    assert twin.names.safe_text("a\u2066b\u200bc") == "a\\u2066b\\u200bc"


def test_joiners_that_scripts_and_emoji_need_are_kept_in_names():
    d = _base()
    d["products"][0]["name"] = "phone \U0001f468\u200d\U0001f4bb می\u200cخواهم"
    twin.validate(d, source="s.toml")


@pytest.mark.parametrize("args", [["run", "{spec}", "--out", ""], ["run", "{spec}", "--out", "  "], ["run", ""],
                                  ["run", "{spec}", "--event-log", ""], ["sweep", "{spec}", "--vary", "", "--out", "{o}"],
                                  ["compare", "--quick", "--out", ""], ["compare", "--quick", "--scenarios", "baseline", ""],
                                  ["validate", " "]])
def test_an_empty_value_is_refused_naming_the_option(tmp_path, args, monkeypatch):
    spec = _write(tmp_path, _base())
    before = sorted(os.listdir(tmp_path))
    monkeypatch.chdir(tmp_path)
    r = _cli(*[a.format(spec=spec, o=tmp_path / "o") for a in args])
    _refused(r, "an empty value")
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, in the current folder either


def test_a_bare_optional_value_flag_is_not_an_empty_value():
    # ``--designs`` alone means the reference factories' designs; only a typed-out blank is refused
    from twin.cli import _blank_options, build_parser
    parser = build_parser()
    sp = parser.commands["compare"]
    assert _blank_options(sp, parser.parse_args(["compare", "--quick", "--designs"])) == []
    assert _blank_options(sp, parser.parse_args(["compare", "--quick", "--designs", " "])) == ["--designs"]


@pytest.mark.parametrize("name", ["log.xlsx", "log.txt", "log", "log.json", "log.csv.gz"])
def test_an_event_log_suffix_that_is_neither_csv_nor_parquet_is_refused(tmp_path, name):
    r = _cli("run", str(_write(tmp_path, _base())), "--event-log", str(tmp_path / name))
    _refused(r, "--event-log", ".csv", ".parquet")
    assert not (tmp_path / name).exists()


def test_an_event_log_with_a_capital_suffix_is_written_as_csv(tmp_path):
    r = _cli("run", str(_write(tmp_path, _base())), "--event-log", str(tmp_path / "log.CSV"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "log.CSV").read_text().startswith("timestamp,")


@pytest.mark.parametrize("what", ["spec", "scenario", "uncertainty", "log"])
def test_a_utf8_byte_order_mark_is_read_past(tmp_path, what):
    bom = b"\xef\xbb\xbf"
    if what == "spec":
        p = tmp_path / "s.toml"
        p.write_bytes(bom + tomli_w.dumps(_base()).encode())
        r = _cli("validate", str(p))
    elif what == "scenario":
        p = tmp_path / "sc.toml"
        p.write_bytes(bom + b'name = "sc"\n[[shifts]]\nkind = "step"\nat = "1w"\nfactor = 1.2\n')
        from twin.scenario import load_scenario

        assert load_scenario(p).shifts[0].factor == 1.2
        return
    elif what == "uncertainty":
        p = tmp_path / "u.toml"
        p.write_bytes(bom + (ROOT / "lines" / "uncertainty.toml").read_bytes())
        from twin import uncertainty

        assert uncertainty.load(p)[0].parameter
        return
    else:
        log = tmp_path / "ev.csv"
        assert _cli("run", str(_write(tmp_path, _base())), "--event-log", str(log), "--replications", "1").returncode == 0
        from twin.eventlog import read_log

        plain = read_log(log)
        log.write_bytes(bom + log.read_bytes())
        assert read_log(log).equals(plain) and len(plain) > 0
        return
    assert r.returncode == 0, r.stderr


def test_a_bom_alone_is_an_empty_file(tmp_path):
    p = tmp_path / "s.toml"
    p.write_bytes(b"\xef\xbb\xbf\n")
    _refused(_cli("validate", str(p)), "file is empty")


def test_an_uncertainty_file_without_draws_is_checked_first_and_said_what_it_does(tmp_path):
    bad = tmp_path / "u.toml"
    bad.write_text('[[parameter]]\nname = "x"\nfactory = "nowhere"\npath = "costs.capex_per_lane"\nlow = 1\nhigh = 2\n'
                   'reason = "test"\n')
    r = _cli("compare", "--quick", "--uncertainty-file", str(bad), "--out", str(tmp_path / "o"))
    _refused(r, "parameter.0")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- 7. optimize's settings
TWO = str(ROOT / "examples" / "two_machine.toml")


def _optimize(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return _cli("optimize", TWO, *args, "--trials", "2", "--replications", "1", "--horizon", "1d", "--warmup", "0",
                 "--out", str(tmp_path / "o"))


@pytest.mark.parametrize("vary", ["run.seed=1,2", "run.horizon=1d,2d", "run.replications=1..3", "run.warmup=0..100",
                                  "stations.smt.servers,run.seed=1..2"])
def test_optimize_refuses_to_vary_the_run_settings(tmp_path, vary):
    r = _optimize(tmp_path, "--vary", vary, "--maximize", "throughput_per_hour")
    _refused(r, "--vary run.", "same run settings")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("objectives,needle", [
    (["--maximize", "3"], "a constant"), (["--minimize", "2 * (1 + 4)"], "a constant"),
    (["--maximize", "throughput_per_hour / 0"], "finite number"),
    (["--maximize", "throughput_per_hour / (wip_mean - wip_mean)"], "finite number"),
    (["--maximize", "throughput_per_hour", "--minimize", "throughput_per_hour"], "given twice"),
    (["--maximize", "throughput_per_hour", "--maximize", "(throughput_per_hour)"], "given twice"),
])
def test_objectives_that_cannot_rank_designs_are_refused(tmp_path, objectives, needle):
    r = _optimize(tmp_path, "--vary", "stations.smt.servers=1..2", *objectives)
    _refused(r, "--maximize/--minimize", needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("values", ["[1,2", "[1, [2, 3]", "{a = 1", "\"1,2", "[[[[1]]]"])
@pytest.mark.parametrize("command", ["optimize", "sweep"])
def test_a_malformed_value_list_is_an_error_not_a_guess(tmp_path, values, command):
    if command == "optimize":
        r = _optimize(tmp_path, "--vary", f"stations.smt.servers={values}", "--maximize", "throughput_per_hour")
    else:
        r = _cli("sweep", TWO, "--vary", f"stations.smt.servers={values}", "--out", str(tmp_path / "o"))
    _refused(r, "--vary stations.smt.servers")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("depth", [101, 3000, 30_000])
@pytest.mark.parametrize("where", ["--maximize", "--constraint"])
def test_deeply_nested_expressions_are_one_message(tmp_path, depth, where):
    expr = "(" * depth + "throughput_per_hour" + ")" * depth
    args = (["--maximize", expr] if where == "--maximize" else
            ["--maximize", "throughput_per_hour", "--constraint", expr + " >= 1"])
    r = _optimize(tmp_path, "--vary", "stations.smt.servers=1..2", *args)
    _refused(r, "nested more than 100 deep")
    assert "RecursionError" not in r.stderr


def test_a_huge_integer_range_is_sampled_not_listed(tmp_path):
    from twin.optimize import GRID_LIMIT, parse_dimension

    d = parse_dimension("stations.assembly.buffer=0..900000000")
    assert d.size == 900_000_001 and d.values() is None and d.size > GRID_LIMIT
    r = _optimize(tmp_path, "--vary", "stations.assembly.buffer=0..900000000", "--maximize", "throughput_per_hour")
    assert r.returncode == 0, r.stderr
    trials = (tmp_path / "o" / "trials.csv").read_text().splitlines()
    assert len(trials) >= 3  # header and the trials, each a value inside the range


# --------------------------------------------------------------------------- 4. work and memory projected before a run
@pytest.mark.parametrize("base,order_size", [(1e9, 100), (1e8, 1), (5e8, 10)])
def test_a_demand_whose_orders_alone_overflow_memory_is_refused_before_drawing(tmp_path, base, order_size):
    d = tomllib.loads((ROOT / "lines" / "static_line.toml").read_text())
    d["demand"].update(base_per_week=base, order_size=order_size)
    r = _cli("run", str(_write(tmp_path, d)), "--horizon", "2w", "--warmup", "1d", "--replications", "1",
              "--out", str(tmp_path / "o"))
    _refused(r, "demand:", "orders", "GiB", "more than this machine can give it")
    assert not (tmp_path / "o").exists()


def test_the_demand_projection_is_a_lower_bound_a_normal_run_passes(monkeypatch):
    # hand count: 3 orders' records and 2 per lot, 160 B each; a budget just above passes, just below refuses
    from twin import release

    d = _base()
    d["source"] = {"kind": "orders"}
    d["demand"] = {"base_per_week": 16800.0, "order_size": 10}  # 100 units an hour: 10 orders, 10 lots (lot_size 1)
    spec = twin.validate(d, source="s.toml")
    hours = 24
    need = (3 * 10 * hours + 2 * 100 * hours) * release.BYTES_PER_RECORD
    monkeypatch.setenv("TWIN_MAX_MEMORY_GB", repr(need * 1.01 / 2**30))
    twin.run_once(spec, hours * 3600.0, 0.0, 1)
    monkeypatch.setenv("TWIN_MAX_MEMORY_GB", repr(need * 0.99 / 2**30))
    with pytest.raises(twin.spec.SimulationError, match="orders"):
        twin.run_once(spec, hours * 3600.0, 0.0, 1)


@pytest.mark.parametrize("axes,reps", [([3000, 100], 1), ([100_001], 1), ([1000, 100], 2), ([50, 50, 50], 1)])
def test_a_sweep_of_more_runs_than_the_bound_is_refused_with_the_figure(axes, reps):
    paths = ["stations.smt.servers", "stations.assembly.buffer", "stations.assembly.process_time"]
    grid = {paths[i]: list(range(1, n + 1)) for i, n in enumerate(axes)}
    with pytest.raises(twin.SpecError) as e:
        twin.experiment.sweep(_loaded(), grid, replications=reps)
    total = int(np.prod(axes)) * reps
    assert f"{total:,} runs" in e.value.problems[0] and "100,000" in e.value.problems[0]


@pytest.mark.parametrize("n,where", [(30_000, "top"), (30_000, "station")])
def test_a_file_of_many_bad_keys_lists_the_first_hundred_and_counts_the_rest(tmp_path, n, where):
    head = "\n".join(f"k{i}.a = 1" for i in range(n)) if where == "top" else ""
    text = head + "\n" + tomli_w.dumps(_base())
    if where == "station":
        text += "\n" + "\n".join(f"stations.x{i} = 1" for i in range(n))
        text = tomli_w.dumps({**_base(), "stations": [{**_base()["stations"][0], **{f"x{i}": 1 for i in range(n)}},
                                                      _base()["stations"][1]]})
    p = tmp_path / "many.toml"
    p.write_text(text)
    r = _cli("validate", str(p))
    _refused(r, f"and {n - 100:,} more problems (the first 100 are listed)")
    assert len(r.stderr.splitlines()) == 101


# --------------------------------------------------------------------------- paper cuts
def test_lost_arrivals_are_counted_over_the_window_and_shown_beside_throughput(tmp_path):
    # M/M/1/K, K = 2 (one server, one place): loss probability 1/(K+1) = 1/3 at rho = 1; counted
    # over the window after a warm-up, the lost and the good units add up to the arrivals there
    d = {"name": "mm1k", "run": {"horizon": 100_000, "warmup": 10_000, "replications": 3, "seed": 2},
         "source": {"kind": "poisson", "rate_per_hour": 3600.0}, "products": [{"name": "p", "route": ["m"]}],
         "stations": [{"name": "m", "buffer": 1, "process_time": {"dist": "exponential", "mean": 1.0}}]}
    res = twin.simulate(twin.validate(d, source="mm1k"))
    k = res.kpis
    assert k["lost_share"].mean() == pytest.approx(1 / 3, rel=0.03)  # 3 x 90,000 arrivals: se ~0.2 % (autocorrelated)
    arrivals_in_window = (k["lost_units"] + k["good_units"]) / 90_000
    assert arrivals_in_window.mean() == pytest.approx(1.0, rel=0.01)  # Poisson: sd 0.24 % a replication
    r = _cli("run", str(_write(tmp_path, {**d, "run": {**d["run"], "horizon": 20_000, "warmup": 2_000}})),
              "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "lost arrivals" in r.stdout and "% of arrivals" in r.stdout
    assert "lost arrivals" in (tmp_path / "o" / "report.html").read_text()


def test_a_line_that_loses_nothing_shows_no_lost_row(tmp_path):
    r = _cli("run", str(_write(tmp_path, _base())), "--out", str(tmp_path / "o"))
    assert r.returncode == 0 and "lost arrivals" not in r.stdout
    assert "lost arrivals" not in (tmp_path / "o" / "report.html").read_text()


def test_optimize_says_when_the_best_sits_on_a_bound_and_how_big_a_difference_is(tmp_path):
    from twin.optimize import on_bound, parse_dimension
    from twin.optimize_report import _relative

    space = [parse_dimension("stations.smt.servers=1..4"), parse_dimension("stations.b.buffer=0.5..2.5"),
             parse_dimension("stations.c.x=a,b")]
    notes = on_bound(space, {"stations.smt.servers": 4, "stations.b.buffer": 0.5, "stations.c.x": "b"})
    assert len(notes) == 2 and "upper end of its range 1..4" in notes[0] and "lower end of its range 0.5..2.5" in notes[1]
    assert on_bound(space, {"stations.smt.servers": 2, "stations.b.buffer": 1.0, "stations.c.x": "a"}) == []
    assert _relative({"relative": 0.0025}) == " (0.25% of the best)" and _relative({"relative": math.nan}) == ""
    r = _optimize(tmp_path, "--vary", "stations.smt.servers=1..2", "--maximize", "throughput_per_hour")
    assert r.returncode == 0, r.stderr
    assert "note: the best stations.smt.servers = 2 is the upper end" in r.stdout and "% of the best" in r.stdout
    body = json.loads((tmp_path / "o" / "kpis.json").read_text())
    assert body["meta"]["on_bound"] and body["runners_up"][0]["vs_best"]["relative"] > 0
    assert "On a bound" in (tmp_path / "o" / "report.html").read_text()


@pytest.mark.parametrize("m,h,shown", [(0.822, 2.263, "82.2 % [0.0, 100.0]"), (0.97, 0.05, "97.0 % [92.0, 100.0]"),
                                       (0.02, 0.05, "2.0 % [0.0, 7.0]"), (0.5, 0.1, "50.0 % ± 10.0")])
def test_a_share_interval_never_reads_past_0_or_100_percent(m, h, shown):
    from twin.report import fmt

    assert fmt({"mean": m, "ci95": h}, "pct") == shown


def test_the_run_report_leaves_out_states_no_station_was_in(tmp_path):
    r = _cli("run", str(_write(tmp_path, _base())), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "o" / "report.html").read_text()
    table = page[page.index("<th>station</th>"):]
    table = table[:table.index("</table>")]
    assert "<th>busy</th>" in table and "<th>setup</th>" not in table and "<th>maint</th>" not in table
    assert "class='nums'" in page


@pytest.mark.parametrize("text,seconds", [("5 minutes", 300.0), ("1 minute", 60.0), ("2 Hours", 7200.0), ("3 days", 259200.0),
                                          ("1 week", 604800.0), ("30 seconds", 30.0), ("250 milliseconds", 0.25),
                                          ("2 hrs", 7200.0), ("10 mins", 600.0)])
def test_durations_with_spelled_out_units_are_read(text, seconds):
    from twin.units import parse_duration

    assert parse_duration(text) == seconds
    d = _base()
    d["run"]["horizon"] = text if seconds >= 3600 else "1d"
    d["stations"][0]["process_time"] = text if seconds < 3600 else 30
    twin.validate(d, source="s.toml")


def test_the_schema_states_the_spelled_out_units_too():
    import re as re_

    from twin.dists import DurationText

    pattern = DurationText.__metadata__[0].pattern
    assert all(re_.match(pattern, t) for t in ("5 minutes", "2 hours", "1w", "90s", "3 days"))
    assert not re_.match(pattern, "5 fortnights")


def test_list_validate_and_compare_speak_json(tmp_path):
    r = _cli("list", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert {f["name"] for f in listed["factories"]} >= {"static-line", "dark-factory", "microfactory"}
    assert "surge" in {s["name"] for s in listed["scenarios"]}
    good = _write(tmp_path, _base())
    r = _cli("validate", str(good), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True and json.loads(r.stdout)["stations"] == 2
    bad = _base()
    bad["stations"][0]["servers"] = 0
    bad["stations"][1]["buffer"] = -1
    r = _cli("validate", str(_write(tmp_path, bad, "bad.toml")), "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and doc["ok"] is False and len(doc["problems"]) == 2, doc
    r = _cli("compare", "--factories", "static-line", "--scenarios", "baseline", "--replications", "1", "--weeks", "1",
              "--warmup", "1d", "--jobs", "1", "--json", "--out", str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads((tmp_path / "c" / "kpis.json").read_text())


@pytest.mark.parametrize("name", ["upstream", "end_of_line"])
def test_an_upstream_tester_finds_defects_made_before_it_under_either_name(name):
    d = _base()
    d["stations"][0]["quality"] = {"defect_rate": 0.2}
    d["stations"][1]["quality"] = {"inspect": name, "detection": 1.0}
    res = twin.simulate(twin.validate(d, source="s.toml"), replications=1)
    assert res.kpis["escaped_units"].iloc[0] == 0 and res.kpis["scrap_units"].iloc[0] > 0
    assert twin.validate(d, source="s.toml").stations[1].quality.inspect == "upstream"


def test_the_optimize_history_counts_designs_run_and_marks_the_reported_best():
    from twin import optimize as opt
    from twin import optimize_report

    spec = twin.validate(_base(), source="s.toml")
    # a design constraint that skips suggestions: optuna's trial numbers then run ahead of the designs
    res = opt.optimize(spec, [opt.parse_dimension("stations.smt.servers=1..3"), opt.parse_dimension("stations.assembly.buffer=0..3")],
                       [("throughput_per_hour", "maximize")], constraints=["stations.assembly.buffer <= 2"], trials=8,
                       replications=1, horizon=4 * 3600.0, warmup=600.0)
    hist = optimize_report.figures(res)[0]
    xs = [list(t.x) for t in hist.data if t.name in ("feasible", "infeasible")]
    assert sorted(x for xx in xs for x in xx) == list(range(1, len(res["trials"]) + 1))
    star = [t for t in hist.data if t.name == "the reported best"]
    assert len(star) == 1 and "fresh seeds" in hist.layout.title.text


_FIELD_ERRORS = [("servers", -1, "stations.a.servers"), ("process_time", "abc", "stations.a.process_time"),
                 ("buffer", "many", "stations.a.buffer"), ("colour", "red", "stations.a.colour")]


@settings(max_examples=25, deadline=None)
@given(errors=st.lists(st.sampled_from(_FIELD_ERRORS), min_size=1, max_size=3, unique_by=lambda e: e[0]),
       ghosts=st.lists(st.sampled_from(["zz", "weld", "tst", "packing"]), min_size=1, max_size=3, unique=True))
def test_an_unknown_route_station_is_reported_with_the_field_errors(errors, ghosts):
    # every problem at once: a spec that fails field validation still gets its route checked
    station = {"name": "a", "process_time": 60}
    for key, value, _ in errors:
        station[key] = value
    data = {"name": "t", "source": {"kind": "saturated"}, "stations": [station, {"name": "b", "process_time": 50}],
            "products": [{"name": "x", "route": ["a", *ghosts, "b"]}]}
    with pytest.raises(twin.SpecError) as e:
        twin.validate(data, source="t.toml")
    text = str(e.value)
    for _, _, field in errors:
        assert field in text, text
    for i, g in enumerate(ghosts, start=1):
        assert f"products.x.route.{i}: unknown station {g!r}" in text, text
