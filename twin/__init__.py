"""twin — a factory digital-twin simulator on SimPy.

Model time is seconds throughout (durations in specs accept units: ``"90s"``, ``"8h"``).
Start with :func:`load` and :func:`simulate`::

    import twin
    spec = twin.load("examples/two_machine.toml")          # or twin.load("dark-factory")
    res = twin.simulate(spec, horizon="1w", warmup="1d", replications=5, seed=1)
    res.summary()["kpis"]["throughput_per_hour"]           # {"mean": ..., "ci95": ...}

Build a spec in Python from the classes below (``Spec``, ``Station``, ``Product``, …),
edit one with ``spec.with_overrides({...})``, write it with ``spec.to_toml()``. Grids of
runs are in :mod:`twin.experiment` and :mod:`twin.compare`, figures in :mod:`twin.report`, a
replay's data from a run watched with ``Model(..., watch=twin.Watch(start, end))`` in :mod:`twin.frames`,
and your own dispatch rules, maintenance policies, planners and capacity policies
register with :func:`twin.policies.register` (and check with :func:`twin.check_policy`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Every name below is loaded on first use (PEP 562), so that ``import twin`` and ``twin --version``
# cost almost nothing: numpy, pandas, scipy, plotly and optuna arrive with the first thing that
# needs them (tests/test_imports.py holds this).
_LAZY: dict[str, str] = {
    **{m: "" for m in ("experiment", "policies", "report")},
    **{n: "calendar" for n in ("CalendarSpec", "Window")},
    **{n: "dists" for n in ("Constant", "Empirical", "Exponential", "Gamma", "Lognormal", "Normal", "Triangular",
                            "Uniform", "Weibull", "parse_duration")},
    **{n: "experiment" for n in ("mean_ci", "run_once", "simulate", "summarize")},
    "Model": "model", "register": "policies", "check_policy": "policycheck", "Record": "record", "Results": "results",
    **{n: "spec" for n in ("Batch", "Buffer", "Capacity", "Component", "Costs", "Demand", "Failures", "Maintenance",
                           "MinorStops", "Planning", "Product", "Quality", "Run", "Setup", "Shift", "Source", "Spec",
                           "SpecError", "Station", "Supplier", "Transport", "WorkerPool", "load", "validate", "Layout")},
    "State": "state", "Streams": "streams", "Snapshot": "snapshot", "Watch": "watch",
}

if TYPE_CHECKING:  # what a type checker and an IDE see: the same names, imported eagerly
    from . import experiment, policies, report  # noqa: F401
    from .calendar import CalendarSpec, Window  # noqa: F401
    from .dists import (Constant, Empirical, Exponential, Gamma, Lognormal, Normal,  # noqa: F401
                        Triangular, Uniform, Weibull, parse_duration)
    from .experiment import mean_ci, run_once, simulate, summarize  # noqa: F401
    from .model import Model  # noqa: F401
    from .policies import register  # noqa: F401
    from .policycheck import check_policy  # noqa: F401
    from .record import Record  # noqa: F401
    from .results import Results  # noqa: F401
    from .spec import (Batch, Buffer, Capacity, Component, Costs, Demand, Failures, Maintenance,  # noqa: F401
                       MinorStops, Planning, Product, Quality, Run, Setup, Shift, Source, Spec, SpecError,
                       Station, Supplier, Transport, WorkerPool, load, validate, Layout)
    from .snapshot import Snapshot  # noqa: F401
    from .watch import Watch  # noqa: F401
    from .state import State  # noqa: F401
    from .streams import Streams  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twin' has no attribute {name!r}")
    value = importlib.import_module(f"{__name__}.{module or name}")
    if module:
        value = getattr(value, name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    # loading, running, results
    "load", "validate", "simulate", "run_once", "summarize", "mean_ci", "Results", "Model", "Record", "State", "SpecError",
    "parse_duration", "Streams", "Snapshot", "Watch",
    # spec classes
    "Spec", "Station", "Buffer", "Product", "Source", "Setup", "Failures", "Maintenance", "Quality", "WorkerPool",
    "CalendarSpec", "Window", "Demand", "Shift", "Planning", "Capacity", "Costs", "Run",
    "MinorStops", "Batch", "Component", "Supplier", "Transport", "Layout",
    # distributions (durations in seconds)
    "Constant", "Exponential", "Normal", "Lognormal", "Gamma", "Weibull", "Triangular", "Uniform", "Empirical",
    # modules and extension
    "experiment", "report", "policies", "register", "check_policy",
    "__version__",
]
