"""Adversarial inputs, one section per root cause of issue 17: every case ends in a result or in
exit 2 with the field or path named: no traceback, no hang, no destroyed file, no partial
result set, no silently wrong number. Cases are generated (Hypothesis where it fits) and kept
small: short horizons, and process timeouts that only guard against hangs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

import twin
from twin.cli import main
from twin.compare import Job
from twin.io import ResultSet, remove_stale_temporaries
from twin.names import safe_text

ROOT = Path(__file__).resolve().parent.parent
TWO = ROOT / "examples" / "two_machine.toml"
BASE = tomllib.loads(TWO.read_text())
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _cli(*args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def _twin(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a child process (for inputs that could block or exhaust memory)."""
    return subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _clean_failure(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    assert not CONTROL.search(err.replace("\n", "")), repr(err)
    for n in needles:
        assert n in err, err


def _spec_file(tmp_path: Path, data: dict, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(tomli_w.dumps(data))
    return p


# --------------------------------------------------------------------------- 1. validates but cannot run
NUMERIC_FIELDS = [("stations", 0, "servers"), ("stations", 0, "buffer"), ("stations", 1, "servers"),
                  ("products", 0, "lot_size"), ("run", "replications"), ("run", "seed")]
ABSURD = st.one_of(st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e300, 1e9, -1, 0, 2**63 - 1, 2**70]),
                   st.integers(10**7, 10**20))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(field=st.sampled_from(NUMERIC_FIELDS), value=ABSURD)
def test_absurd_numbers_are_refused_or_run_naming_the_field(tmp_path_factory, field, value):
    data = json.loads(json.dumps(BASE))
    cur = data
    for k in field[:-1]:
        cur = cur[k]
    cur[field[-1]] = value
    try:
        f = _spec_file(tmp_path_factory.mktemp("n"), data)
    except (OverflowError, ValueError):
        return  # not representable in TOML
    rc, _, err = _cli("validate", str(f))
    if rc == 0:
        return
    _clean_failure(rc, err, f"{field[-1]}")


@pytest.mark.parametrize("horizon", ["1e400", "52000w", "nan", "inf", "-1h", "1e300s"])
def test_absurd_horizons_are_refused(horizon):
    rc, _, err = _cli("run", str(TWO), "--horizon", horizon, "--warmup", "0")
    _clean_failure(rc, err, "--horizon")


@pytest.mark.parametrize("flag,value", [("--weeks", "1e300"), ("--weeks", "inf"), ("--weeks", "0"),
                                        ("--replications", "100000"), ("--seed", str(2**70))])
def test_absurd_compare_options_are_refused(flag, value):
    rc, _, err = _cli("compare", flag, value, "--out", "/nonexistent-never-written")
    _clean_failure(rc, err, flag)


@pytest.mark.parametrize("stations,source", [
    ([{"name": "a", "process_time": 0}, {"name": "b", "process_time": 1}], {"kind": "saturated"}),
    ([{"name": "a", "process_time": 0, "servers": 3}], {"kind": "saturated"}),
    ([{"name": "a", "process_time": {"dist": "empirical", "values": [0, 0]}}], {"kind": "saturated"}),
])
@pytest.mark.slow
def test_zero_time_loops_stop_with_a_clear_error(tmp_path, stations, source):
    f = _spec_file(tmp_path, {"name": "zero", "source": source, "stations": stations})
    r = _twin("run", str(f), "--horizon", "1h", "--warmup", "0", "--replications", "1", timeout=300)
    _clean_failure(r.returncode, r.stderr, "simulated time stopped advancing")


@pytest.mark.parametrize("interarrival", [0, "0s", {"dist": "constant", "value": 0}])
def test_arrivals_at_no_interval_are_refused(tmp_path, interarrival):
    f = _spec_file(tmp_path, {"name": "x", "source": {"kind": "renewal", "interarrival": interarrival},
                              "stations": [{"name": "a", "process_time": 1}]})
    rc, _, err = _cli("validate", str(f))
    _clean_failure(rc, err, "source", "interarrival")


@pytest.mark.parametrize("mean", [1e-6, 1e-4])
def test_runs_that_would_not_fit_in_memory_stop_early(tmp_path, mean):
    f = _spec_file(tmp_path, {"name": "tiny", "stations": [{"name": "a", "process_time": mean}]})
    r = _twin("run", str(f), "--horizon", "2w", "--warmup", "0", "--replications", "1",
              env={"TWIN_MAX_MEMORY_GB": "0.5"}, timeout=300)
    _clean_failure(r.returncode, r.stderr, "more than this machine can give it")


