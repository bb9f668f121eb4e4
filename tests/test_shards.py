"""Shards (issue 28 item 3): ``--shard I/N`` runs a deterministic 1/N of a command's jobs, and
``twin merge`` of the N folders writes the files of the unsharded run byte for byte; shards
that do not add up, of another command, unfinished or tampered with are refused (exit 2)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import canonical_argv, main

ROOT = Path(__file__).resolve().parent.parent

LINE = """name = "{name}"
[source]
kind = "orders"
[demand]
base_per_week = 2000
order_size = 10
due = "1d"
[[products]]
name = "p"
route = ["m", "t"]
[[stations]]
name = "m"
servers = 1
process_time = {{ dist = "exponential", mean = "{mean}s" }}
buffer = 4
[stations.failures]
ttf = {{ dist = "exponential", mean = "6h" }}
ttr = {{ dist = "exponential", mean = "20min" }}
[[stations]]
name = "t"
servers = {testers}
process_time = {{ dist = "exponential", mean = "200s" }}
buffer = 4
[[capabilities]]
name = "two_testers"
description = "a second tester"
off = {{ "stations.1.servers" = 1 }}
"""

SATURATED = """name = "pair"
[source]
kind = "saturated"
[[products]]
name = "p"
route = ["a", "b"]
[[stations]]
name = "a"
process_time = { dist = "exponential", mean = "60s" }
buffer = 2
[[stations]]
name = "b"
process_time = { dist = "exponential", mean = "55s" }
buffer = 2
"""

UNC = """[[parameter]]
name = "tester time"
factory = "*"
path = "stations.1.process_time.mean"
scale = [0.9, 1.1]
reason = "a behavioural range (test)"

