"""What `import twin` and `twin --version` load, and one home for units: a bare import must not pay
for optuna, plotly, scipy.stats or pandas (each is loaded by the first call that needs it), and no
time constant is written out as a bare number in the package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "optuna", "plotly", "scipy.stats", "pandas", "simpy", "statsmodels", "pydantic")


def _loaded(code: str) -> set[str]:
    probe = code + f"\nimport json, sys; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return set(json.loads(r.stdout.strip().splitlines()[-1]))


def test_import_twin_loads_none_of_the_heavy_libraries():
    assert _loaded("import twin; twin.__version__") == set()


def test_version_loads_none_of_them_and_prints_the_version():
    code = ("import contextlib, io, twin, twin.cli as c\nbuf = io.StringIO()\n"
            "with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit): c.main(['--version'])\n"
            "assert twin.__version__ in buf.getvalue(), buf.getvalue()")
    assert _loaded(code) == set()


def test_a_public_name_loads_what_it_needs_on_first_use():
    loaded = _loaded("import twin; twin.simulate; twin.Exponential(mean=1.0)")
    assert {"simpy", "pandas"} <= loaded
    assert "optuna" not in loaded  # simulate does not search


@pytest.mark.parametrize("name", ["simulate", "Model", "State", "Exponential", "Results", "load", "policies"])
def test_lazy_names_resolve_to_the_defining_object(name):
    import twin

    import importlib

    obj = getattr(twin, name)
    assert name in dir(twin) and name in twin.__all__
    module = importlib.import_module(f"twin.{twin._LAZY[name] or name}")
    assert obj is (getattr(module, name) if twin._LAZY[name] else module)


def test_an_unknown_name_is_an_attribute_error():
    import twin

    with pytest.raises(AttributeError, match="no_such_thing"):
        twin.no_such_thing  # noqa: B018


# seconds in an hour, a day, a week, a year: written once, in twin/units.py
_TIME_LITERALS = {3600, 86400, 604800, 31536000, 31557600}


def test_no_bare_time_constant_outside_units():
    found = []
    for p in sorted((ROOT / "twin").rglob("*.py")):
        if p.name == "units.py":
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value in _TIME_LITERALS:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno}: {node.value}")
    assert not found, "use twin.units (HOUR, DAY, WEEK, YEAR):\n" + "\n".join(found)


def test_units_agree_with_each_other_and_the_parser():
    from twin import units

    assert units.MINUTE == 60 * units.SECOND and units.HOUR == 60 * units.MINUTE
    assert units.DAY == 24 * units.HOUR and units.WEEK == 7 * units.DAY
    assert units.parse_duration("2h") == 2 * units.HOUR and units.parse_duration("1.5d") == 1.5 * units.DAY
    assert units.parse_duration("3w") == 3 * units.WEEK
    assert units.reading_unit(3 * units.HOUR) == (1 / units.HOUR, "h")
    assert units.reading_unit(5 * units.MINUTE) == (1 / units.MINUTE, "min")
    assert units.format_duration(2 * units.WEEK) == "2 w" and units.format_duration(90 * units.MINUTE) == "90 min"
    assert units.format_duration(36 * units.HOUR, with_seconds=True) == "36 h (129600 s)"
