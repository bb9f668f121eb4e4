"""Named random streams spawned from one seed (DESIGN §5).

``Streams(seed).get("process:smt/0")`` always returns the same generator state for
the same seed and name, whatever other streams exist or in which order they were
asked for. Two models built with the same seed therefore share the ``demand``
stream exactly (common random numbers).
"""

from __future__ import annotations

import hashlib

import numpy as np


def _name_key(name: str) -> tuple[int, ...]:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return tuple(int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4))


class Streams:
    """Factory of independent ``numpy.random.Generator`` objects keyed by name."""

    def __init__(self, seed: int):
        if seed < 0:
            raise ValueError("seed must be >= 0")
        self.seed = int(seed)
        self._cache: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        """The generator for ``name`` (created on first use, then shared)."""
        g = self._cache.get(name)
        if g is None:
            ss = np.random.SeedSequence(entropy=self.seed, spawn_key=_name_key(name))
            g = np.random.Generator(np.random.PCG64(ss))
            self._cache[name] = g
        return g