# --------------------------------------------------------------------------- 2. numeric edge cases
DIST_PARAMS = st.one_of(
    st.builds(lambda k, s: {"dist": "weibull", "shape": k, "scale": s},
              st.floats(1e-4, 50, allow_nan=False), st.floats(1e-3, 1e9)),
    st.builds(lambda m, cv: {"dist": "gamma", "mean": m, "cv": cv}, st.floats(1e-9, 1e12), st.floats(0, 10)),
    st.builds(lambda m, cv: {"dist": "lognormal", "mean": m, "cv": cv}, st.floats(1e-9, 1e12), st.floats(0, 10)),
    st.builds(lambda m, cv: {"dist": "normal", "mean": m, "cv": cv}, st.floats(1e-9, 1e12), st.floats(0, 3)),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(d=DIST_PARAMS)
def test_every_accepted_distribution_has_finite_moments_and_draws(d):
    try:
        spec = twin.validate({"name": "d", "stations": [{"name": "a", "process_time": d}]})
    except twin.SpecError as e:
        assert all(p.startswith("<spec>: stations.a.process_time") for p in e.problems), e.problems
        return
    dist = spec.stations[0].process_time
    assert np.isfinite(dist.mean) and np.isfinite(dist.var)
    from twin.dists import Sampler

    x = [Sampler(dist, np.random.default_rng(1)).lot(q) for q in (1, 7)]
    assert all(np.isfinite(v) and v >= 0 for v in x)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(q=st.integers(1, 2**80))
@pytest.mark.slow
def test_lot_sizes_are_bounded_and_written_exactly(tmp_path_factory, q):
    data = json.loads(json.dumps(BASE))
    data["products"][0]["lot_size"] = q
    d = tmp_path_factory.mktemp("q")
    try:
        f = _spec_file(d, data)
    except OverflowError:
        return  # TOML integers are 64-bit: a user cannot write it
    rc, _, err = _cli("run", str(f), "--horizon", "10min", "--warmup", "0", "--replications", "1", "--out",
                      str(d / "out"))
    if rc == 2:
        _clean_failure(rc, err, "lot_size")
        return
    assert rc == 0
    import pandas as pd

    assert set(pd.read_csv(d / "out" / "lots.csv")["qty"]) <= {q}


# --------------------------------------------------------------------------- 3. recursion and unbounded reads
@pytest.mark.parametrize("depth", [40, 600, 5000, 200_000])
@pytest.mark.parametrize("kind", ["array", "table"])
def test_deep_nesting_is_refused(tmp_path, depth, kind):
    text = ("a = " + "[" * depth + "]" * depth) if kind == "array" else ("a = " + "{b = " * depth + "1" + "}" * depth)
    f = tmp_path / "deep.toml"
    f.write_text('name = "x"\n' + text + "\n")
    rc, _, err = _cli("validate", str(f))
    _clean_failure(rc, err, str(f))


@pytest.mark.parametrize("n", [1000, 3000])
def test_long_lines_check_without_recursion(tmp_path, n):
    stations = [{"name": f"s{i}", "process_time": 1, "buffer": 1} for i in range(n)]
    f = _spec_file(tmp_path, {"name": "long", "stations": stations})
    rc, out, err = _cli("validate", str(f))
    assert rc == 0, err


def _fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "fifo", "folder", "/proc/self/mem"])
@pytest.mark.parametrize("command", ["validate", "run", "calibrate", "check"])
def test_only_regular_files_are_read(tmp_path, target, command):
    path = {"fifo": lambda: str(_fifo(tmp_path)), "folder": lambda: str(tmp_path)}.get(target, lambda: target)()
    args = {"validate": ["validate", path], "run": ["run", path, "--horizon", "1h"],
            "calibrate": ["calibrate", path, "--out", str(tmp_path / "c.toml")],
            "check": ["check", str(TWO), path]}[command]
    r = _twin(*args, timeout=60)  # a FIFO or /dev/zero that is opened would hang or read for ever
    _clean_failure(r.returncode, r.stderr, path)
    assert not (tmp_path / "c.toml").exists()


