"""The built-in reference factories and scenarios, found as package data.

In the repository they live in ``lines/`` and ``benchmarks/scenarios/``; installed, they are
the data packages ``twin.factories`` and ``twin.scenarios`` (see ``pyproject.toml``), so a
wheel, an editable install and a source checkout all find them the same way.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

FACTORIES_PACKAGE = "twin.factories"
SCENARIOS_PACKAGE = "twin.scenarios"


def _tomls(package: str) -> dict[str, Path]:
    try:
        root = files(package)
    except ModuleNotFoundError:  # pragma: no cover - a broken install
        return {}
    out = {}
    for entry in root.iterdir():
        if entry.name.endswith(".toml") and entry.is_file():
            out[entry.name[:-5]] = Path(str(entry))
    return out


def factories() -> dict[str, Path]:
    """Built-in factory name (``dark-factory``) → its spec file."""
    return {stem.replace("_", "-"): p for stem, p in sorted(_tomls(FACTORIES_PACKAGE).items())
            if stem not in DATA_FILES}


DATA_FILES = ("uncertainty", "designs")
"""Files beside the factories that are not factories: the ranges of their parameters and their
candidate designs."""


def scenarios() -> dict[str, Path]:
    """Built-in scenario name (``surge``) → its file."""
    return dict(sorted(_tomls(SCENARIOS_PACKAGE).items()))


def sources_page() -> Path:
    """``SOURCES.md``: where every number of the reference factories comes from."""
    return Path(str(files(FACTORIES_PACKAGE).joinpath("SOURCES.md")))


def uncertainty_file() -> Path:
    """``uncertainty.toml``: the plausible ranges of the reference factories' estimated parameters."""
    return Path(str(files(FACTORIES_PACKAGE).joinpath("uncertainty.toml")))


def designs_file() -> Path:
    """``designs.toml``: the candidate designs of the reference factories (the design protocol's space)."""
    return Path(str(files(FACTORIES_PACKAGE).joinpath("designs.toml")))
