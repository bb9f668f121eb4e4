"""Shell completion: the generated bash script, sourced in a real bash, completes what the
parser has (subcommands, options, choices) and the values twin knows (built-in names, spec
files, logs)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from twin import builtins
from twin.cli import build_parser
from twin.completion import SHELLS, script

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="no bash on this machine to source the script in")


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory):
    d = tmp_path_factory.mktemp("completion")
    (d / "twin.bash").write_text(script(build_parser(), "bash"))
    for name in ("line.toml", "notes.txt", "events.csv", "events.parquet"):
        (d / name).write_text("")
    (d / "specs").mkdir()
    return d


def complete(d, *words: str) -> list[str]:
    """What bash offers for the last of ``words`` (COMPREPLY of the generated function)."""
    line = " ".join(words)
    prog = ("source ./twin.bash\n"
            f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
            f"COMP_LINE={line!r}; COMP_POINT={len(line)}; COMPREPLY=()\n"
            "_shtab_twin; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog], cwd=d, capture_output=True,
                         text=True, timeout=60, check=True)
    return sorted(w for w in out.stdout.splitlines() if w)


def test_subcommands_and_options_come_from_the_parser(bash_script):
    commands = sorted(build_parser().commands)  # type: ignore[attr-defined]
    assert complete(bash_script, "twin", "") == commands
    assert complete(bash_script, "twin", "co") == ["compare", "completion"]
    assert "--replications" in complete(bash_script, "twin", "compare", "--re")
    assert complete(bash_script, "twin", "compare", "--executor", "") == ["dask", "local"]
    assert complete(bash_script, "twin", "completion", "") == sorted(SHELLS)


def test_values_complete_to_builtin_names_and_the_right_files(bash_script):
    facs, scens = sorted(builtins.factories()), sorted(builtins.scenarios())
    assert complete(bash_script, "twin", "run", "") == sorted(facs + ["line.toml", "specs/"])
    assert complete(bash_script, "twin", "run", "dark") == ["dark-factory"]
    assert complete(bash_script, "twin", "compare", "--factories", "m") == [f for f in facs if f.startswith("m")]
    assert complete(bash_script, "twin", "compare", "--scenarios", "s") == sorted(
        [s for s in scens if s.startswith("s")] + ["specs/"])
    # an event log: csv and parquet files, not the spec or the notes
    assert complete(bash_script, "twin", "calibrate", "") == ["events.csv", "events.parquet", "specs/"]


@pytest.mark.parametrize("shell", SHELLS)
def test_every_shell_gets_a_script_naming_every_subcommand(shell):
    text = script(build_parser(), shell)
    assert text.endswith("\n")
    for name in build_parser().commands:  # type: ignore[attr-defined]
        assert name in text
    out = subprocess.run([sys.executable, "-m", "twin.cli", "completion", shell], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == text  # the command itself, as a user runs it


def test_an_unknown_shell_is_refused_with_exit_2():
    out = subprocess.run([sys.executable, "-m", "twin.cli", "completion", "fish"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "fish" in out.stderr and "Traceback" not in out.stderr