# --------------------------------------------------------------------------- 4. output paths
def _targets(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "afile").write_text("keep me")
    return {"existing file as a folder": str(tmp_path / "afile"), "under a file": str(tmp_path / "afile" / "sub"),
            "/proc": "/proc/twin-test/x", "/sys": "/sys/kernel/twin-test", "fifo": str(_fifo(tmp_path)),
            "device": "/dev/null"}


@pytest.mark.parametrize("command", ["run --out", "run --event-log", "calibrate --out", "sweep --out",
                                     "compare --out", "init", "ablate --out", "optimize --out"])
def test_bad_output_targets_are_refused_before_any_work_and_left_alone(tmp_path, command, monkeypatch):
    import twin.commands

    def no_work(*a, **k):
        raise AssertionError("work started before the output target was checked")

    for name in ("simulate", "run_once", "sweep", "run_grid", "read_log", "measure_warmup", "prepare_uncertainty"):
        monkeypatch.setattr(twin.commands, name, no_work)
    monkeypatch.setattr(twin.commands.ablate, "run", no_work)
    monkeypatch.setattr(twin.commands.optimize, "optimize", no_work)
    for label, target in _targets(tmp_path).items():
        if command == "run --event-log" and label == "existing file as a folder":
            continue  # replacing a regular file with the log is what --event-log does
        if command in ("calibrate --out", "init") and label == "existing file as a folder":
            continue
        if command == "init" and label == "fifo":
            continue  # init writes NAME.toml: a new path next to the FIFO
        before = os.stat(target).st_mode if os.path.exists(target) else None
        args = {"run --out": ["run", str(TWO), "--horizon", "1h", "--out", target],
                "run --event-log": ["run", str(TWO), "--horizon", "1h", "--event-log", target],
                "calibrate --out": ["calibrate", str(ROOT / "examples" / "line_log.csv"), "--map",
                                    "time=ts,station=machine", "--out", target],
                "sweep --out": ["sweep", str(TWO), "--vary", "stations.smt.servers=1,2", "--out", target],
                "compare --out": ["compare", "--quick", "--out", target],
                "ablate --out": ["ablate", "dark-factory", "--quick", "--out", target],
                "optimize --out": ["optimize", str(TWO), "--vary", "stations.smt.servers=1..2", "--maximize",
                                   "throughput_per_hour", "--out", target],
                "init": ["init", target + ".toml" if label != "device" else target, "--force"]}[command]
        rc, _, err = _cli(*args)
        _clean_failure(rc, err)
        assert target.split("/")[-1] in err or target in err, (label, err)
        if before is not None:
            assert os.stat(target).st_mode == before, label  # a device or FIFO stays what it was
        assert (tmp_path / "afile").read_text() == "keep me"


def test_dev_null_survives_every_writer(tmp_path):
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    for args in (["calibrate", str(ROOT / "examples" / "line_log.csv"), "--map", "time=ts,station=machine",
                  "--out", "/dev/null"], ["run", str(TWO), "--horizon", "1h", "--event-log", "/dev/null"]):
        rc, _, err = _cli(*args)
        _clean_failure(rc, err, "/dev/null")
        assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --------------------------------------------------------------------------- 5. partial results
def test_a_failed_publication_leaves_the_previous_result_set_whole(tmp_path):
    out = tmp_path / "out"
    with ResultSet(out) as rs:
        rs.add_text("a.csv", "old a")
        rs.add_json("kpis.json", {"v": 1})
        rs.publish()
    with pytest.raises(RuntimeError):
        with ResultSet(out) as rs:
            rs.add_text("a.csv", "new a")
            raise RuntimeError("disk full")
    assert (out / "a.csv").read_text() == "old a" and json.loads((out / "kpis.json").read_text()) == {"v": 1}
    assert not [p for p in out.iterdir() if ".twin-tmp-" in p.name]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".lots.csv.twin-tmp-{dead.pid}-abc.tmp").write_text("x" * 1000)
    (tmp_path / f".twin-tmp-{dead.pid}-stage").mkdir()
    (tmp_path / f".keep.twin-tmp-{os.getpid()}-live.tmp").write_text("mine")
    assert remove_stale_temporaries(tmp_path) == 2
    assert [p.name for p in tmp_path.iterdir()] == [f".keep.twin-tmp-{os.getpid()}-live.tmp"]


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.8, 1.6, 2.4, 3.2])
def test_a_killed_run_never_leaves_a_result_set_that_looks_complete(tmp_path, delay):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                             "run", str(TWO), "--horizon", "4w", "--warmup", "0", "--replications", "2", "--out",
                             str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    names = {p.name for p in out.iterdir()} if out.exists() else set()
    complete = {"kpis.json", "replications.csv", "stations.csv", "lots.csv", "states.csv", "timeseries.csv",
                "report.html"}
    if "kpis.json" in names:
        assert complete <= names
    # the next run cleans up what the killed one left and publishes a whole set
    rc, _, err = _cli("run", str(TWO), "--horizon", "1h", "--warmup", "0", "--replications", "1", "--out", str(out))
    assert rc == 0, err
    assert complete <= {p.name for p in out.iterdir()}
    assert not [p for p in out.rglob("*") if ".twin-tmp-" in p.name]


