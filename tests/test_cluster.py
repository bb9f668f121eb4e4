"""A real Dask deployment (issue 28 item 5): a `dask scheduler` and two `dask worker` processes
on 127.0.0.1, started here as separate processes as they would be on a cluster. The same
compare through them gives byte-identical results to a local run, and a worker killed while it
holds jobs loses none of them (the scheduler re-runs them on the other worker; every job's
seed is its own, so the result is the same)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

DASK = Path(sys.executable).with_name("dask")
ARGS = ["compare", "--factories", "static-line", "microfactory", "--scenarios", "baseline",
        "--replications", "4", "--weeks", "2", "--warmup", "1d", "--seed", "5"]
GUARD = 600  # s: only against a hang; nothing is asserted about time


def _wait_for(what: str, ok, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Deployment:
    def __init__(self, tmp: Path):
        if not DASK.exists():
            pytest.skip(f"no `dask` command beside {sys.executable} (pip install -e '.[dask]')")
        self.tmp = tmp
        self.file = tmp / "scheduler.json"
        self.logs: list[Path] = []
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0",
                                                   "--no-dashboard", "--scheduler-file", str(self.file)])
        _wait_for("the scheduler file", lambda: self.file.exists() and self.file.stat().st_size > 0)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.worker(f"w{i}") for i in range(2)]
        with distributed.Client(self.address, timeout="30s") as c:
            c.wait_for_workers(2, timeout=120)

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        return subprocess.Popen([str(DASK), *args], stdout=log.open("w"), stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)

    def worker(self, name: str) -> subprocess.Popen:
        return self._start(name, ["worker", "--scheduler-file", str(self.file), "--nthreads", "1",
                                  "--nworkers", "1", "--no-dashboard", "--name", name,
                                  "--host", "127.0.0.1"])

    def close(self) -> None:
        for p in [*self.workers, self.scheduler]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in [*self.workers, self.scheduler]:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    d = Deployment(tmp_path_factory.mktemp("dask"))
    yield d
    d.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    r = subprocess.run([sys.executable, "-m", "twin.cli", *ARGS, "--jobs", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=GUARD)
    assert r.returncode == 0, r.stderr
    return out


def _same(a: Path, b: Path) -> None:
    assert (a / "runs.csv").read_bytes() == (b / "runs.csv").read_bytes()
    ka, kb = json.loads((a / "kpis.json").read_text()), json.loads((b / "kpis.json").read_text())
    # the command line (its executor and --out) is recorded; everything else must agree
    ka["meta"].pop("command"), kb["meta"].pop("command")
    assert ka == kb


@pytest.mark.slow
def test_a_scheduler_and_two_worker_processes_give_the_local_results(cluster, local, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "twin.cli", *ARGS, "--executor", "dask", "--scheduler",
                        cluster.address, "--out", str(out)], capture_output=True, text=True, timeout=GUARD)
    assert r.returncode == 0, r.stderr
    _same(local, out)
    with distributed.Client(cluster.address, timeout="30s") as c:
        executed = c.run(lambda dask_worker: dask_worker.state.executed_count)
    # both worker processes ran simulations: the run really was spread over them
    assert len(executed) == 2 and all(n > 0 for n in executed.values()), executed


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_no_job(cluster, local, tmp_path):
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "twin.cli", *ARGS, "--executor", "dask", "--scheduler",
                            cluster.address, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    victim = None
    with distributed.Client(cluster.address, timeout="30s") as c:
        def busy() -> bool:
            nonlocal victim
            for addr, tasks in c.processing().items():
                if tasks:
                    victim = c.scheduler_info()["workers"][addr]["name"]
                    return True
            return run.poll() is not None
        _wait_for("a worker with jobs in hand", busy)
    assert victim is not None and run.poll() is None, "the run ended before a worker could be killed"
    proc = cluster.workers[int(str(victim)[1:])]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stdout, stderr = run.communicate(timeout=GUARD)
    assert run.returncode == 0, stderr
    _same(local, out)
    # the cluster is whole again for any test after this one
    cluster.workers[int(str(victim)[1:])] = cluster.worker(str(victim))
