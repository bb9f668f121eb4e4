"""Shell completion for the ``twin`` command, generated from its argparse parser by shtab.

``twin completion bash`` (or ``zsh``, ``tcsh``) prints a script: subcommands and options
complete from the parser itself, so a new option completes without touching this module; a
spec argument completes to the built-in factory names and ``.toml`` files, a scenario to the
built-in scenario names and ``.toml`` files, an event log to ``.csv`` and ``.parquet`` files,
an output folder to folders. The names are those of this installation, written into the script.
"""

from __future__ import annotations

import argparse

import shtab

from . import builtins

SHELLS = ("bash", "zsh", "tcsh")

_SPEC_DESTS = {"spec", "factory", "factories", "target"}
_SCENARIO_DESTS = {"scenarios"}
_LOG_DESTS = {"log"}
_FOLDER_OUT = {"compare", "ablate", "run", "sweep", "optimize"}  # their --out is a folder
_FILE_DESTS = {"out", "event_log", "file", "designs", "uncertainty_file", "baseline", "junit", "summary"}


def _bash_words(name: str, words: list[str], glob: str) -> str:
    """A bash function printing the names in ``words`` and the files matching ``glob`` that
    start with the word being completed (``$1``), folders included to descend into."""
    return (f"{name}() {{\n"
            f"  compgen -W {' '.join(words)!r} -- \"$1\"\n"
            f"  compgen -d -S / -- \"$1\"\n"
            f"  compgen -f -X '!{glob}' -- \"$1\"\n"
            "}\n")


def _complete_by_dest(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Tag every argument whose value is a spec, a scenario, a log or a path with what it
    completes to (shtab reads ``action.complete``); returns the bash preamble."""
    factories = sorted(builtins.factories())
    scenarios = sorted(builtins.scenarios())
    spec = {"bash": "_twin_spec", "zsh": f"({' '.join(factories)} *.toml(N))", "tcsh": "f:*.toml"}
    scen = {"bash": "_twin_scenario", "zsh": f"({' '.join(scenarios)} *.toml(N))", "tcsh": "f:*.toml"}
    log = {"bash": "_twin_log", "zsh": "_files -g '*.(csv|parquet)'", "tcsh": "f:*.{csv,parquet}"}
    for name, sp in parser.commands.items():  # type: ignore[attr-defined]
        for a in sp._actions:
            if a.dest in _SPEC_DESTS:
                a.complete = spec  # type: ignore[attr-defined]
            elif a.dest in _SCENARIO_DESTS:
                a.complete = scen  # type: ignore[attr-defined]
            elif a.dest in _LOG_DESTS:
                a.complete = log  # type: ignore[attr-defined]
            elif a.dest == "out" and name in _FOLDER_OUT:
                a.complete = shtab.DIRECTORY  # type: ignore[attr-defined]
            elif a.dest in _FILE_DESTS:
                a.complete = shtab.FILE  # type: ignore[attr-defined]
    return {"bash": _bash_words("_twin_spec", factories, "*.toml")
            + _bash_words("_twin_scenario", scenarios, "*.toml")
            + "_twin_log() {\n  compgen -d -S / -- \"$1\"\n  compgen -f -X '!*.csv' -- \"$1\"\n"
            "  compgen -f -X '!*.parquet' -- \"$1\"\n}\n"}


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``parser`` for ``shell`` (one of :data:`SHELLS`)."""
    preamble = _complete_by_dest(parser)
    # shtab documents a preamble per shell as a dict; its annotation says str
    text = shtab.complete(parser, shell=shell, preamble=preamble)  # type: ignore[arg-type]
    return text if text.endswith("\n") else text + "\n"  # so that `cat`ing it leaves a clean prompt