# --------------------------------------------------------------------------- 6. silent wrong answers
@pytest.mark.parametrize("path", ["run.horizon=1h,2h", "run.seed=1,2", "run.replications=2,3", "run.warmup=0,60"])
def test_sweep_refuses_run_settings(path):
    rc, _, err = _cli("sweep", str(TWO), "--vary", path)
    _clean_failure(rc, err, path.split("=")[0])


@pytest.mark.parametrize("args", [
    ["sweep", str(TWO), "--vary", "stations.smt.servers=1,1"],
    ["sweep", str(TWO), "--vary", "stations.smt.servers=2,1,2"],
    ["compare", "--factories", "dark-factory", "dark-factory", "--out", "/nonexistent-x"],
    ["compare", "--factories", "dark-factory", str(ROOT / "lines" / "dark_factory.toml"), "--out", "/nonexistent-x"],
    ["compare", "--scenarios", "surge", "baseline", "surge", "--out", "/nonexistent-x"],
])
def test_repeated_values_are_refused_not_pooled(args, tmp_path):
    args = [a if a != "/nonexistent-x" else str(tmp_path / "out") for a in args]
    rc, _, err = _cli(*args)
    _clean_failure(rc, err, "twice")


@settings(max_examples=100, deadline=None, derandomize=True)
@given(factory=st.text(min_size=1, max_size=80), scenario=st.text(min_size=1, max_size=80))
def test_job_files_stay_inside_the_job_folder(factory, scenario):
    key = Job(factory, scenario, 3, 1).key
    assert "/" not in key and "\\" not in key and key not in (".", "..") and not key.startswith(".")
    assert not CONTROL.search(key) and len(key) < 255
    assert Job(factory + "x", scenario, 3, 1).key != key


@settings(max_examples=30, deadline=None, derandomize=True)
@given(q=st.one_of(st.floats(0.01, 1e6).filter(lambda x: x != int(x)), st.sampled_from([2**60, -3])))
def test_log_quantities_must_be_whole(tmp_path_factory, q):
    d = tmp_path_factory.mktemp("q")
    lines = (ROOT / "examples" / "line_log.csv").read_text().splitlines()
    row = lines[1].split(",")
    row[5] = repr(q)
    (d / "log.csv").write_text("\n".join([lines[0], ",".join(row)] + lines[2:200]) + "\n")
    rc, _, err = _cli("calibrate", str(d / "log.csv"), "--map", "time=ts,station=machine", "--out", str(d / "c.toml"))
    _clean_failure(rc, err, "line 2", "qty")


def test_check_refuses_log_stations_the_spec_lacks(tmp_path):
    log = tmp_path / "log.csv"
    assert _cli("run", str(TWO), "--horizon", "6h", "--warmup", "0", "--replications", "1",
                "--event-log", str(log))[0] == 0
    data = json.loads(json.dumps(BASE))
    data["stations"] = [s for s in data["stations"] if s["name"] != "assembly"]
    for p in data["products"]:
        p["route"] = [x for x in p["route"] if x != "assembly"]
    f = _spec_file(tmp_path, data)
    rc, _, err = _cli("check", str(f), str(log), "--replications", "2")
    _clean_failure(rc, err, "assembly", "not in the spec")


