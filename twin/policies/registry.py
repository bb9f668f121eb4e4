"""The policy registry: names in specs → policy classes (built-ins and plugins alike)."""

from __future__ import annotations

from typing import Any, Callable

KINDS = ("dispatch", "queue", "maintenance", "planning", "capacity")
_REGISTRY: dict[str, dict[str, Any]] = {k: {} for k in KINDS}


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
    return _REGISTRY[kind]


def get(kind: str, name: str) -> Any:
    """The policy class registered as ``name`` (KeyError listing the known ones)."""
    try:
        return _REGISTRY[kind][name]
    except KeyError:
        raise KeyError(f"unknown {kind} policy {name!r}; known: {', '.join(sorted(_REGISTRY[kind]))}") from None
