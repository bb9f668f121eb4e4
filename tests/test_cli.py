"""The `twin` command end to end: tables, JSON, output files, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "two_machine.toml"


def test_run_json(capsys):
    rc = main(["run", str(EXAMPLE), "--horizon", "1d", "--warmup", "2h", "--replications", "3", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for k in ("throughput_per_hour", "lead_time_mean_s", "lead_time_p95_s", "wip_mean", "oee"):
        assert set(out["kpis"][k]) == {"mean", "ci95"}
    assert set(out["stations"]) == {"smt", "assembly"}
    assert out["bottleneck"] in {"smt", "assembly"}
    assert out["replications"] == 3 and out["horizon"] == 86400
    # the bottleneck of this line is the slower, failing smt (60 s mean vs 55 s)
    assert out["bottleneck"] == "smt"
    assert 0 < out["kpis"]["throughput_per_hour"]["mean"] < 3600 / 55


def test_run_table_and_out_files(tmp_path, capsys):
    out = tmp_path / "res"
    rc = main(["run", str(EXAMPLE), "--horizon", "12h", "--warmup", "1h", "--replications", "2", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "throughput" in text and "bottleneck" in text and "smt" in text
    names = {p.name for p in out.iterdir()}
    assert {"kpis.json", "replications.csv", "stations.csv", "lots.csv", "states.csv", "timeseries.csv",
            "report.html"} <= names
    page = (out / "report.html").read_text()
    # self-contained: plotly.js inline, no external script or stylesheet
    assert "<script src=" not in page and "<link" not in page and "Station states" in page
    assert "<td>smt</td>" in page and "throughput (good units/h)" in page
    assert not [n for n in names if n.endswith(".tmp")]
    meta = json.loads((out / "kpis.json").read_text())["meta"]
    assert meta["spec_sha256"] and meta["command"].startswith("twin run")


def test_same_seed_byte_identical_kpis(tmp_path):
    for d in ("a", "b"):
        assert main(["run", str(EXAMPLE), "--horizon", "6h", "--warmup", "0", "--replications", "2", "--seed", "4",
                     "--out", str(tmp_path / d)]) == 0
    a = json.loads((tmp_path / "a" / "kpis.json").read_text())
    b = json.loads((tmp_path / "b" / "kpis.json").read_text())
    a.pop("meta"), b.pop("meta")
    assert a == b
    assert (tmp_path / "a" / "lots.csv").read_bytes() == (tmp_path / "b" / "lots.csv").read_bytes()


def test_validate_ok(capsys):
    assert main(["validate", str(EXAMPLE)]) == 0
    assert "ok" in capsys.readouterr().out


LOOP = """
name = "loop"
[[products]]
name = "p"
route = ["a", "b", "a"]
[[stations]]
name = "a"
buffer = 0
process_time = 10
[[stations]]
name = "b"
buffer = 0
process_time = 10
[[stations]]
name = "spare"
process_time = 10
"""


def test_warnings_for_unvisited_stations_and_deadlock_loops(tmp_path, capsys):
    f = tmp_path / "loop.toml"
    f.write_text(LOOP)
    assert main(["validate", str(f)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {f}: stations.spare: no product visits this station" in err
    assert f"warning: {f}: stations.a.buffer: routes loop through a -> b -> a" in err
    # and the warning is earned: with hand-offs only, a's one machine waits for b to take its
    # lot while b's machine waits for a to take the lot coming back, from the first lot on
    assert main(["run", str(f), "--horizon", "1h", "--replications", "1", "--json"]) == 0
    cap = capsys.readouterr()
    assert "routes loop through" in cap.err
    assert json.loads(cap.out)["kpis"]["throughput_per_hour"]["mean"] == 0
    # an unlimited buffer anywhere on the loop breaks the cycle of waits: no warning
    f.write_text(LOOP.replace('name = "b"\nbuffer = 0', 'name = "b"'))
    assert main(["validate", str(f)]) == 0
    assert "routes loop" not in capsys.readouterr().err


BAD = """
name = "bad"
[source]
kind = "poison"
[[products]]
name = "p"
route = ["a", "bb"]
[[stations]]
name = "a"
servrs = 2
process_time = { dist = "expo", mean = "1s" }
[[stations]]
name = "b"
servers = 0
buffer = -1
process_time = { dist = "gamma", mean = "-5s", cv = 0.5 }
"""


def test_bad_spec_lists_every_problem_exit_2_no_output(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    out = tmp_path / "out"
    rc = main(["run", str(f), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err
    assert not out.exists()
    assert "Traceback" not in err
    expected = [
        "source.kind",
        "stations.a.servrs: unknown key (did you mean 'servers'?)",
        "stations.a.process_time: unknown distribution 'expo'",
        "stations.b.servers",
        "stations.b.buffer",
        "stations.b.process_time.mean: must be > 0",
    ]
    for e in expected:
        assert f"{f}: {e}" in err, e


def test_semantic_errors(tmp_path, capsys):
    f = tmp_path / "sem.toml"
    f.write_text('name = "s"\n[run]\nhorizon = "1h"\nwarmup = "2h"\n[[products]]\nname = "p"\nroute = ["a", "bb"]\n'
                 '[[stations]]\nname = "a"\nprocess_time = 1\n[[stations]]\nname = "b"\nprocess_time = 1\n')
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err
    assert f"{f}: products.p.route.1: unknown station 'bb' (did you mean 'b'?)" in err
    assert f"{f}: run.warmup: warm-up" in err


@pytest.mark.parametrize("content,needle", [
    (b"", "file is empty"),
    (b"name = \n", "invalid TOML"),
    (b"\x00\x01\x02\xff", "not a text file"),
])
def test_bad_files(tmp_path, capsys, content, needle):
    f = tmp_path / "x.toml"
    f.write_bytes(content)
    assert main(["run", str(f)]) == 2
    assert needle in capsys.readouterr().err


def test_missing_file_and_bad_flags(capsys):
    assert main(["run", "/no/such/spec.toml"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["run", str(EXAMPLE), "--horizon", "-3h"]) == 2
    assert main(["run", str(EXAMPLE), "--replications", "0"]) == 2
    assert main(["run", str(EXAMPLE), "--horizon", "1h", "--warmup", "2h"]) == 2
    assert "--warmup" in capsys.readouterr().err


def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "twin.cli", "run", str(EXAMPLE), "--horizon", "2h", "--warmup", "0",
                        "--replications", "1", "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["kpis"]["throughput_per_hour"]["mean"] > 0


def test_sweep_runs_a_grid_and_writes_its_tables(tmp_path, capsys):
    out = tmp_path / "sw"
    argv = ["sweep", str(EXAMPLE), "--vary", "stations.smt.servers=1,2", "--vary", "stations.assembly.buffer=[0, 5]",
            "--horizon", "1d", "--warmup", "2h", "--replications", "3", "--jobs", "2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 points x 3 replications" in text and "smt.servers" in text
    names = {p.name for p in out.iterdir()}
    assert names == {"sweep.csv", "sweep_summary.csv", "kpis.json", "report.html"}
    doc = json.loads((out / "kpis.json").read_text())
    assert doc["meta"]["grid"] == {"stations.smt.servers": [1, 2], "stations.assembly.buffer": [0, 5]}
    pts = {(p["stations.smt.servers"], p["stations.assembly.buffer"]): p for p in doc["points"]}
    # a second smt machine lifts the slow, failing smt's throughput toward assembly's 65.5/h
    assert pts[(2, 5)]["throughput_per_hour"] > pts[(1, 5)]["throughput_per_hour"] + 5
    assert pts[(2, 5)]["throughput_per_hour"] <= 3600 / 55 + 1e-9
    # the same seeds at every point and on any number of jobs: a serial run gives the same file
    assert main([*argv[:-4], "--jobs", "1", "--out", str(tmp_path / "sw1")]) == 0
    assert (tmp_path / "sw1" / "sweep.csv").read_bytes() == (out / "sweep.csv").read_bytes()


def test_sweep_refuses_bad_paths_before_running(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["sweep", str(EXAMPLE), "--vary", "stations.smtt.servers=1,2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "stations.smtt.servers: no item named 'smtt' (did you mean 'smt'?)" in err and "Traceback" not in err
    assert main(["sweep", str(EXAMPLE), "--vary", "stations.smt.servers=0,1", "--out", str(out)]) == 2
    assert "stations.smt.servers" in capsys.readouterr().err
    assert main(["sweep", str(EXAMPLE), "--vary", "stations.smt.servers"]) == 2
    assert not out.exists()


def test_run_report_escapes_names(tmp_path):
    f = tmp_path / "x.toml"
    f.write_text('name = "<i>line</i>"\n[[stations]]\nname = "<script>alert(1)</script>"\nprocess_time = 10\n')
    assert main(["run", str(f), "--horizon", "1h", "--replications", "1", "--out", str(tmp_path / "o")]) == 0
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>line</i>" not in page


def test_init_writes_a_starter_spec_that_runs(tmp_path, capsys):
    f = tmp_path / "line.toml"
    assert main(["init", str(f)]) == 0
    text = f.read_text()
    assert text.count("#") > 10  # commented for people who edit it
    assert main(["validate", str(f)]) == 0
    assert main(["run", str(f), "--horizon", "1d", "--warmup", "1h", "--replications", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["kpis"]["throughput_per_hour"]["mean"] > 0
    assert main(["init", str(f)]) == 2  # never overwrites without --force
    assert "already exists" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "line.txt")]) == 2
    assert not (tmp_path / "line.txt").exists()


def test_the_cli_helps(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: twin" in out and "compare" in out and "list" in out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dark-factory" in out and "surge" in out and "uncertainty" not in out
    assert main(["comapre"]) == 2
    assert "did you mean 'compare'?" in capsys.readouterr().err
    assert main(["run", "--horizn", "1h", "dark-factory"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: twin run") and "did you mean '--horizon'?" in err and err.count("--horizn") == 1
    assert main(["run", "dark-factry"]) == 2
    assert "did you mean 'dark-factory'?" in capsys.readouterr().err
    assert main(["run", "examples/two_machine.toml", "--set", "stations.SMT.servers=2"]) == 2
    assert "did you mean 'smt'?); the items here: smt, assembly" in capsys.readouterr().err
    for command in ("run", "compare", "sweep", "check", "calibrate", "validate", "init", "list"):
        assert main([command, "--help"]) == 0
        text = capsys.readouterr().out
        assert "-q, --quiet" in text and "-v, --verbose" in text, command
        assert text.split("\n\n")[1].strip(), command  # a description under the usage


def test_quiet_runs_say_nothing_on_stderr(tmp_path, capsys):
    assert main(["run", str(ROOT / "examples" / "two_machine.toml"), "--horizon", "1h", "--warmup", "0",
                 "--replications", "1", "--out", str(tmp_path / "o"), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["run", str(ROOT / "examples" / "two_machine.toml"), "--horizon", "1h", "--warmup", "0",
                 "--replications", "1", "--out", str(tmp_path / "o")]) == 0
    assert "wrote " in capsys.readouterr().err


def test_every_argument_of_every_command_has_help():
    from twin.cli import build_parser

    parser = build_parser()
    missing = [(name, a.dest) for name, sp in parser.commands.items() for a in sp._actions
               if not a.help and a.dest != "help"]
    assert not missing
