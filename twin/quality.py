"""Defects: made at a station, found by inspection, reworked or scrapped (DESIGN §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .flow import Lot

if TYPE_CHECKING:
    from .model import Model
    from .station import StationRuntime


class Inspection:
    """A station's quality step: new defects at ``defect_rate``; found ones (inline: this
    station's; end of line: every defect the lot carries) are reworked with probability
    ``rework`` (taking ``rework_time`` s per unit) or scrapped."""

    __slots__ = ("spec", "rng", "index", "model", "rework_time", "rework_at", "rework_return")

    def __init__(self, station: "StationRuntime", model: "Model", spec: Any):
        self.spec = spec
        self.rng = model.streams.get(f"quality:{station.name}")
        self.index = station.index
        self.model = model
        self.rework_time = float(spec.rework_time)
        self.rework_at: str | None = spec.rework_at  # a rework station, or None: rework in place
        self.rework_return: str | None = spec.rework_return

    @classmethod
    def build(cls, station: "StationRuntime", model: "Model") -> "Inspection | None":
        """The station's inspection, or None when it neither makes nor finds defects."""
        q = station.spec.quality
        if q is None or (q.defect_rate <= 0 and q.inspect != "upstream"):
            return None
        return cls(station, model, q)

    def inspect(self, lot: Lot) -> int:
        """Make and find defects in ``lot``; scrap the found units not reworked. Returns
        the number of units to rework."""
        q = self.spec
        rng = self.rng
        new = int(rng.binomial(lot.qty - lot.defects, q.defect_rate)) if q.defect_rate > 0 else 0
        caught = 0
        if q.inspect == "inline":
            caught = int(rng.binomial(new, q.detection)) if new else 0
            lot.defects += new - caught
        elif q.inspect == "upstream":
            total = lot.defects + new
            caught = int(rng.binomial(total, q.detection)) if total else 0
            lot.defects = total - caught
        else:
            lot.defects += new
        if not caught:
            return 0
        reworked = int(rng.binomial(caught, q.rework)) if q.rework > 0 else 0
        if reworked:
            self.model.rec.reworks.append((lot.id, self.model.env.now, self.index, reworked))
        if caught > reworked:
            lot.qty -= caught - reworked
            self.model.scrap(lot, self.index, caught - reworked)
        return reworked
