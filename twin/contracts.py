"""What a policy may rely on: the surface of the plant each kind of policy is shown, and the
methods each kind must have (``typing.Protocol``, checked structurally by mypy).

A plugin registered with :func:`twin.policies.register` is built with one of these views and
should read nothing else: the runtime objects behind them (:class:`twin.model.Model`,
:class:`twin.station.StationRuntime`) are checked against the views in :func:`_conforms`, so a
rename that would break a plugin fails the type check, and ``tests/test_policies.py`` runs
every registered policy through the contract suite (deterministic, valid choices, nothing it
is shown mutated, an empty queue tolerated).

Times are seconds of simulated time, rates per second unless a name says otherwise.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Generator, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import simpy

    from .flow import Lot
    from .model import Model
    from .record import Record
    from .spec import Spec
    from .station import StationRuntime
    from .wear import MachineView
    from .workforce import Calendar


class LaneView(Protocol):
    """One lane of a station: its buffer, servers, speed and whether it is deployed."""

    index: int
    buffer: Any
    servers: list[Any]
    speed: float
    active: bool


class StationView(Protocol):
    """What a dispatch rule or a queue discipline sees of its station."""

    name: str
    index: int
    lanes: list[Any]
    means: list[float]  # mean unit processing time per product (s), from the spec
    measured: Any  # what the plant has measured of the unit times (twin.learn.MeasuredTimes) or None
    setup_means: list[list[float]] | None  # mean setup time (s) by (from, to) product
    reliability: Any  # stops as measured (twin.reliability.Reliability.stops)
    model: Any

    def planned_time(self, lot: "Lot") -> float:
        """A draw of the lot's processing time here (s) from the station's own stream."""
        ...


class PlantView(Protocol):
    """What a planning or capacity policy sees of the plant (the model)."""

    env: "simpy.Environment"
    spec: "Spec"
    rec: "Record"
    product_names: list[str]
    lot_sizes: list[int]
    orders_mode: bool
    calendars: dict[str, "Calendar"]
    stations: dict[str, Any]
    pace: Any
    # order book and stock (orders mode): per product
    book: list[deque[list[Any]]]
    stock: list[int]
    open_units: list[int]
    available_from: list[float]  # a new product can be released from this time (s)
    lanes_active: list[bool]
    planner: Any
    capacity: Any

    def need(self, p: int) -> int:
        """Units of product ``p`` ordered and neither delivered, in stock nor in process."""
        ...

    def set_lane_active(self, lane: int, active: bool) -> None:
        """Deploy (``True``) or idle a line or cell."""
        ...


@runtime_checkable
class DispatchRule(Protocol):
    """``Rule(station: StationView)``: picks the lane of each lot arriving at a multi-lane station."""

    def choose(self, lot: "Lot") -> int:
        """The index of the lane for ``lot`` (``0 <= i < len(station.lanes)``)."""
        ...


@runtime_checkable
class QueueRule(Protocol):
    """``Rule(station: StationView)``: the order a station's servers take waiting lots."""

    key: Callable[[Any], float] | None  # None: first come, first served; else smallest key first
    draws_time: bool  # the key needs the lot's processing time, drawn as it joins the queue


@runtime_checkable
class MaintenancePolicy(Protocol):
    """``Policy(spec: Maintenance, rng)``: when to stop a machine for planned maintenance.

    Optional: ``learn(lives, repair_s, pm_s, every)`` to start from the station's own history,
    ``observe(age, failed, repair_s, pm_s, view)`` after every stop, ``reads_truth = True`` for
    an oracle that is allowed the drawn life (never a reference factory's policy)."""

    def plan(self, view: "MachineView") -> float:
        """Operating age (s) at which to stop the machine for maintenance (inf: never)."""
        ...


@runtime_checkable
class PlanningPolicy(Protocol):
    """``Policy(model: PlantView)``: what the line is given to make, and when."""

    def start(self) -> None:
        """Start the policy's processes (called once, when the model is built)."""
        ...

    def take(self, lane: int | None) -> Generator[Any, Any, int]:
        """A SimPy generator that returns the product index of the next lot to release."""
        ...


@runtime_checkable
class CapacityPolicy(Protocol):
    """``Policy(model: PlantView)``: how much capacity is deployed (lanes, shifts, overdrive)."""

    def start(self) -> None:
        """Start the policy's processes (called once, when the model is built)."""
        ...


KINDS: dict[str, Any] = {"dispatch": DispatchRule, "queue": QueueRule, "maintenance": MaintenancePolicy,
                          "planning": PlanningPolicy, "capacity": CapacityPolicy}
"""The protocol each policy kind of :data:`twin.policies.registry.KINDS` must satisfy."""


def _conforms(model: "Model", station: "StationRuntime") -> tuple[PlantView, StationView]:
    """Never called: mypy checks here that the runtime objects offer the views."""
    return model, station


__all__: Sequence[str] = ("LaneView", "StationView", "PlantView", "DispatchRule", "QueueRule",
                          "MaintenancePolicy", "PlanningPolicy", "CapacityPolicy", "KINDS")
