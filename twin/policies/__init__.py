"""Policies: the decisions beside the engine, swappable by name (DESIGN §2, §4).

Four kinds, each a small class registered under a name:

- ``dispatch``: ``Rule(station)``, ``choose(lot) -> lane index`` — which parallel
  lane (line, cell) of a station takes an arriving lot;
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

from typing import Any, Callable

KINDS = ("dispatch", "maintenance", "planning", "capacity")
_REGISTRY: dict[str, dict[str, Any]] = {k: {} for k in KINDS}
_loaded = False


def register(kind: str, name: str) -> Callable[[Any], Any]:
    """Class decorator: make a policy available to specs as ``name``."""
    if kind not in _REGISTRY:
        raise ValueError(f"unknown policy kind {kind!r}; known: {', '.join(KINDS)}")

    def deco(cls: Any) -> Any:
        _REGISTRY[kind][name] = cls
        return cls

    return deco


def registry(kind: str) -> dict[str, Any]:
    """Registered policies of one kind, by name (built-ins included)."""
    global _loaded
    if not _loaded:
        _loaded = True
        from . import capacity, dispatch, maintenance, planning  # noqa: F401  (registration side effect)
    return _REGISTRY[kind]


def get(kind: str, name: str) -> Any:
    try:
        return registry(kind)[name]
    except KeyError:
        raise KeyError(f"unknown {kind} policy {name!r}; known: {', '.join(sorted(registry(kind)))}") from None
