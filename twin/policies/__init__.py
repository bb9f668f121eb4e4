"""Policies: the decisions beside the engine, swappable by name (DESIGN §2, §4).

Five kinds, each a small class registered under a name:

- ``dispatch``: ``Rule(station)``, ``choose(lot) -> lane index`` — which parallel
  lane (line, cell) of a station takes an arriving lot;
- ``queue``: ``Rule(station)`` with ``key`` (``None`` for FIFO, else ``key(lot) -> float``,
  smallest served first) and ``draws_time`` — the order a lane's servers take waiting lots;
- ``maintenance``: ``Policy(spec, rng)``, ``plan(life) -> operating seconds until
  planned maintenance`` — called whenever a machine is renewed, with its true
  remaining life (operating seconds to the next failure);
- ``planning``: ``Planner(model)``, ``start()`` and ``take(lane)`` (a SimPy
  generator returning the product index of the next lot to release on ``lane``);
- ``capacity``: ``Policy(model)``, ``start()`` — changes calendars or modules.

Register your own with :func:`register` (``@register("dispatch", "my_rule")``) and
name it in a spec; the built-ins use the same mechanism.
"""

from __future__ import annotations

from . import capacity, dispatch, maintenance, planning, queue  # noqa: E402,F401  (the built-ins register themselves)
from .registry import KINDS, get, register, registry

__all__ = ["KINDS", "get", "register", "registry"]
