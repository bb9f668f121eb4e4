"""twin — a factory digital-twin simulator on SimPy.

Model time is seconds throughout (durations in specs accept units: ``"90s"``, ``"8h"``).
Start with :func:`load` and :func:`simulate`::

    import twin
    spec = twin.load("examples/two_machine.toml")          # or twin.load("dark-factory")
    res = twin.simulate(spec, horizon="1w", warmup="1d", replications=5, seed=1)
    res.summary()["kpis"]["throughput_per_hour"]           # {"mean": ..., "ci95": ...}

Build a spec in Python from the classes below (``Spec``, ``Station``, ``Product``, …),
edit one with ``spec.with_overrides({...})``, write it with ``spec.to_toml()``. Grids of
runs are in :mod:`twin.experiment` and :mod:`twin.compare`, figures in :mod:`twin.report`,
and your own dispatch rules, maintenance policies, planners and capacity policies
register with :func:`twin.policies.register`.
"""

from . import experiment, policies, report
from .calendar import CalendarSpec, Window
from .dists import (
                    Constant,
                    Empirical,
                    Exponential,
                    Gamma,
                    Lognormal,
                    Normal,
                    Triangular,
                    Uniform,
                    Weibull,
                    parse_duration,
)
from .experiment import mean_ci, run_once, simulate, summarize
from .model import Model
from .policies import register
from .record import Record
from .results import Results
from .spec import (
                    Batch,
                    Buffer,
                    Capacity,
                    Component,
                    Costs,
                    Demand,
                    Failures,
                    Maintenance,
                    MinorStops,
                    Planning,
                    Product,
                    Quality,
                    Run,
                    Setup,
                    Shift,
                    Source,
                    Spec,
                    SpecError,
                    Station,
                    Supplier,
                    Transport,
                    WorkerPool,
                    load,
                    validate,
)
from .state import State
from .streams import Streams

__version__ = "0.1.0"

__all__ = [
    # loading, running, results
    "load", "validate", "simulate", "run_once", "summarize", "mean_ci", "Results", "Model", "Record", "State", "SpecError",
    "parse_duration", "Streams",
    # spec classes
    "Spec", "Station", "Buffer", "Product", "Source", "Setup", "Failures", "Maintenance", "Quality", "WorkerPool",
    "CalendarSpec", "Window", "Demand", "Shift", "Planning", "Capacity", "Costs", "Run",
    "MinorStops", "Batch", "Component", "Supplier", "Transport",
    # distributions (durations in seconds)
    "Constant", "Exponential", "Normal", "Lognormal", "Gamma", "Weibull", "Triangular", "Uniform", "Empirical",
    # modules and extension
    "experiment", "report", "policies", "register",
    "__version__",
]
