"""Bounds on what a run may ask for: past them an input is a typo or an attack, not a study.

Standard library only, so that the command-line parser can check options without loading
the spec schema.
"""

from __future__ import annotations

from .units import WEEK

MAX_REPLICATIONS = 10_000
MAX_SEED = 2**63 - 1
MAX_HORIZON = 20 * 52 * WEEK  # 20 years, s
MAX_DURATION = 1e10  # s, about 317 years: longer is a typo, and float time loses its resolution
MAX_SWEEP_RUNS = 100_000
"""Runs (points x replications) one sweep may ask for: past it a grid is a typo (an axis of
300,000 values) more often than a study; every point is validated before anything runs, and
the runs of a quick spec alone would take CPU-days. A larger study samples its space with
``twin optimize`` or runs as several sweeps."""

MAX_SHARDS = 100_000
"""More shards than this is a typo (a Slurm job array is at most ~10^5 tasks on the largest sites)."""
