"""Robustness, round three (issue 30): one section per root cause, each generating several
instances of it. Timeouts only guard against hangs; nothing here measures wall time."""

from __future__ import annotations

import json
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
    "inspect_every": (lambda s, v: s.update(failures={"ttf": {"dist": "weibull", "shape": 2, "scale": 3600}, "ttr": 60},
                                            maintenance={"policy": "predictive", "inspect_every": max(v, 1e-300)}),
                      "stations.smt.maintenance.inspect_every"),
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


@pytest.mark.parametrize("p_back", [0.99999, 0.999999, 0.9999999])
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


@pytest.mark.parametrize("routing", [{"assembly": {"smt": 1.0}}, {"assembly": {"smt": 0.5, "assembly": 0.5}},
                                     {"smt": {"assembly": 0.4}, "assembly": {"smt": 1.0}}])
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
@pytest.mark.parametrize("writer", sorted(WRITERS))
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