[[parameter]]
name = "electricity price"
factory = "*"
path = "costs.energy_per_kwh"
low = 0.08
high = 0.12
reason = "a price range (test)"
"""

DESIGNS = """[[factory]]
name = "a.toml"
variable = "testers"
[[factory.candidate]]
label = "1 tester"
set = { "stations.1.servers" = 1 }
[[factory.candidate]]
label = "2 testers"
set = { "stations.1.servers" = 2 }
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    """Two small make-to-order lines and their files, in the current folder (relative paths: the
    recorded command lines are the same whatever the folder)."""
    (tmp_path / "a.toml").write_text(LINE.format(name="a", mean=150, testers=2))
    (tmp_path / "b.toml").write_text(LINE.format(name="b", mean=140, testers=1))
    (tmp_path / "pair.toml").write_text(SATURATED)
    (tmp_path / "u.toml").write_text(UNC)
    (tmp_path / "d.toml").write_text(DESIGNS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _twin(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _sharded(command: list[str], n: int, out: str, order: list[int] | None = None) -> None:
    for i in order or range(n):
        rc, _, err = _twin(*command, "--shard", f"{i}/{n}", "--out", f"shard{i}")
        assert rc == 0, err
    rc, _, err = _twin("merge", *[f"shard{i}" for i in range(n)], "--out", out)
    assert rc == 0, err


def test_a_sharded_sweep_merges_into_the_unsharded_files(work):
    """Both engines: the serial-line recursion and SimPy events; 3 shards of 8 runs (uneven)."""
    for engine in ("auto", "simpy"):
        cmd = ["sweep", "pair.toml", "--vary", "stations.0.buffer=1,2,4,8", "--replications", "2", "--horizon", "1d",
               "--warmup", "2h", "--jobs", "1", "--engine", engine, "-q"]
        rc, _, err = _twin(*cmd, "--out", f"whole-{engine}")
        assert rc == 0, err
        whole = _files(work / f"whole-{engine}")
        os.rename(work / f"whole-{engine}", work / "kept")
        _sharded(cmd, 3, f"whole-{engine}", order=[2, 0, 1])
        assert _files(work / f"whole-{engine}") == whole
        stored = sorted(p.name for i in range(3) for p in (work / f"shard{i}" / "jobs").iterdir())
        assert stored == [f"sweep-{i:06d}.json" for i in range(8)]  # each run in exactly one shard
        for i in range(3):
            m = json.loads((work / f"shard{i}" / "shard.json").read_text())
            assert m["stages"]["sweep"] == {"jobs": 8, "mine": len(range(i, 8, 3)), "reused": 0} and m["complete"]
        for d in ["kept"] + [f"shard{i}" for i in range(3)]:
            subprocess.run(["rm", "-rf", str(work / d)], check=True)


def test_a_shard_run_again_keeps_its_jobs_and_a_damaged_one_runs_again(work, monkeypatch):
    from twin import experiment

    cmd = ["sweep", "pair.toml", "--vary", "stations.0.buffer=1,2", "--replications", "2", "--horizon", "1d",
           "--warmup", "2h", "--engine", "simpy", "--jobs", "1", "-q"]
    assert _twin(*cmd, "--shard", "1/2", "--out", "s1")[0] == 0
    (work / "s1" / "jobs" / "sweep-000003.json").write_text("{ truncated")
    calls = []
    real = experiment.run_once
    monkeypatch.setattr(experiment, "run_once", lambda *a: calls.append(a[3]) or real(*a))
    rc, out, _ = _twin(*cmd, "--shard", "1/2", "--out", "s1")
    assert rc == 0 and len(calls) == 1  # only the damaged job ran again
    assert "2 of 4 (1 kept from before)" in out


def test_shards_that_do_not_add_up_are_refused_naming_them(work):
    cmd = ["sweep", "pair.toml", "--vary", "stations.0.buffer=1,2,3", "--horizon", "1d", "--warmup", "2h",
           "--replications", "1", "--engine", "simpy", "--jobs", "1", "-q"]
    for i in range(3):
        assert _twin(*cmd, "--shard", f"{i}/3", "--out", f"s{i}")[0] == 0
    assert _twin(*cmd, "--replications", "2", "--shard", "0/3", "--out", "other")[0] == 0
    assert _twin(*cmd, "--shard", "0/2", "--out", "half")[0] == 0
    cases = {
        ("s0", "s1"): "2 of 3 missing (2/3)".replace("2 of 3", "1 of 3"),
        ("s0", "s1", "s1"): "given twice",
        ("s0", "s1", "s2", "other"): "a shard of another command",
        ("s1", "s2", "half"): "but s1 is one of 3",
        ("s0", "s1", "nowhere"): "nowhere: cannot read it",
        ("s0", "s1", "pair.toml"): "pair.toml: not a folder",
    }
    for dirs, message in cases.items():
        rc, _, err = _twin("merge", *dirs, "--out", "whole")
        assert rc == 2 and message in err and "Traceback" not in err, (dirs, err)
        assert not (work / "whole").exists()
    # a shard copied in as another: the job files are not its share
    subprocess.run(["cp", "-r", "s1", "s1b"], check=True)
    m = json.loads((work / "s1b" / "shard.json").read_text())
    (work / "s1b" / "shard.json").write_text(json.dumps({**m, "shard": 2}))
    rc, _, err = _twin("merge", "s0", "s1", "s1b", "--out", "whole")
    assert rc == 2 and "is not shard 2/3's" in err
    # a shard that did not finish, a tampered manifest, a job whose input changed
    m = json.loads((work / "s2" / "shard.json").read_text())
    (work / "s2" / "shard.json").write_text(json.dumps({**m, "complete": False}))
    rc, _, err = _twin("merge", "s0", "s1", "s2", "--out", "whole")
    assert rc == 2 and "s2: shard 2/3 did not finish" in err
    (work / "s2" / "shard.json").write_text(json.dumps(m)[:40])
    rc, _, err = _twin("merge", "s0", "s1", "s2", "--out", "whole")
    assert rc == 2 and "shard.json: damaged" in err
    (work / "s2" / "shard.json").write_text(json.dumps(m))
    (work / "s2" / "jobs" / "sweep-000002.json").unlink()
    rc, _, err = _twin("merge", "s0", "s1", "s2", "--out", "whole")
    assert rc == 2 and "holds 0 of the 1 sweep jobs" in err
    assert _twin(*cmd, "--shard", "2/3", "--out", "s2")[0] == 0
    (work / "pair.toml").write_text(SATURATED.replace('"55s"', '"56s"'))  # the spec edited after the shards ran
    rc, _, err = _twin("merge", "s0", "s1", "s2", "--out", "whole")
    assert rc == 2 and "was run with other input" in err and not (work / "whole").exists()


def test_a_merge_runs_nothing_and_needs_no_cluster(work):
    """Shards run on a Dask cluster (their command names its scheduler) merge after the cluster
    is gone: the merge takes every job from the shards and contacts no scheduler."""
    cmd = ["sweep", "pair.toml", "--vary", "stations.0.buffer=1,2", "--horizon", "1d", "--warmup", "1h",
           "--replications", "1", "--engine", "simpy", "-q"]
    for i in range(2):
        assert _twin(*cmd, "--shard", f"{i}/2", "--out", f"s{i}")[0] == 0
        m = json.loads((work / f"s{i}" / "shard.json").read_text())
        m["command"] += ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"]  # nothing listens there
        (work / f"s{i}" / "shard.json").write_text(json.dumps(m))
    rc, _, err = _twin("merge", "s0", "s1", "--out", "whole")
    assert rc == 0, err
    assert "--scheduler tcp://127.0.0.1:9" in json.loads((work / "whole" / "kpis.json").read_text())["meta"]["command"]


def test_shard_options_are_checked(work):
    for bad, message in (("3/3", "I counts from 0 to N-1 = 2"), ("0/0", "N must be 1"), ("1", "expected I/N"),
                         ("a/b", "expected I/N")):
        rc, _, err = _twin("sweep", "pair.toml", "--vary", "stations.0.buffer=1,2", "--shard", bad, "--out", "s")
        assert rc == 2 and message in err, (bad, err)
    rc, _, err = _twin("sweep", "pair.toml", "--vary", "stations.0.buffer=1,2", "--shard", "0/2")
    assert rc == 2 and "--shard: give --out DIR" in err
    # a bad input is refused before the shard's folder is made
    rc, _, err = _twin("sweep", "pair.toml", "--vary", "stations.0.buffr=1,2", "--shard", "0/2", "--out", "s")
    assert rc == 2 and "buffr" in err and not (work / "s").exists()
    assert _twin("sweep", "pair.toml", "--vary", "stations.0.buffer=1,2", "--horizon", "1d", "--warmup", "1h",
                 "--shard", "0/2", "--out", "s", "-q")[0] == 0
    rc, _, err = _twin("sweep", "pair.toml", "--vary", "stations.0.buffer=1,3", "--horizon", "1d", "--warmup", "1h",
                       "--shard", "0/2", "--out", "s", "-q")
    assert rc == 2 and "holds shard 0/2 of 'twin sweep" in err
    rc, _, err = _twin("merge", "s", "--out", "s")
    assert rc == 2


def test_abbreviated_options_are_recorded_in_full():
    opts = ["--shard", "--out", "--replications", "--seed", "--set"]
    assert canonical_argv(["--rep", "2", "--sh=0/2", "--se", "x", "--", "--rep"], opts) == \
        ["--replications", "2", "--shard=0/2", "--se", "x", "--", "--rep"]


@pytest.mark.slow
def test_a_sharded_compare_with_designs_and_uncertainty_merges_byte_for_byte(work):
    """The three stages of a compare (grid, candidate designs, uncertainty worlds) sharded 3 ways;
    kpis.json, runs.csv, every CSV, report.md and report.html as the unsharded run writes them."""
    cmd = ["compare", "--factories", "a.toml", "b.toml", "--scenarios", "baseline", "surge", "--replications", "2",
           "--weeks", "4", "--warmup", "1d", "--designs", "d.toml", "--uncertainty", "2", "--uncertainty-file",
           "u.toml", "--price-draws", "5", "--jobs", "1", "-q"]
    rc, _, err = _twin(*cmd, "--out", "whole")
    assert rc == 0, err
    whole = _files(work / "whole")
    assert {"kpis.json", "runs.csv", "report.html", "report.md", "uncertainty.csv"} <= set(whole)
    os.rename(work / "whole", work / "kept")
    _sharded(cmd, 3, "whole", order=[1, 2, 0])
    assert _files(work / "whole") == whole
    stages = json.loads((work / "shard0" / "shard.json").read_text())["stages"]
    assert {s: c["jobs"] for s, c in stages.items()} == {"grid": 8, "designs": 4, "uncertainty": 24}


@pytest.mark.slow
def test_a_sharded_ablation_in_processes_merges_byte_for_byte(work):
    """Shards as separate processes (as a Slurm array runs them), two at a time by xargs -P."""
    cmd = ["ablate", "a.toml", "--scenarios", "baseline", "--replications", "3", "--weeks", "1", "--warmup", "1d",
           "--jobs", "1", "-q"]
    rc, _, err = _twin(*cmd, "--out", "whole")
    assert rc == 0, err
    whole = _files(work / "whole")
    os.rename(work / "whole", work / "kept")
    twin = f"{sys.executable} -m twin.cli"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shell = (f"seq 0 3 | xargs -P 2 -I{{}} {twin} {' '.join(cmd)} --shard {{}}/4 --out shard{{}} && "
             f"{twin} merge shard0 shard1 shard2 shard3 --out whole -q")
    r = subprocess.run(["bash", "-c", shell], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert _files(work / "whole") == whole


def test_the_howto_commands_are_twin_commands_that_parse():
    """Every twin command of the how-to (the xargs line, the Slurm script, the merges) is one the
    parser takes, with the shell's variables as Slurm sets them."""
    import re
    import shlex

    from twin.cli import build_parser

    page = (ROOT / "docs" / "howto" / "10_shards_on_a_cluster.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", page, re.S)
    env = {"SLURM_CPUS_PER_TASK": "4", "SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "16"}
    commands = []
    for block in blocks:
        text = block.replace("\\\n", " ")
        for name, value in env.items():
            text = text.replace(f'"${name}"', value).replace(f"${name}", value)
        for line in text.splitlines():
            line = line.replace("{}", "3").replace("shards/*", "shards/0 shards/1")
            for part in re.findall(r"(?:^|\| |'|\s)(twin (?:compare|merge|sweep|ablate)[^'|]*)", line):
                commands.append(shlex.split(part)[1:])
    assert sum(c[0] == "merge" for c in commands) == 2 and sum("--shard" in c for c in commands) == 2
    parser = build_parser()
    for c in commands:
        args = parser.parse_args(c)
        if c[0] == "compare":
            assert args.shard in ((3, 4), (7, 16)), c
