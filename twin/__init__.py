"""twin — a factory digital-twin simulator on SimPy.

Model time is seconds throughout. Start with :func:`load` and :func:`simulate`::

    import twin
    spec = twin.load("examples/two_machine.toml")
    res = twin.simulate(spec, horizon="1w", warmup="1d", replications=5, seed=1)
    res.summary()["kpis"]["throughput_per_hour"]
"""

from .dists import (Constant, Empirical, Exponential, Gamma, Lognormal, Normal, Sampler, Triangular,
                    Uniform, Weibull, parse_duration)
from .experiment import mean_ci, simulate, summarize
from .model import Model, State
from .results import Results
from .spec import Failures, Product, Run, Setup, Source, Spec, SpecError, Station, load, validate
from .streams import Streams

__version__ = "0.1.0"

__all__ = [
    "Constant", "Empirical", "Exponential", "Failures", "Gamma", "Lognormal", "Model", "Normal", "Product",
    "Results", "Run", "Sampler", "Setup", "Source", "Spec", "SpecError", "State", "Station", "Streams",
    "Triangular", "Uniform", "Weibull", "load", "mean_ci", "parse_duration", "simulate", "summarize",
    "validate", "__version__",
]