# --------------------------------------------------------------------------- 7. compare and sweep inputs
@pytest.mark.slow  # a dark-factory compare per kind (14 s each): the default run stays inside its 4 minutes
@pytest.mark.parametrize("damage", [b"{", b"", b"\xff\xfe\x00", b"{}", b'{"factory": 3}', b"[1, 2]"])
def test_damaged_jobs_are_run_again_and_a_damaged_grid_is_a_clear_error(tmp_path, damage):
    out = tmp_path / "out"
    args = ["compare", "--factories", "dark-factory", "--scenarios", "baseline", "--replications", "2",
            "--weeks", "0.2", "--warmup", "0", "--jobs", "1", "--out", str(out)]
    assert _cli(*args)[0] == 0
    first = (out / "runs.csv").read_bytes()
    job = sorted((out / "jobs").glob("*__*.json"))[0]
    job.write_bytes(damage)
    rc, _, err = _cli(*args, "--resume")
    assert rc == 0, err
    assert "running the job again" in err and (out / "runs.csv").read_bytes() == first
    (out / "jobs" / "grid.json").write_bytes(damage)
    rc, _, err = _cli(*args, "--resume")
    if damage in (b"{}", b'{"factory": 3}', b"[1, 2]"):
        _clean_failure(rc, err, "other options or input files")
    else:
        _clean_failure(rc, err, "grid.json", "damaged")


def test_resume_after_editing_a_factory_file_is_refused(tmp_path):
    spec = tmp_path / "f.toml"
    spec.write_bytes((ROOT / "lines" / "microfactory.toml").read_bytes())
    out = tmp_path / "out"
    args = ["compare", "--factories", str(spec), "--scenarios", "baseline", "--replications", "1",
            "--weeks", "0.2", "--warmup", "0", "--jobs", "1", "--out", str(out)]
    assert _cli(*args)[0] == 0
    assert all(p.parent == out / "jobs" for p in out.rglob("*.json") if p.name != "kpis.json")
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".json"]  # nothing written next to the spec
    spec.write_text(spec.read_text().replace("# ", "#  ", 1))
    rc, _, err = _cli(*args, "--resume")
    _clean_failure(rc, err, "spec_sha256")


@pytest.mark.slow
def test_a_scenario_whose_inner_name_differs_from_its_file_runs(tmp_path):
    sc = tmp_path / "my_surge.toml"
    text = (ROOT / "benchmarks" / "scenarios" / "surge.toml").read_text()
    sc.write_text(re.sub(r'(?m)^name = ".*"$', 'name = "something else"', text))
    rc, out, err = _cli("compare", "--factories", "microfactory", "--scenarios", str(sc), "--replications", "1",
                        "--weeks", "4", "--warmup", "0", "--jobs", "1", "--out", str(tmp_path / "out"))
    assert rc == 0, err
    assert (tmp_path / "out" / "report.html").exists()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(address=st.text(max_size=40))
def test_malformed_scheduler_addresses_are_refused_at_once(address):
    if re.fullmatch(r"(tcp|tls|ucx|ws|wss)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", address):
        return
    rc, _, err = _cli("sweep", str(TWO), "--vary", "stations.smt.servers=1,2", "--horizon", "10min",
                      "--warmup", "0", "--executor", "dask", "--scheduler", address)
    _clean_failure(rc, err, "--scheduler")


def test_sweep_over_tables_of_values_groups_them(tmp_path):
    rc, out, err = _cli("sweep", str(TWO), "--horizon", "30min", "--warmup", "0", "--replications", "2", "--jobs", "1",
                        "--vary", 'stations.smt.process_time={dist="exponential",mean=30},{dist="gamma",mean=30,cv=0.5}',
                        "--out", str(tmp_path / "out"))
    assert rc == 0, err
    points = json.loads((tmp_path / "out" / "kpis.json").read_text())["points"]
    labels = [p["stations.smt.process_time"] for p in points]
    assert len(points) == 2 and json.loads(labels[0])["dist"] == "exponential" and json.loads(labels[1])["cv"] == 0.5
    assert all(p["throughput_per_hour"] > 0 for p in points)


# --------------------------------------------------------------------------- 8. event-log edge cases
def _native_log(tmp_path: Path) -> list[str]:
    log = tmp_path / "base.csv"
    assert _cli("run", str(TWO), "--horizon", "1d", "--warmup", "0", "--replications", "1",
                "--event-log", str(log))[0] == 0
    return log.read_text().splitlines()


