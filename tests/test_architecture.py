"""The code's shape, as docs/architecture.md states it: layers, no import cycles, imports at
module top, and the built-in factories found as package data."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "twin"

LAYERS = {
    "spec": {"units", "limits", "state", "names", "layouts", "dists", "calendar", "streams", "demand", "fit", "io", "builtins", "spec",
             "toml_text", "snapshot", "floorplan", "objectives",
             "learn", "wear", "scenario", "policies.registry", "contracts"},
    "policies": {"policies", "policies.capacity", "policies.dispatch", "policies.maintenance", "policies.planning",
                 "policies.queue"},
    "runtime": {"flow", "workforce", "quality", "reliability", "supply", "transport", "station", "release", "restore", "model",
                "watch"},
    "record": {"record"},
    "results": {"tables", "stats", "cost", "adapt", "bottleneck", "results", "frames"},
    "figures": {"report", "floorview"},
    "commands": {"runs", "serial", "experiment", "compare", "compare_report", "ablate", "optimize", "uncertainty", "decision", "designs", "optimize_report", "eventlog", "calibrate", "logcheck", "docs", "commands", "cli",
                 "policycheck", "completion", "gate", "studies", "shards", "tracker", "live", "livepage"},
}
MAY_IMPORT = {
    "spec": {"spec"},
    "policies": {"spec", "policies"},
    "runtime": {"spec", "policies", "runtime", "record"},
    "record": {"spec"},
    "results": {"spec", "record", "results"},
    "figures": {"spec", "figures"},
    "commands": set(LAYERS),
}
NO_SIMPY = {"spec", "record", "results", "figures"}
OPTIONAL = {"distributed", "paho.mqtt.client", "paho.mqtt.packettypes", "paho.mqtt.properties"}  # optional extras, imported where they are used
# heavy to import (statsmodels about 1 s): loaded by the first forecast fit, so commands that never
# forecast (validate, docs, most runs) start as fast as before
DEFERRED = {"statsmodels.tsa.holtwinters",
            # scipy.stats costs ~0.4 s and pulls in most of scipy: `import twin` and `twin --version`
            # must not pay for it (tests/test_imports.py checks what a bare import loads)
            "scipy", "scipy.stats", "scipy.stats.qmc", "pydantic",
            # twin.optimize brings optuna and plotly; cli parses first and loads the commands after
            "optimize", "commands", "spec",
            # shtab is needed only when someone asks for a completion script
            "completion"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG).with_suffix("")
        name = ".".join(rel.parts)
        name = name.removesuffix(".__init__") if name != "__init__" else ""
        out[name] = ast.parse(p.read_text())
    return out


def _imports(name: str, tree: ast.Module) -> set[str]:
    """twin modules (by name within the package; '' is the package) and 'simpy' imported at top level."""
    is_pkg = name in ("", "policies")
    pkg = name if is_pkg else name.rpartition(".")[0]
    deps: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = pkg.split(".") if pkg else []
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            prefix = ".".join(base)
            targets = [node.module] if node.module else [a.name for a in node.names]
            for t in targets:
                full = f"{prefix}.{t}" if prefix else t
                if full == "__version__":
                    full = ""
                deps.add(full)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("twin", "simpy"):
            deps.add("simpy" if node.module.startswith("simpy") else node.module.removeprefix("twin").lstrip("."))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "simpy":
                    deps.add("simpy")
                elif a.name.split(".")[0] == "twin":
                    deps.add(a.name.removeprefix("twin").lstrip("."))
    deps.discard(name)
    return deps


def _layer(module: str) -> str:
    for layer, mods in LAYERS.items():
        if module in mods:
            return layer
    raise AssertionError(f"twin.{module} is in no layer: add it to docs/architecture.md and LAYERS")


def test_every_module_has_a_layer_and_is_on_the_architecture_page():
    page = (ROOT / "docs" / "architecture.md").read_text()
    for name in _modules():
        if name:
            _layer(name)
            assert f"`{name.rpartition('.')[2]}`" in page or f"`{name}`" in page, name


def test_layers_import_only_what_the_page_allows_and_the_model_side_no_simpy():
    for name, tree in _modules().items():
        if not name:
            continue
        layer = _layer(name)
        for dep in _imports(name, tree):
            if dep == "simpy":
                assert layer not in NO_SIMPY, f"twin.{name} ({layer}) imports simpy"
                continue
            if dep == "":  # the package itself (its version): commands only
                assert layer == "commands", f"twin.{name} imports the package"
                continue
            assert _layer(dep) in MAY_IMPORT[layer] or _layer(dep) == layer and layer in MAY_IMPORT[layer], \
                f"twin.{name} ({layer}) imports twin.{dep} ({_layer(dep)})"


def test_no_import_cycles():
    graph = {name: _imports(name, tree) - {"simpy"} for name, tree in _modules().items()}
    graph[""] = set()  # the package re-exports; what imports the package only needs its version
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for d in graph.get(n, ()):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path + [n, d]))
            if d not in state:
                visit(d, path + [n])
        state[n] = 2

    for n in graph:
        if n not in state:
            visit(n, [])


def test_imports_are_at_module_top():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for sub in ast.walk(node):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        mod = (sub.module or sub.names[0].name) if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                        assert mod in OPTIONAL | DEFERRED, f"twin.{name}.{node.name} imports {mod} inside a function"


def test_built_in_factories_and_scenarios_are_package_data():
    code = ("import twin.builtins as b; f = b.factories(); s = b.scenarios(); "
            "assert sorted(f) == ['dark-factory', 'microfactory', 'static-line'], f; "
            "assert {'baseline', 'surge', 'slump'} <= set(s), s; assert b.sources_page().exists(); "
            "import importlib.util as u; assert u.find_spec('lines') is None; print('ok')")
    # from another folder: the repository's lines/ is not on the path, and the install does not claim it
    r = subprocess.run([sys.executable, "-c", code], cwd=Path("/"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


@pytest.mark.slow
def test_the_wheel_carries_the_factories_inside_twin_and_no_top_level_lines(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    wheel = next(tmp_path.glob("twin-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"twin/factories/dark_factory.toml", "twin/factories/SOURCES.md",
            "twin/scenarios/surge.toml"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("lines", "benchmarks")]
