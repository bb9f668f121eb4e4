"""Bad input never crashes twin (issue 6): property-based mutation of valid specs and
random bytes, each answered with one clear line per problem, exit code 2, no
traceback and no output; interrupted sweeps resume to the same result."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from twin.cli import main
from twin.spec import SpecError, validate

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = tomllib.loads((ROOT / "examples" / "two_machine.toml").read_text())
DARK = tomllib.loads((ROOT / "lines" / "dark_factory.toml").read_text())


def _paths(d, prefix=()):
    """Every (path, value) in a nested dict/list structure."""
    if isinstance(d, dict):
        for k, v in d.items():
            yield prefix + (k,), v
            yield from _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield prefix + (i,), v
            yield from _paths(v, prefix + (i,))


def _parent(d, path):
    for p in path[:-1]:
        d = d[p]
    return d


BAD_VALUES = [-1, 0, -3.5, "-5s", "12 parsecs", "abc", "", [], {}, [1, "x"], {"dist": "zipf", "mean": 3},
              {"dist": "gamma", "mean": 5, "cv": -1}, {"dist": "exponential"}, 1e309, True, "1e999h", 2.5, "nan",
              {"dist": "normal", "mean": 10, "cv": 0.5, "extra": 1}, 10**30, "mon-fri", "25:00"]


@st.composite
def mutated(draw, base):
    data = copy.deepcopy(base)
    n = draw(st.integers(1, 3))
    for _ in range(n):
        paths = [p for p, _ in _paths(data)]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(data, path)
        key = path[-1]
        op = draw(st.sampled_from(["drop", "retype", "rename", "corrupt"]))
        if op == "drop":
            del parent[key]
        elif op == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from([str(key)[:-1] or "x", str(key) + "s", str(key).upper(), "sever", "bufer"]))
            parent[new] = parent.pop(key)
        elif op == "retype":
            parent[key] = copy.deepcopy(draw(st.sampled_from(["text", 3, 2.5, [1, 2], {"a": 1}, False])))
        else:
            parent[key] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))  # a shared value mutated later would loop
    return data


LINE = re.compile(r"^error: (.+?): (.+?): (.+)$")


def _check_cli(tmp_path: Path, data: dict, horizon: str = "2h") -> None:
    spec = tmp_path / "spec.toml"
    out = tmp_path / "out"
    try:
        spec.write_text(tomli_w.dumps(data))
    except (TypeError, ValueError, OverflowError):
        return  # not representable in TOML: a user cannot write it either
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["run", str(spec), "--horizon", horizon, "--warmup", "0", "--replications", "1", "--out", str(out)])
    text = err.getvalue()
    assert "Traceback" not in text
    if rc == 0:
        assert (out / "kpis.json").exists()
        return
    assert rc == 2, text
    assert not out.exists()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        m = LINE.match(ln)
        assert m, ln
        assert m.group(1).startswith(str(spec)), ln
    assert len(lines) == len(set(lines))


@settings(max_examples=500, deadline=None, derandomize=True)
@given(data=mutated(EXAMPLE))
@pytest.mark.slow
def test_mutated_specs_fail_cleanly_or_run(tmp_path_factory, data):
    _check_cli(tmp_path_factory.mktemp("m"), data)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=mutated(DARK))
def test_mutated_reference_factory_is_validated_cleanly(data):
    try:
        spec = validate(data, source="dark.toml")
    except SpecError as e:
        assert e.problems
        for p in e.problems:
            assert p.startswith("dark.toml: ") and "\n" not in p, p
        return
    assert spec.name


@settings(max_examples=200, deadline=None, derandomize=True)
@given(blob=st.binary(min_size=0, max_size=4000))
def test_random_bytes_are_refused_cleanly(tmp_path_factory, blob):
    d = tmp_path_factory.mktemp("b")
    f = d / "spec.toml"
    f.write_bytes(blob)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["validate", str(f)])
    text = err.getvalue()
    assert rc == 2 and "Traceback" not in text
    assert all(LINE.match(ln) or ln.startswith(f"error: {f}: ") for ln in text.splitlines() if ln.strip())


def test_each_problem_listed_once_with_its_path(tmp_path, capsys):
    bad = copy.deepcopy(DARK)
    bad["stations"][0]["servers"] = 0
    bad["stations"][1]["bufer"] = 2
    bad["stations"][2]["quality"]["detection"] = 1.5
    bad["stations"][3]["maintenance"]["policy"] = "clairvoyant"
    bad["workers"][0]["calendar"] = "nights"
    bad["run"]["replications"] = 0
    f = tmp_path / "bad.toml"
    f.write_text(tomli_w.dumps(bad))
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: stations.smt.servers: Input should be greater than or equal to 1" in err
    assert f"{f}: stations.board_test.bufer: unknown key (did you mean 'buffer'?)" in err
    assert f"{f}: stations.assembly.quality.detection: Input should be less than or equal to 1" in err
    assert f"{f}: run.replications" in err
    # semantic checks run once the schema is satisfied: fix the schema errors and see them
    bad["stations"][0]["servers"] = 1
    del bad["stations"][1]["bufer"]
    bad["stations"][2]["quality"]["detection"] = 0.9
    bad["run"]["replications"] = 1
    f.write_text(tomli_w.dumps(bad))
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert "stations.functional_test.maintenance.policy: unknown maintenance policy 'clairvoyant'" in err
    assert "workers.technicians.calendar: calendar 'nights' is not defined" in err


# --------------------------------------------------------------------------- crash-safe sweeps
SWEEP = ["compare", "--factories", "dark-factory", "microfactory", "--scenarios", "baseline", "disruption",
         "--replications", "2", "--weeks", "5", "--warmup", "1w", "--seed", "9"]


def _twin(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))", *args]


def _wait_for_jobs(job_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if job_dir.exists() and len([p for p in job_dir.glob("*__*.json")]) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError("the sweep finished before it could be interrupted")
        time.sleep(0.05)
    raise AssertionError("no job finished in time")


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    full = tmp_path / "full"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*SWEEP, "--jobs", "1", "--out", str(full)]) == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(_twin(*SWEEP, "--jobs", "2", "--out", str(cut)), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_jobs(cut / "jobs", 2, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(list((cut / "jobs").glob("*__*.json")))
    assert 2 <= stored < 8
    assert not (cut / "report.md").exists()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*SWEEP, "--jobs", "2", "--out", str(cut), "--resume"]) == 0
    for f in ("runs.csv", "daily.csv", "costs.csv", "stations.csv"):
        assert (cut / f).read_bytes() == (full / f).read_bytes(), f
    assert not list(cut.rglob("*.tmp"))


@pytest.mark.slow
def test_ctrl_c_stops_the_compare_saying_how_to_resume(tmp_path):
    # checked by what happened, not by how long it took: the exit code, the hint, the jobs on
    # disk (whole files only) and no report; the timeout only guards against a hang
    out = tmp_path / "out"
    proc = subprocess.Popen(_twin(*SWEEP, "--jobs", "2", "--out", str(out)), start_new_session=True,
                            preexec_fn=_default_sigint,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_jobs(out / "jobs", 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130
    assert "--resume" in err and "Traceback" not in err
    jobs = list((out / "jobs").glob("*__*.json"))
    assert 1 <= len(jobs) < 8
    for j in jobs:
        json.loads(j.read_text())
    assert not (out / "report.md").exists() and not (out / "kpis.json").exists()


def _default_sigint() -> None:
    """In the child: Ctrl-C does its default, even when this test runner was started with SIGINT
    ignored (a background job of a non-interactive shell), which Python would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _group_gone(pgid: int, guard: float = 60) -> bool:
    """Whether every process of the group has exited (polled; ``guard`` only stops a hang)."""
    t0 = time.time()
    while time.time() - t0 < guard:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_sigterm_to_the_compare_alone_stops_its_workers_and_says_how_to_resume(tmp_path):
    # the signal goes to the parent only (as `kill PID` or a job scheduler sends it): the parent
    # must stop its workers itself; a resume then finishes the grid to the uninterrupted result
    out = tmp_path / "out"
    proc = subprocess.Popen(_twin(*SWEEP, "--jobs", "2", "--out", str(out)), start_new_session=True,
                            preexec_fn=_default_sigint, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_jobs(out / "jobs", 1, proc)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err
    assert "terminated" in err and "--resume" in err and "Traceback" not in err
    assert _group_gone(proc.pid), "workers of the terminated compare still run"
    jobs = list((out / "jobs").glob("*__*.json"))
    assert 1 <= len(jobs) < 8
    for j in jobs:
        json.loads(j.read_text())
    assert not (out / "report.md").exists() and not (out / "kpis.json").exists()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*SWEEP, "--jobs", "1", "--out", str(out), "--resume"]) == 0
    assert (out / "runs.csv").exists()


def test_the_cli_restores_the_sigterm_handler_it_found():
    before = signal.getsignal(signal.SIGTERM)
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["list"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