@pytest.fixture(scope="module")
def native_log(tmp_path_factory):
    return _native_log(tmp_path_factory.mktemp("log"))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_corrupted_logs_are_refused_naming_a_line(tmp_path_factory, native_log, data):
    lines = list(native_log[:400])
    kind = data.draw(st.sampled_from(["timestamp", "all zero", "short", "name", "qty"]))
    i = data.draw(st.integers(1, len(lines) - 1))
    if kind == "timestamp":
        row = lines[i].split(",")
        row[0] = data.draw(st.sampled_from(["inf", "-inf", "nan", "1e12", "1e300", "soon", ""]))
        lines[i] = ",".join(row)
    elif kind == "all zero":
        lines = [lines[0]] + ["0" + ln[ln.index(","):] for ln in lines[1:]]
    elif kind == "short":
        lines = lines[:data.draw(st.integers(1, 3))]
    elif kind == "name":
        row = lines[i].split(",")
        row[1] = row[1] + data.draw(st.sampled_from(["\x00", "\x1b[2J", "\x07", "\x7f"]))
        lines[i] = ",".join(row)
    else:
        row = lines[i].split(",")
        row[5] = data.draw(st.sampled_from(["1.5", "-2", "1e30", "x"]))
        lines[i] = ",".join(row)
    d = tmp_path_factory.mktemp("l")
    (d / "log.csv").write_text("\n".join(lines) + "\n")
    for args in (["calibrate", str(d / "log.csv"), "--out", str(d / "c.toml")],
                 ["check", str(TWO), str(d / "log.csv"), "--replications", "2"]):
        rc, _, err = _cli(*args)
        if kind == "short" and len(lines) == 1:
            _clean_failure(rc, err, "no events")
            continue
        if kind == "timestamp" and lines[i].split(",")[0] == "" and rc == 0:
            continue
        _clean_failure(rc, err, str(d / "log.csv"))
        assert not (d / "c.toml").exists()


def test_map_onto_an_existing_column_is_refused(tmp_path, native_log):
    (tmp_path / "log.csv").write_text("\n".join([native_log[0] + ",ts"] + [ln + ",1" for ln in native_log[1:50]]))
    rc, _, err = _cli("calibrate", str(tmp_path / "log.csv"), "--map", "time=ts", "--out", str(tmp_path / "c.toml"))
    _clean_failure(rc, err, "already has a column 'timestamp'")


# --------------------------------------------------------------------------- 9. terminal safety
@settings(max_examples=60, deadline=None, derandomize=True)
@given(name=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda s: CONTROL.search(s) is not None))
def test_control_characters_never_reach_the_terminal_raw(tmp_path_factory, name):
    data = json.loads(json.dumps(BASE))
    data["stations"][0]["name"] = name
    f = _spec_file(tmp_path_factory.mktemp("t"), data)
    rc, out, err = _cli("validate", str(f))
    _clean_failure(rc, err)
    assert not CONTROL.search(out.replace("\n", ""))


def test_safe_text_shows_escapes():
    assert safe_text("a\x1b[2Jb\nc") == "a\\x1b[2Jb\nc"
    assert safe_text("a\nerror: forged", keep_newlines=False) == "a\\nerror: forged"


# --------------------------------------------------------------------------- 10. Ctrl-C
@pytest.mark.slow
def test_ctrl_c_stops_the_workers_at_once(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))",
                             "compare", "--factories", "dark-factory", "microfactory", "--scenarios", "baseline",
                             "surge", "--replications", "3", "--weeks", "8", "--jobs", "2", "--out", str(out)],
                            start_new_session=True, preexec_fn=_default_sigint, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300  # a guard against a hang only: nothing here depends on speed
    while not list((out / "jobs").glob("*__*.json")) if (out / "jobs").exists() else True:
        assert proc.poll() is None
        if time.time() > deadline:
            proc.kill()
            pytest.fail("no job finished within 300 s (a hang?)")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "--resume" in err
    # no worker of the group is left running: they were stopped, not waited for (poll for the
    # group to be gone; the deadline only guards against a hang)
    deadline = time.time() + 60
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        if time.time() > deadline:
            pytest.fail("workers of the stopped compare still run after 60 s")
        time.sleep(0.05)
    assert len(list((out / "jobs").glob("*__*.json"))) < 12


def _default_sigint() -> None:
    """In the child: Ctrl-C does its default, even when this test runner was started with SIGINT
    ignored (a background job of a non-interactive shell), which Python would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
