"""Every executor gives the same results for the same seeds (issue 5): in-process,
local processes and a Dask distributed LocalCluster."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from twin import compare
from twin.cli import main

GRID = compare.Grid(["dark-factory", "microfactory"], ["baseline"], 3, 2.0, 86400.0, 5)


def _csv(results):
    return compare.runs_frame(results).to_csv(index=False, float_format="%.10g", lineterminator="\n")


@pytest.fixture(scope="module")
def serial():
    return _csv(compare.run_grid(GRID, jobs=1))


@pytest.mark.slow
def test_local_processes_match_serial(serial):
    assert _csv(compare.run_grid(GRID, jobs=2)) == serial


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(serial):
    pytest.importorskip("distributed")
    assert _csv(compare.run_grid(GRID, jobs=2, executor="dask")) == serial


@pytest.mark.slow
def test_cli_dask_executor_gives_the_same_kpis_json(tmp_path):
    pytest.importorskip("distributed")
    args = ["compare", "--factories", "dark-factory", "--scenarios", "baseline", "--replications", "2",
            "--weeks", "1", "--warmup", "1d", "--seed", "3"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--jobs", "1", "--out", str(tmp_path / "a")]) == 0
        assert main([*args, "--jobs", "2", "--executor", "dask", "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "kpis.json").read_text())
    b = json.loads((tmp_path / "b" / "kpis.json").read_text())
    assert a["summary"] == b["summary"]
    assert (tmp_path / "a" / "runs.csv").read_bytes() == (tmp_path / "b" / "runs.csv").read_bytes()


def test_scheduler_needs_the_dask_executor(capsys):
    assert main(["compare", "--scheduler", "tcp://127.0.0.1:1", "--out", "/nonexistent/x"]) == 2
    assert "--scheduler: only used with --executor dask" in capsys.readouterr().err
