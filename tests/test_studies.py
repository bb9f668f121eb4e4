"""Distributed optimisation (issue 28 item 4): several `twin optimize` processes run the trials of
one study kept in an optuna journal file or a real PostgreSQL server (started here on
127.0.0.1), and one of them confirms. The grid of a buffer allocation is known exactly (a Markov
chain, tests/test_optimize.py), and a grid's designs and values do not depend on which process
ran them, so the shared study must give the single-process answer."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import expo, line
from test_optimize import tandem_throughput

from twin import optimize

MEANS = [1.0, 1.2, 0.9]
GUARD = 900  # s: only against a hang


def _spec(tmp: Path) -> Path:
    st = [{"name": "a", "process_time": expo(MEANS[0])}]
    st += [{"name": n, "process_time": expo(m), "buffer": 0} for n, m in zip("bc", MEANS[1:])]
    path = tmp / "tandem.toml"
    path.write_text(line(st, run={"horizon": 40000, "warmup": 500}).to_toml())
    return path


def _args(spec: Path) -> list[str]:
    # the event engine, not the exact recursion: each design takes long enough for both processes to get some
    return ["optimize", str(spec), "--vary", "stations.b.buffer=0..4", "--vary", "stations.c.buffer=0..4",
            "--maximize", "throughput_per_hour", "--constraint", "stations.b.buffer + stations.c.buffer <= 4",
            "--trials", "30", "--replications", "2", "--seed", "3", "--jobs", "1", "--engine", "simpy"]


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "twin.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _two_processes(tmp: Path, storage: str) -> None:
    spec = _spec(tmp)
    procs = [_cli(*_args(spec), "--storage", storage, "--study", "buffers", "--out", str(tmp / f"out{i}"))
             for i in range(2)]
    outs = [p.communicate(timeout=GUARD) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    written = [tmp / f"out{i}" / "kpis.json" for i in range(2) if (tmp / f"out{i}" / "kpis.json").exists()]
    assert written, [o for o, _ in outs]
    bodies = [json.loads(w.read_text()) for w in written]
    # one process confirmed; the other either said so or, coming later, read the stored result
    confirmed = {b["meta"]["study"]["confirmed_by"] for b in bodies}
    assert len(confirmed) == 1
    others = [o for (o, _), i in zip(outs, range(2)) if not (tmp / f"out{i}" / "kpis.json").exists()]
    assert all("is confirming the best designs" in o for o in others)
    split = bodies[0]["meta"]["study"]["trials_by_process"]
    assert sum(split.values()) == 15 and len(split) == 2 and min(split.values()) >= 1, split

    # the same answer as one process alone (the grid's designs and every design's values are fixed)
    alone = optimize.optimize(twin_load(spec), [optimize.parse_dimension("stations.b.buffer=0..4"),
                                                optimize.parse_dimension("stations.c.buffer=0..4")],
                              [("throughput_per_hour", "maximize")], ["stations.b.buffer + stations.c.buffer <= 4"],
                              trials=30, replications=2, seed=3, engine="simpy")
    got = bodies[0]
    assert got["best"]["params"] == alone["best"]["params"]
    assert got["best"]["kpis"]["throughput_per_hour"]["mean"] == alone["best"]["kpis"]["throughput_per_hour"]["mean"]
    assert [r["throughput_per_hour"] for r in got["trials"]] == [r["throughput_per_hour"] for r in alone["trials"]]
    # and the known optimum of the exact chain, within 1 %
    mu = [1 / m for m in MEANS]
    exact = {(b, c): tandem_throughput(mu, [b, c]) * 3600 for b in range(5) for c in range(5) if b + c <= 4}
    pick = got["best"]["params"]
    assert exact[(pick["stations.b.buffer"], pick["stations.c.buffer"])] >= 0.99 * max(exact.values())

    # a rerun of the same command finds the study done and writes the stored result: no new trial
    again = _cli(*_args(spec), "--storage", storage, "--study", "buffers", "--out", str(tmp / "again"))
    _, err = again.communicate(timeout=GUARD)
    assert again.returncode == 0, err
    body = json.loads((tmp / "again" / "kpis.json").read_text())
    for k in ("best", "runners_up", "trials"):
        assert body[k] == got[k]
    assert body["meta"]["study"] == got["meta"]["study"]


def twin_load(path: Path):
    import twin

    return twin.load(path)


@pytest.mark.slow
def test_two_processes_share_a_journal_study(tmp_path):
    _two_processes(tmp_path, f"journal:{tmp_path / 'study.log'}")


# --------------------------------------------------------------------------- a real PostgreSQL
def _pg_bin() -> Path | None:
    for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    pytest.importorskip("psycopg", reason="no PostgreSQL driver (pip install -e '.[postgres]')")
    bin_ = _pg_bin()
    if bin_ is None:
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql; .ci/run installs it)")
    # not under pytest's own folder: as root that is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="twin-pg-"))
    data = root / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    port = _free_port()

    def run(*cmd: str) -> None:
        r = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, f"{' '.join(cmd)}: {r.stdout}{r.stderr}"

    run(str(bin_ / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
    run(str(bin_ / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
        "-o", f"-h 127.0.0.1 -p {port} -k {root}", "start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bin_ / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_share_a_postgresql_study(tmp_path, postgres):
    _two_processes(tmp_path, postgres)


# --------------------------------------------------------------------------- bad input
def _fails(tmp: Path, *extra: str) -> str:
    spec = _spec(tmp)
    p = _cli(*_args(spec), "--trials", "2", *extra, "--out", str(tmp / "never"))
    out, err = p.communicate(timeout=GUARD)
    assert p.returncode == 2, (out, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp / "never").exists()
    return err


def test_a_storage_that_cannot_be_reached_is_refused_before_anything_runs(tmp_path):
    err = _fails(tmp_path, "--storage", f"postgresql://nobody:secret@127.0.0.1:{_free_port()}/x", "--study", "s")
    assert "--storage postgresql://nobody:***@127.0.0.1" in err and "secret" not in err


# each case starts a twin process; the default run keeps two, CI runs the rest under -m slow
@pytest.mark.parametrize("storage,says", [
    pytest.param("journal:", "needs a file path", marks=pytest.mark.slow),
    pytest.param("mongodb://h/x", "neither journal", marks=pytest.mark.slow),
    ("journal:{tmp}", "is a folder"),
    pytest.param("journal:{tmp}/no/such/s.log", "does not exist", marks=pytest.mark.slow),
    ("journal:{tmp}/junk.log", "is not an optuna journal")])
def test_bad_storage_urls_are_refused(tmp_path, storage, says):
    (tmp_path / "junk.log").write_text("hello\n")
    err = _fails(tmp_path, "--storage", storage.format(tmp=tmp_path), "--study", "s")
    assert says in err
    assert (tmp_path / "junk.log").read_text() == "hello\n"  # nothing destroyed


def test_storage_and_study_come_together(tmp_path):
    assert "--storage/--study" in _fails(tmp_path, "--study", "s")
    assert "--storage/--study" in _fails(tmp_path, "--storage", f"journal:{tmp_path / 's.log'}")


def test_a_study_of_another_problem_is_not_joined(tmp_path):
    log = tmp_path / "s.log"
    spec = _spec(tmp_path)
    first = _cli(*_args(spec), "--trials", "2", "--horizon", "2000", "--storage", f"journal:{log}", "--study", "s")
    _, err = first.communicate(timeout=GUARD)
    assert first.returncode == 0, err
    before = log.read_bytes()
    err = _fails(tmp_path, "--horizon", "3000", "--storage", f"journal:{log}", "--study", "s")
    assert "made for another problem" in err and "horizon" in err
    assert log.read_bytes().startswith(before)
