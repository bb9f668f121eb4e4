"""The spec: a validated, serialisable description of a factory (no SimPy here).

Load one from TOML with :func:`load` (every problem reported at once as
``file: field.path: what is wrong``) or build it in Python from the classes below.
All durations are seconds (strings with units are accepted, see :mod:`twin.dists`).
"""

from __future__ import annotations

import contextvars
import difflib
import importlib
import os
import stat
import sys
import tomllib
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError, field_validator,
                      model_validator)

from . import builtins, floorplan, toml_text
from .calendar import CalendarSpec
from .dists import DIST_CLASSES, Constant, Dist, Duration, Factor, PositiveDuration, _DistBase
from .names import NAME_PATTERN, Name, name_problem
from .policies.registry import registry
from .limits import MAX_DURATION, MAX_HORIZON, MAX_REPLICATIONS, MAX_SEED  # noqa: F401  (re-exported: callers read them here)
from .state import STATE_KEYS
from .units import DAY, HOUR, WEEK, format_duration
from .wear import WearLaw

_VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("twin_validating", default=False)
MAX_SPEC_BYTES = 2_000_000
# bounds that no real factory reaches; beyond them a value is a typo or an attack, not a design
MAX_SERVERS = 10_000
MAX_LANES = 1_000
MAX_COUNT = 1_000_000_000
MAX_LOT = 10_000_000
MAX_RATE_PER_HOUR = 1_000_000.0
MIN_RATE_PER_HOUR = HOUR / MAX_DURATION
"""Slower arrivals would have a mean gap longer than any duration twin takes (MAX_DURATION)."""
MAX_RATE_PER_WEEK = 1_000_000_000.0
MAX_SHIFT_FACTOR = 1e6
"""A scenario shift multiplies volume or a lead time by at most this (no real shift comes near)."""
# the shortest interval of anything that repeats (failures, minor stops, maintenance, reviews), s:
# a loop at a shorter one advances simulated time too slowly ever to reach a horizon
MIN_INTERVAL = 1.0
Interval = Annotated[PositiveDuration, Field(ge=MIN_INTERVAL)]


def _mean_at_least_min_interval(d: Any, what: str) -> Any:
    """A repeating interval drawn from ``d`` must average at least MIN_INTERVAL."""
    m = float(d.mean)
    if not m >= MIN_INTERVAL:
        raise ValueError(f"{what}: its mean must be at least {MIN_INTERVAL:g} s (got {m:g} s): a loop repeating "
                         "more often never reaches the horizon")
    return d


class SpecError(ValueError):
    """A spec (or other input file) is invalid; ``problems`` lists every ``file: path: message``."""

    def __init__(self, problems: list[str] | str):
        # a copy made from the message alone (SimPy re-raises a process's exception that way)
        self.problems = problems.split("\n") if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self) -> tuple[Any, ...]:  # travels whole from worker processes
        return (type(self), (self.problems,))


class SimulationError(SpecError):
    """A valid spec that cannot be simulated as given: simulated time stopped advancing, or
    the run would need more memory than the machine has. Bad input like any other (exit 2)."""


class _M(BaseModel):
    # attribute docstrings become field descriptions: the reference docs and JSON Schema use them
    model_config = ConfigDict(extra="forbid", validate_assignment=False, use_attribute_docstrings=True,
                              allow_inf_nan=False)

    def __init__(self, /, **data: Any) -> None:
        # built in Python, a part of a spec is checked as a loaded one is, with the same messages;
        # pydantic calls this for nested parts too, where its own errors must pass through whole
        if _VALIDATING.get():
            super().__init__(**data)
            return
        token = _VALIDATING.set(True)
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise SpecError(format_validation_error(e, data, f"<{type(self).__name__}>", type(self))) from None
        finally:
            _VALIDATING.reset(token)
        self._check_built()

    def _check_built(self) -> None:
        """Checks beyond the schema for a part built in Python (the whole spec has some)."""


class Degradation(_M):
    """A wear index that rises with operating time and fails the machine when it reaches the
    machine's own failure level (:mod:`twin.wear`): a Wiener process with drift, index 0 new and
    1 at the mean failure level, plus shock failures that give no warning. A sensor reads the
    index every ``reading_every`` of operating time; predictive maintenance learns from those
    readings, never from the life they end in."""

    wear_life: Interval
    """Mean operating time for the index to reach the mean failure level, s."""
    wear_cv: float = Field(default=0.3, gt=0.0, le=3.0)
    """Coefficient of variation of that time (the Wiener path's volatility: inverse Gaussian lives)."""
    threshold_cv: float = Field(default=0.1, ge=0.0, le=2.0)
    """Unit-to-unit coefficient of variation of the failure level (lognormal, mean 1)."""
    shock_mttf: Interval | None = None
    """Mean operating time between shock failures that no reading announces, s (none if unset)."""
    reading_every: Interval = HOUR
    """Operating time between condition readings, s."""
    reading_noise: float = Field(default=0.05, ge=0.0, le=10.0)
    """Standard deviation of one reading's measurement error (index units)."""


class Failures(_M):
    """Unplanned failures of each server: time to failure (a distribution, or the wear that
    leads to it) and time to repair (s)."""

    ttf: Dist | None = None
    """Time to failure, s (operating or calendar time, see `basis`); or give `degradation`."""
    degradation: Degradation | None = None
    """Failures from wear with a condition signal instead of a `ttf` distribution (operating basis)."""
    ttr: Dist
    """Time to repair, s."""
    basis: Literal["operating", "calendar"] = "operating"
    """``operating``: only busy time ages the machine; ``calendar``: wall-clock time does."""

    @field_validator("ttf")
    @classmethod
    def _ttf_floor(cls, v: Any) -> Any:
        return v if v is None else _mean_at_least_min_interval(v, "time to failure")

    @model_validator(mode="after")
    def _one_life_law(self) -> "Failures":
        if (self.ttf is None) == (self.degradation is None):
            raise ValueError("give one of ttf (a time-to-failure distribution) and degradation (wear with a "
                             "condition signal)")
        if self.degradation is not None and self.basis != "operating":
            raise ValueError("degradation wears the machine with its operating time: basis must be \"operating\"")
        return self

    @property
    def mean_ttf(self) -> float:
        """Mean time to failure, s (for degradation: of the wear-out and shock lives together)."""
        if self.ttf is not None:
            return float(self.ttf.mean)
        return WearLaw.from_spec(self.degradation).mean_life


class Setup(_M):
    """Changeover time when a server switches product: ``matrix[from][to]`` else ``default``."""

    default: Dist = Field(default=0.0, validate_default=True)  # type: ignore[assignment]
    """Changeover time for any switch not in the matrix, s."""
    matrix: dict[str, dict[str, Dist]] = Field(default_factory=dict)
    """`matrix.<from>.<to>`: changeover time for one pair of products, s."""


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Maintenance(_M):
    """Maintenance policy of each server (DESIGN §7): how failures are prevented.

    - ``reactive``: run to failure (only repairs);
    - ``preventive``: planned maintenance after every ``interval`` of operating time;
    - ``age_replacement``: the same, its interval learned from the station's own stops (lives
      ended by failures or cut short by maintenance) by renewal-reward, starting from the
      station's own run-to-failure history (``history_weeks``), or from ``interval`` without one;
    - ``predictive``: learned from the machines' condition readings (``failures.degradation``):
      an alarm threshold learned from the station's own run-to-failure history
      (``history_weeks``) and from every life of the run as it ends; recall, precision and
      warning lead time are measured by the run (an alarm within ``horizon`` of the failure
      it prevented counts as a true one);
    - ``oracle``: the upper bound that knows each machine's failure age: a wear-out is
      noticed with probability ``recall`` (given, not measured), estimated with relative
      error ``noise_cv`` and maintained ``lead_time`` before it; false alarms at
      ``false_alarm_per_hour`` per operating hour.

    Planned maintenance takes ``duration`` (state ``maintenance``), happens between
    lots, and renews the machine like a repair does.
    """

    policy: str = "reactive"
    """`reactive`, `preventive`, `age_replacement`, `predictive`, `oracle` or a registered name."""
    interval: Interval | None = None
    """`preventive`: operating time between planned maintenances, s, at least 1 s (`age_replacement`: the first one)."""
    duration: Dist = Field(default=0.0, validate_default=True)  # type: ignore[assignment]
    """Duration of one planned maintenance, s."""
    horizon: PositiveDuration = 8 * HOUR
    """`predictive`: an alarm this close (operating time, s) to the failure it prevents is a true alarm; earlier ones are false."""
    history_weeks: float = Field(default=26.0, ge=0.0, le=520.0)
    """`predictive`, `age_replacement`: weeks of the station's own run-to-failure operation logged before the run (every machine working throughout), the data learning starts from."""
    recall: Probability = 1.0
    """`oracle`: probability that a wear-out is noticed."""
    noise_cv: float = Field(default=0.0, ge=0.0)
    """`oracle`: relative error of the remaining-life estimate."""
    false_alarm_per_hour: float = Field(default=0.0, ge=0.0)
    """`oracle`: needless maintenances per operating hour."""
    lead_time: Duration = 0.0
    """`oracle`: plan maintenance this much operating time before the predicted failure, s."""

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        moved = {"signal_noise": "failures.degradation.reading_noise",
                 "unit_variation": "failures.degradation.threshold_cv",
                 "inspect_every": "failures.degradation.reading_every", "training_lives": "history_weeks"}
        if isinstance(data, dict) and (old := sorted(k for k in data if k in moved)):
            raise ValueError("; ".join(f"{k}: the condition signal is now the machine's wear, see {moved[k]}"
                                       for k in old))
        return data

    @model_validator(mode="after")
    def _outcomes_are_not_inputs(self) -> "Maintenance":
        if self.policy == "predictive":
            # a dumped spec carries every field, so "given" means set to other than the default
            given = sorted(f for f in ("recall", "noise_cv", "false_alarm_per_hour", "lead_time")
                           if getattr(self, f) != type(self).model_fields[f].default)
            if given:
                raise ValueError(f"{', '.join(given)}: a learned predictive policy measures its recall and "
                                 "lead time (from failures.degradation's readings; see history_weeks, horizon); "
                                 "policy = \"oracle\" takes them as given")
        return self


class Quality(_M):
    """Defects made at this station and how they are found.

    ``defect_rate``: probability that a unit processed here becomes defective.
    ``inspect``: ``inline`` finds (with probability ``detection``) the defects made
    at this station right away; ``upstream`` finds all defects a lot carries when it
    reaches this station, made here or at any station before it (a tester anywhere in
    the line; ``end_of_line``, its former name, is read as ``upstream``). A found defective unit
    is reworked with probability ``rework`` (the server spends ``rework_time`` on it,
    then it goes on as good) and scrapped otherwise; defects not found escape to
    the customer.
    """

    defect_rate: Probability = 0.0
    """Probability that a unit processed here becomes defective."""
    inspect: Annotated[Literal["none", "inline", "upstream"],
                       BeforeValidator(lambda v: "upstream" if v == "end_of_line" else v,
                                       json_schema_input_type=Literal["none", "inline", "upstream", "end_of_line"])] = "none"
    """`none`, `inline` (finds this station's defects) or `upstream` (finds every defect the lot
    carries, made here or before; `end_of_line` is an older name for it)."""
    detection: Probability = 1.0
    """Probability that an inspection finds a defective unit."""
    rework: Probability = 0.0
    """Probability that a found defective unit is reworked (and goes on as good) instead of scrapped."""
    rework_time: Duration = 0.0
    """Server time to rework one unit, s, on this station (the lot and the crew wait for it);
    only without `rework_at`."""
    rework_at: Name | None = None
    """A station that reworks the found units: a lot with units to rework goes there (its
    servers, buffer and operators; its processing time is per reworked unit), then back into
    the line at `rework_return`. Omitted: reworked in place, taking `rework_time` per unit."""
    rework_return: Name | None = None
    """Where a reworked lot re-enters its route: a station of the route (default this one:
    the repaired units are tested again). It joins that station's queue even when the queue
    is full (a re-entry rack), so a rework loop cannot block."""


class MinorStops(_M):
    """Short stops that need no technician (a jam, a feeder or nozzle error): a performance
    loss (ISO 22400 effectiveness), not an availability loss. The stop's time is spent in state
    ``busy``; the lot in work waits for it."""

    every: Dist
    """Operating (busy) time between two minor stops, s (a mean of at least 1 s)."""
    duration: Dist
    """Length of one minor stop, s."""

    @field_validator("every")
    @classmethod
    def _every_floor(cls, v: Any) -> Any:
        return _mean_at_least_min_interval(v, "time between minor stops")


class Batch(_M):
    """A batch process (burn-in, soak test, oven): a server works on up to ``size`` units at
    once; one processing time (the station's, not scaled by quantity) for the whole batch."""

    size: int = Field(ge=1, le=MAX_LOT)
    """Most units processed together (whole lots; a lot larger than this runs alone)."""
    min: int | None = Field(default=None, ge=1, le=MAX_LOT)
    """Units needed to start a batch (default ``size``: full batches only)."""
    max_wait: PositiveDuration | None = None
    """Start with the units there (at least one lot) once the first has waited this long, s."""


class Buffer(_M):
    """The waiting room in front of a station, for building specs in Python:
    ``Station(name="smt", buffer=Buffer(capacity=2))`` is ``buffer = 2`` in TOML (the
    station stores the capacity)."""

    capacity: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Waiting places (lots); 0 = direct hand-off (blocking until the next server takes the
    lot); None = unlimited."""


class Station(_M):
    """A work centre: ``lanes`` parallel sub-stations, each ``servers`` identical machines with one input buffer.

    With one lane, all servers share the buffer. With several (parallel lines or
    cells), ``dispatch`` picks the lane for each arriving lot: ``fixed`` (the lot's
    line), ``shortest_queue`` or ``least_expected_completion``; any policy name
    registered in :mod:`twin.policies` works.
    """

    name: Name
    """Unique station name."""
    servers: int = Field(default=1, ge=1, le=MAX_SERVERS)
    """Identical machines per lane sharing the lane's buffer."""
    lanes: int = Field(default=1, ge=1, le=MAX_LANES)
    """Parallel copies (lines, cells) of this station, each with its own buffer and ``servers`` machines."""
    dispatch: str = "fixed"
    """Rule choosing the lane of an arriving lot (with several lanes)."""
    queue: str = "fifo"
    """Order in which a lane's servers take the lots waiting in its buffer: ``fifo``, ``spt``
    (shortest processing time here first), ``lpt`` (longest first), ``edd`` (earliest due date:
    the order a lot will fill, else its release time) or ``priority`` (``products[].priority``,
    smaller first); non-preemptive, ties first come first served; any policy registered as
    ``queue`` works."""
    speeds: list[Annotated[float, Field(gt=0.0, le=100.0)]] | None = None
    """Per-lane speed factors (processing time is divided by the factor); default all 1."""
    operators: Name | None = None
    """Worker pool whose operators (``crew`` per server) each server holds while it works;
    the pool's calendar applies: nothing is processed off shift."""
    crew: int = Field(default=1, ge=1, le=MAX_SERVERS)
    """Operators each server holds while it works."""
    calendar: Name | None = None
    """Calendar of an unmanned station (stations without one work 24/7)."""
    technicians: Name | None = None
    """Worker pool that repairs and maintains this station's machines (none: never waits)."""
    maintenance: Maintenance | None = None
    """Maintenance policy (default reactive: run to failure)."""
    quality: Quality | None = None
    """Defects made here and how they are found."""
    power_kw: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """Electric power per server and state (a state's key, as the state tables name it: ``busy``,
    ``idle``, ``setup``, ``down``, …), kW; states not listed draw ``idle`` power (or 0)."""
    process_time: Dist | None = None
    """Unit processing time (s); per-product overrides in ``process_time_by_product``."""
    process_time_by_product: dict[str, Dist] = Field(default_factory=dict)
    """Per-product unit processing time, s (overrides `process_time`)."""
    buffer: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Waiting places in front of the station; 0 = direct hand-off; omitted = unlimited."""
    setup: Setup | None = None
    """Changeover time when a server switches product."""
    failures: Failures | None = None
    """Unplanned failures of each server."""
    minor_stops: MinorStops | None = None
    """Short stops without a technician (performance loss, not availability)."""
    speed_loss: Factor | None = None
    """Factor (>= 1, no unit) on the unit processing time relative to the ideal (the process
    time's mean), drawn per lot: a speed loss (ISO 22400 effectiveness). A number, or a constant,
    uniform, triangular or empirical table with every value at least 1. Omitted: none."""
    routing: dict[Name, Probability] = Field(default_factory=dict)
    """After this station a lot goes to the named station with that probability, otherwise on
    along its route. This station itself: a retest, done in place (the lot goes to the front
    of its lane's queue, even a full one); a station of the route: the lot goes back or ahead
    to it; any other station, such as a repair bench: a detour, after which the lot comes
    back here."""
    batch: Batch | None = None
    """Process whole batches of lots at once (burn-in)."""

    @field_validator("buffer", mode="before")
    @classmethod
    def _buffer_object(cls, v: Any) -> Any:
        return v.capacity if isinstance(v, Buffer) else v


class Product(_M):
    """A product: its route (station names in order), lot size and share of released lots."""

    name: Name
    """Unique product name."""
    route: list[Name] = Field(min_length=1)
    """Station names in visiting order."""
    lot_size: int = Field(default=1, ge=1, le=MAX_LOT)
    """Units per lot (a tray or panel); processing time scales with it."""
    share: float = Field(default=1.0, ge=0.0)
    """Relative share of lots released by the source."""
    bom: dict[Name, Annotated[int, Field(ge=1, le=MAX_LOT)]] = Field(default_factory=dict)
    """Bill of materials: units of each component (``[[components]]``) per unit of product."""
    priority: int = Field(default=0, ge=-1000, le=1000)
    """Rank at stations whose ``queue`` is ``priority``: smaller is served first."""


class Shift(_M):
    """A scenario shift of demand or supply (DESIGN §8). ``at`` is seconds from t = 0.

    - ``step``: volume × ``factor`` from ``at`` on;
    - ``ramp``: volume moves linearly to × ``factor`` between ``at`` and ``at + duration``;
    - ``pulse``: volume × ``factor`` from ``at`` for ``duration``;
    - ``mix``: product shares become ``shares`` from ``at``;
    - ``new_product``: ``product`` starts being ordered at ``at`` with ``share`` (reached over
      ``duration``, a launch ramp, when given);
    - ``disruption``: ``target`` (a station name, or ``supply``: no lot is released) stops
      for ``duration``;
    - ``supply``: the supplier of component ``target`` (``*``: of every component) takes
      ``factor`` times its lead time for orders placed from ``at`` for ``duration``, or, with
      ``stop = true``, delivers nothing in that window (what falls due comes at its end).
    """

    kind: Literal["step", "ramp", "pulse", "mix", "new_product", "disruption", "supply"]
    """`step`, `ramp`, `pulse`, `mix`, `new_product`, `disruption` or `supply`."""
    at: Duration
    """When the shift starts, s from t = 0 (in a scenario file: from the end of the warm-up)."""
    factor: float = Field(default=1.0, ge=0.0, le=MAX_SHIFT_FACTOR)
    """Volume multiplier (`step`, `ramp`, `pulse`); lead-time multiplier (`supply`)."""
    duration: Duration = 0.0
    """Length of a `ramp`, `pulse`, `disruption` or `supply` shift, s."""
    shares: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """New product shares (`mix`)."""
    product: Name | None = None
    """The new product (`new_product`)."""
    share: float = Field(default=0.0, ge=0.0)
    """Share of the volume the new product takes (`new_product`)."""
    target: Name | None = None
    """What a `disruption` stops (a station name or `supply`); the component whose supplier a
    `supply` shift hits (`*`: all)."""
    stop: bool = False
    """`supply`: the supplier delivers nothing during the shift."""
    announced: Duration | None = None
    """How long before `at` the shift is known, s (a dated festival, a launch): planners that read
    the calendar of known events see it from `at - announced`; unset: nobody sees it coming."""

    @model_validator(mode="after")
    def _needs(self) -> "Shift":
        if self.kind in ("ramp", "pulse", "disruption") and self.duration <= 0:
            raise ValueError(f"a {self.kind} shift needs a positive duration")
        if self.announced is not None and self.kind not in ("step", "ramp", "pulse", "new_product"):
            raise ValueError(f"announced: only demand shifts (step, ramp, pulse, new_product) are known ahead, "
                             f"not a {self.kind}")
        if self.kind == "mix" and not self.shares:
            raise ValueError("a mix shift needs shares")
        if self.kind == "new_product" and (not self.product or self.share <= 0):
            raise ValueError("a new_product shift needs product and a positive share")
        if self.kind == "disruption" and not self.target:
            raise ValueError("a disruption needs a target (a station name or 'supply')")
        if self.kind == "supply" and (not self.target or self.duration <= 0):
            raise ValueError("a supply shift needs a target (a component name or '*') and a positive duration")
        return self


VOLUME_SHIFTS = ("step", "ramp", "pulse")
"""The shift kinds that multiply the volume (demand's, or a line's arrival rate) by ``factor``."""
ARRIVAL_SHIFTS = (*VOLUME_SHIFTS, "disruption")
"""The shift kinds a line fed by arrivals (``source.shifts``) takes: the arrival rate's step, ramp
and pulse, and a station (or the supply of arrivals) stopped."""


def peak_factor(shifts: list[Shift]) -> float:
    """The largest volume multiplier ``shifts`` can reach: volume shifts multiply where they
    overlap, so the worst case is the product of their factors above 1 (a bound that keeps a
    factor that passes alone from making a stream no machine could hold)."""
    peak = 1.0
    for sh in shifts:
        if sh.kind in VOLUME_SHIFTS:
            peak *= max(1.0, sh.factor)
    return peak


class Source(_M):
    """How lots enter: ``saturated`` (never starves), ``poisson`` or ``renewal`` arrivals of lots,
    or ``orders``: a planner releases lots against the order book made by ``[demand]``."""

    kind: Literal["saturated", "poisson", "renewal", "orders"] = "saturated"
    """`saturated`, `poisson`, `renewal` or `orders`."""
    rate_per_hour: float | None = Field(default=None, ge=MIN_RATE_PER_HOUR, le=MAX_RATE_PER_HOUR)
    """Poisson arrival rate of lots per hour."""
    interarrival: Dist | None = None
    """Time between lots for `renewal`, s."""
    shifts: list[Shift] = Field(default_factory=list)
    """Scenario shifts of a line fed by arrivals (`poisson`, `renewal`): `step`, `ramp` and `pulse`
    multiply the arrival rate by `factor` (the arrival clock runs `factor` times as fast, so the
    arrivals before a shift are those of the line without it); a `disruption` stops a station, or
    with `target = "supply"` the arrivals. A scenario puts its shifts here for a line without
    `[demand]`."""

    @model_validator(mode="after")
    def _needs(self) -> "Source":
        if self.kind == "poisson" and self.rate_per_hour is None:
            raise ValueError("kind 'poisson' needs rate_per_hour")
        if self.kind == "renewal" and self.interarrival is None:
            raise ValueError("kind 'renewal' needs interarrival")
        if self.interarrival is not None and self.interarrival.mean <= 0:
            raise ValueError("interarrival: its mean must be > 0 (lots arriving at no interval never end)")
        for sh in self.shifts:
            if sh.kind not in ARRIVAL_SHIFTS:
                raise ValueError(f"shifts: a {sh.kind} shift needs make-to-order demand ([demand]); a line fed by "
                                 f"arrivals takes {', '.join(ARRIVAL_SHIFTS)}")
            if sh.kind == "disruption" and sh.target == "supply" and self.kind == "saturated":
                raise ValueError("shifts: a saturated source never runs dry; stopping the supply of arrivals "
                                 "needs poisson or renewal arrivals")
            if sh.kind != "disruption" and self.kind not in ("poisson", "renewal"):
                raise ValueError(f"shifts: a {sh.kind} shift changes the arrival rate; a {self.kind} source has none "
                                 "(only a disruption applies)")
        if self.kind == "poisson" and self.rate_per_hour is not None:
            peak = self.rate_per_hour * peak_factor(self.shifts)
            if peak > MAX_RATE_PER_HOUR:
                raise ValueError(f"rate_per_hour times the factors of the shifts reaches {peak:.3g} lots an hour, "
                                 f"above {MAX_RATE_PER_HOUR:g}")
        return self


class WorkerPool(_M):
    """A crew of ``size`` workers per shift (operators or technicians) working to a calendar."""

    name: Name
    """Unique pool name."""
    size: int = Field(ge=1, le=MAX_COUNT)
    """Workers on duty per shift."""
    calendar: Name | None = None
    """Calendar name; omitted = around the clock."""
    role: Literal["operator", "technician"] = "operator"
    """`operator` or `technician` (documentation; both are held the same way)."""


class Demand(_M):
    """Make-to-order demand: Poisson orders per product (DESIGN §8)."""

    base_per_week: float = Field(gt=0.0, le=MAX_RATE_PER_WEEK)
    """Baseline demand, units per week, all products together."""
    shares: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """Share of each product in the baseline (default: the products' ``share``)."""
    order_size: int = Field(default=100, ge=1, le=MAX_LOT)
    """Units per order."""
    due: PositiveDuration = 3 * DAY
    """Promised delivery time from order arrival, s."""
    shifts: list[Shift] = Field(default_factory=list)
    """Scenario shifts of demand or supply."""
    weekly_profile: list[Annotated[float, Field(ge=0.0)]] = Field(default_factory=list)
    """Relative demand of each day of the week, the first day first (t = 0 starts a week): seven
    weights, scaled to a mean of 1 (empty: flat). A pattern to be learned, not announced."""

    @field_validator("weekly_profile")
    @classmethod
    def _seven_days(cls, v: list[float]) -> list[float]:
        if v and (len(v) != 7 or sum(v) <= 0):
            raise ValueError("a weekly profile has seven non-negative weights, not all zero")
        return v

    @model_validator(mode="after")
    def _peak(self) -> "Demand":
        # volume shifts multiply where they overlap: bound the worst case, so that a
        # factor that passes alone cannot make an order stream no machine could hold
        peak = self.base_per_week * (7.0 * max(self.weekly_profile) / sum(self.weekly_profile)
                                     if self.weekly_profile else 1.0) * peak_factor(self.shifts)
        if peak > MAX_RATE_PER_WEEK:
            raise ValueError(f"base_per_week times the volume factors of the shifts reaches {peak:.3g} "
                             f"units a week, above {MAX_RATE_PER_WEEK:g}")
        return self


class Planning(_M):
    """Release policy for ``source.kind = "orders"``: ``campaign``, ``hourly``, ``forecast`` or ``backlog`` (or a registered name).

    ``lanes`` parallel lines or cells are fed (lot ``lane`` = line number), or one
    shared feed when ``lanes = 1``; ``period`` is the re-planning interval.
    """

    policy: str = "hourly"
    """`campaign`, `hourly`, `forecast` (hourly plus a pre-build from a learned forecast), `backlog` or a registered name."""
    period: Annotated[PositiveDuration, Field(ge=1.0)] = HOUR
    """Re-planning interval, s (at least 1 s)."""
    lanes: int = Field(default=1, ge=1, le=MAX_LANES)
    """Parallel lines/cells fed separately (lot `lane` = line number); 1 = one shared feed."""
    forecast_per_week: float | None = Field(default=None, gt=0.0, le=MAX_RATE_PER_WEEK)
    """What a forecast-driven planner expects before it has order history (default: the demand's base rate)."""
    forecast_window: PositiveDuration = 4 * WEEK
    """A forecast-driven planner forecasts each product's demand as its mean order rate over this
    trailing window (a moving-average forecast, updated at every re-plan)."""
    npi_lead_time: Duration = 0.0
    """Time after a new product's first order before it can be made (tooling, programs, qualification)."""
    prebuild_horizon: PositiveDuration = 7 * DAY
    """`forecast`: finished stock is built ahead for the forecast demand above capacity over this time, s."""


class Capacity(_M):
    """How capacity follows demand: ``none``, ``shifts`` (overtime, then an extra shift
    after a hiring lag; a shift shed in a slump), ``modules`` (cells added or idled with a
    deployment lead time) or ``orchestrated`` (overdrive and bought lines, pulled by a forecast)."""

    policy: str = "none"
    """`none`, `shifts`, `modules`, `orchestrated` or a registered name."""
    review: Annotated[PositiveDuration, Field(ge=1.0)] = DAY
    """Interval between capacity decisions, s (at least 1 s)."""
    overtime_above: float = Field(default=0.5, ge=0.0)
    """``shifts``/``orchestrated``: overtime (overdrive) while the backlog exceeds this many days of baseline demand;
    ``modules``: the backlog beyond this many days counts toward buying modules."""
    release_below: float = Field(default=0.1, ge=0.0)
    """``shifts``/``orchestrated``: drop overtime, extra shifts (overdrive) below this many days of backlog."""
    hiring_lag: Duration = 4 * WEEK
    """``shifts``: an extra shift starts after overtime has run this long (recruiting, training)."""
    learning_factor: float = Field(default=1.0, ge=1.0, le=5.0)
    """``shifts``: a newly hired crew's work takes this many times the normal time at first (learning curve)."""
    learning_halflife: PositiveDuration = 14 * DAY
    """``shifts``: time in which a new crew's excess time halves, s."""
    shed_below: float = Field(default=0.0, ge=0.0, le=1.0)
    """``shifts``: close the calendars' ``shed`` windows when the last four weeks' orders would load the
    reduced pattern below this utilisation (0: never shed)."""
    overdrive: float = Field(default=1.0, ge=1.0, le=2.0)
    """``orchestrated``: speed factor of overdriven lines (1: no overdrive)."""
    overdrive_wear: float = Field(default=2.0, ge=0.0, le=10.0)
    """``orchestrated``: overdriven machines age ``overdrive ** overdrive_wear`` times as fast."""
    overdrive_power: float = Field(default=2.0, ge=0.0, le=10.0)
    """``orchestrated``: overdriven machines draw ``overdrive ** overdrive_power`` times their busy power."""
    lead_time: Duration = 7 * DAY
    """``modules``: deployment time of an added module; ``orchestrated``: time from buying a line to its first lot."""
    buy_lines: bool = True
    """``orchestrated``: the lines beyond ``initial_lanes`` may be bought; ``modules``: the slots beyond ``owned_lanes``."""
    owned_lanes: int | None = Field(default=None, ge=1, le=MAX_LANES)
    """``modules`` (and ``none``): module slots owned at t = 0 (default all of ``planning.lanes``). With ``buy_lines``, when the
    owned modules cannot meet the demand a review asks for, more are bought (up to ``planning.lanes``) as far as
    last week's order rate less twice its measured noise, and the backlog beyond ``overtime_above`` days, need them:
    each is owned (its capex runs) and works from ``buy_lead_time`` after the purchase."""
    buy_lead_time: Duration = 28 * DAY
    """``modules``: time from buying a module to its first lot (making, shipping, installing, commissioning), s."""
    min_lanes: int = Field(default=1, ge=1, le=MAX_LANES)
    """`modules`: never fewer deployed lanes."""
    initial_lanes: int | None = Field(default=None, ge=1, le=MAX_LANES)
    """`modules`: lanes deployed at t = 0 (default all); `orchestrated`: lanes owned at t = 0 (the rest can be bought)."""
    target_utilisation: float = Field(default=0.85, gt=0.0, le=1.0)
    """`modules`/`orchestrated`: planned load of a deployed lane."""
    clear_backlog_in: PositiveDuration = 7 * DAY
    """``modules``: size capacity to clear the backlog within this time besides the demand rate."""


class Costs(_M):
    """Unit-cost parameters (DESIGN §9); money in one currency (USD by default), durations in s."""

    currency: str = "USD"
    """Currency of all money amounts."""
    capex: float = Field(default=0.0, ge=0.0)
    """Installed equipment and building of the whole plant (all lanes)."""
    capex_per_lane: float = Field(default=0.0, ge=0.0)
    """Capex of one lane (line, cell, module), charged while owned: from the start, or (bought by the
    ``orchestrated`` policy) from when it works; an owned module costs it deployed or idle."""
    lanes_leased: bool = False
    """Lanes are leased instead of owned: no ``capex_per_lane``, ``lease_per_lane_hour`` while deployed."""
    lease_per_lane_hour: float = Field(default=0.0, ge=0.0)
    """Lease of a deployed lane per hour (``lanes_leased``)."""
    hiring_per_worker: float = Field(default=0.0, ge=0.0)
    """Recruiting and training one worker of a crew the capacity policy hires (an extra shift, a crew hired back)."""
    severance_per_worker: float = Field(default=0.0, ge=0.0)
    """Cost of letting one worker of a shed crew go (severance, agency fees)."""
    depreciation_years: float = Field(default=7.0, gt=0.0)
    """Life over which the capex is charged, years (of the lanes' equipment, and of the plant's
    ``capex`` too unless ``plant_depreciation_years`` is given)."""
    plant_depreciation_years: float | None = Field(default=None, gt=0.0)
    """Life of the plant's ``capex`` (building, utilities), years, when it is an asset class of its
    own; None: ``depreciation_years``."""
    cost_of_capital: float = Field(default=0.0, ge=0.0, le=1.0)
    """Annual rate at which capital is charged (a weighted average cost of capital, fraction a year):
    every capex is charged as the annuity that repays it over its life at this rate, less the annuity
    of its salvage value; 0 gives straight-line depreciation."""
    salvage_share: float = Field(default=0.0, ge=0.0, le=1.0)
    """Share of a lane's equipment capex (``capex_per_lane``) recovered when it is sold at the end of
    its life (the plant's ``capex`` has none)."""
    bought_capacity: Literal["window", "life"] = "window"
    """How a lane bought during the observation window is charged: ``window``, its capital charge
    (annuity) from when it works to the window's end, like owned capacity; ``life``, its whole life-cycle
    capital (capex less the present value of its salvage) charged to the window that bought it."""
    module_deploy_cost: float = Field(default=0.0, ge=0.0)
    """One-off cost of deploying (moving in, commissioning) one module."""
    wage_per_hour: dict[str, Annotated[float, Field(ge=0.0)]] = Field(default_factory=dict)
    """Loaded hourly wage per worker pool name."""
    overtime_premium: float = Field(default=0.5, ge=0.0)
    """Extra fraction of the wage paid for overtime hours."""
    energy_per_kwh: float = Field(default=0.0, ge=0.0)
    """Electricity price per kWh."""
    repair_cost: float = Field(default=0.0, ge=0.0)
    """Parts and call-out per unplanned repair."""
    planned_maintenance_cost: float = Field(default=0.0, ge=0.0)
    """Parts per planned maintenance."""
    material_per_unit: float = Field(default=0.0, ge=0.0)
    """Material (bill of materials) per unit."""
    conversion_per_hour: float = Field(default=0.0, ge=0.0)
    """Value added per hour of ideal processing, for valuing scrapped work in progress."""
    rework_per_unit: float = Field(default=0.0, ge=0.0)
    """Parts and consumables per reworked unit (its station time is already in labour and energy)."""
    escape_cost: float = Field(default=0.0, ge=0.0)
    """Warranty/return cost of a defective unit that reaches a customer."""
    holding_per_unit_year: float = Field(default=0.0, ge=0.0)
    """Carrying cost of one unit of WIP or finished stock for a year."""
    overhead_per_year: float = Field(default=0.0, ge=0.0)
    """Fixed overhead per year."""
    labour_per_lane_hour: float = Field(default=0.0, ge=0.0)
    """Labour tied to a deployed lane (e.g. a microfactory cell's attendants), per lane-hour."""
    late_per_unit: float = Field(default=0.0, ge=0.0)
    """Price of a late unit: each unit of an order due in the window that was not delivered by its
    due date (lost margin, a penalty); 0 prices service not at all."""


class Layout(_M):
    """Where stations, their buffers and the vehicles' paths stand on the floor (the replay and
    the live page draw it; a fleet without ``distance_m`` measures its trips on it). Without it
    the line is laid out automatically, in layers along its routes."""

    unit: Literal["m", "grid"] = "m"
    """Coordinates in metres, or in grid cells of ``cell_m``."""
    cell_m: float = Field(default=5.0, gt=0.0, le=1e4)
    """Side of a grid cell, m (with ``unit = "grid"``)."""
    metric: Literal["rectilinear", "euclidean"] = "rectilinear"
    """How a move's distance between two stations is measured: along the aisles (|dx| + |dy|) or straight."""
    stations: dict[Name, Annotated[list[Annotated[float, Field(ge=-1e6, le=1e6)]], Field(min_length=2, max_length=2)]] = \
        Field(default_factory=dict)
    """Place of each station, ``name = [x, y]``; give every station one, or none for the automatic layout."""
    buffers: dict[Name, Annotated[list[Annotated[float, Field(ge=-1e6, le=1e6)]], Field(min_length=2, max_length=2)]] = \
        Field(default_factory=dict)
    """Place of a station's buffer, ``station = [x, y]``; default just upstream (left) of the station."""
    paths: dict[Name, Annotated[list[Annotated[list[Annotated[float, Field(ge=-1e6, le=1e6)]],
                                               Field(min_length=2, max_length=2)]], Field(min_length=2)]] = \
        Field(default_factory=dict)
    """A fleet's drawn path, ``fleet = [[x, y], ...]``; its length is the fleet's trip when it has
    no ``distance_m``. Default: through the stations of its moves."""


class Run(_M):
    """Default run settings; the CLI and :func:`twin.simulate` may override them."""

    horizon: Annotated[PositiveDuration, Field(le=MAX_HORIZON)] = WEEK
    """Simulated time, s (at most 20 years)."""
    warmup: Duration = 0.0
    """Initial time removed from all KPIs, s."""
    replications: int = Field(default=5, ge=1, le=MAX_REPLICATIONS)
    """Independent replications."""
    seed: int = Field(default=1, ge=0, le=MAX_SEED)
    """Base seed (same seed: identical results)."""


class Supplier(_M):
    """Who delivers a component: lead time and reliability."""

    lead_time: Dist
    """Time from placing an order to its delivery, s."""
    reliability: Probability = 1.0
    """Share of orders delivered within their lead time; the others come ``delay`` later."""
    delay: Dist = Field(default=0.0, validate_default=True)  # type: ignore[assignment]
    """Extra time a late order takes, s."""


class Component(_M):
    """A purchased component held in a store and reordered by a policy (DESIGN §8).

    - ``sQ`` (continuous review): when the inventory position (stock + on order − backorders)
      falls to ``reorder_point`` or below, order ``order_qty`` (as often as needed);
    - ``RS`` (periodic review): every ``review``, order up to ``order_up_to``.

    The station that consumes it takes a lot's units × the product's ``bom`` quantity
    before it starts the lot; short of them it waits in state ``starved_material``
    (first come, first served)."""

    name: Name
    """Unique component name (the products' ``bom`` keys)."""
    at: Name | None = None
    """Station that consumes it (default: the first station of each product's route)."""
    policy: Literal["sQ", "RS"] = "sQ"
    """`sQ` (reorder point, order quantity) or `RS` (review period, order-up-to level)."""
    reorder_point: int = Field(default=0, ge=-MAX_COUNT, le=MAX_COUNT)
    """`sQ`: reorder when the inventory position is at or below this, units."""
    order_qty: int = Field(default=1, ge=1, le=MAX_COUNT)
    """`sQ`: units per order."""
    review: Interval = 7 * DAY
    """`RS`: time between reviews, s (at least 1 s)."""
    order_up_to: int = Field(default=0, ge=0, le=MAX_COUNT)
    """`RS`: order up to this inventory position, units."""
    initial: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    """Stock at t = 0, units (default: reorder point + order quantity, or the order-up-to level)."""
    supplier: Supplier
    """Its supplier."""
    holding_per_unit_year: float = Field(default=0.0, ge=0.0)
    """Carrying cost of one unit in stock for a year (the cost's ``holding`` term)."""


class Transport(_M):
    """A fleet that moves lots between stations (AGVs, forklifts, a conveyor's places).

    A move that the fleet serves waits for a free vehicle (the upstream server stays
    ``blocked`` until it is loaded), then takes ``load_time`` + travel + ``unload_time``;
    the vehicle then waits for room at the destination (``blocked``) and travels back
    empty. Vehicles' states are recorded like servers' (the run's ``transport`` table)."""

    name: Name
    """Unique fleet name (not a station's)."""
    vehicles: int = Field(default=1, ge=1, le=MAX_SERVERS)
    """Vehicles (or conveyor places) in the fleet."""
    moves: list[Annotated[list[Name], Field(min_length=2, max_length=2)]] = Field(default_factory=list)
    """Moves the fleet serves, as ``[from, to]`` station pairs; omitted: every move between
    two stations."""
    cross_lane: bool = False
    """Only moves that change line or cell (a lot dispatched to another lane) use the fleet;
    the others ride the line's own conveyor."""
    travel_time: Dist | None = None
    """Time of one trip (loaded or empty), s; or give ``speed_m_per_s`` and ``distance_m`` (or a
    ``[layout]`` the distance is taken from)."""
    distance_m: float | None = Field(default=None, gt=0.0, le=1e6)
    """Length of one trip, m (with ``speed_m_per_s``); omitted with a ``[layout]``: the length of
    the fleet's path there, or the mean distance between the two stations of each of its moves."""
    speed_m_per_s: float | None = Field(default=None, gt=0.0, le=100.0)
    """Travel speed, m/s."""
    load_time: Duration = 0.0
    """Time to load a lot, s."""
    unload_time: Duration = 0.0
    """Time to unload a lot, s."""

    _layout_m: float | None = PrivateAttr(default=None)  # the trip's length read from the spec's layout

    @model_validator(mode="after")
    def _needs(self) -> "Transport":
        if self.travel_time is None and self.speed_m_per_s is None:
            raise ValueError("a transport fleet needs travel_time, or distance_m and speed_m_per_s (or speed_m_per_s "
                             "and a [layout] its trips are measured on)")
        if self.travel_time is None and self.distance_m is not None:
            self._check_trip(self.distance_m)
        return self

    def _check_trip(self, metres: float) -> None:
        trip = metres / self.speed_m_per_s  # type: ignore[operator]
        if trip > MAX_DURATION:
            raise ValueError(f"a trip of distance_m / speed_m_per_s = {trip:g} s is longer than "
                             f"{MAX_DURATION:g} s (about 317 years): check the speed's unit (m/s)")

    @property
    def trip_m(self) -> float | None:
        """Length of one trip, m: ``distance_m``, or as the spec's layout gives it (None: timed)."""
        return self.distance_m if self.distance_m is not None else self._layout_m

    def trip_time(self) -> Any:
        """The travel time of one trip as a distribution, s."""
        if self.travel_time is not None:
            return self.travel_time
        return Constant(value=self.trip_m / self.speed_m_per_s)  # type: ignore[operator]


ABLATION_FULL = "full"
"""The name of ``twin ablate``'s run with every capability on."""
ABLATION_ALL_OFF = "all"
"""The name of ``twin ablate``'s run with every capability off together."""


class Capability(_M):
    """A named capability of the factory and how to switch it off (``twin ablate``)."""

    name: Name
    """Unique capability name; not ``full`` or ``all``, the names of the ablation's own runs."""
    description: str = ""
    """What the capability is, in a few words."""
    off: dict[str, Any] = Field(min_length=1)
    """Spec values (dotted paths, ``*`` for every list item) that switch it off, e.g.
    ``{"stations.*.maintenance.policy" = "reactive"}``."""


class Spec(_M):
    """A whole factory."""

    name: Name
    """Name of the factory (used in reports)."""
    description: str = ""
    """Free text."""
    plugins: list[str] = Field(default_factory=list)
    """Python modules imported before the spec is checked, so the policies they register
    (``@twin.policies.register``) can be named in it. The only way a spec runs code: opt-in,
    by module name, looked up next to the spec file first."""
    source: Source = Field(default_factory=Source)
    """How lots enter the line."""
    products: list[Product] = Field(default_factory=list)
    """Products and their routes; default one product `unit` through all stations in file order."""
    stations: list[Station] = Field(min_length=1)
    """The work centres."""
    calendars: list[CalendarSpec] = Field(default_factory=list)
    """Named shift calendars (t = 0 is Monday 00:00)."""
    workers: list[WorkerPool] = Field(default_factory=list)
    """Worker pools (operators, technicians)."""
    components: list[Component] = Field(default_factory=list)
    """Purchased components, their stores and suppliers (the products' ``bom``)."""
    transport: list[Transport] = Field(default_factory=list)
    """Fleets that move lots between stations."""
    demand: Demand | None = None
    """Make-to-order demand (needed by `source.kind = "orders"`)."""
    planning: Planning = Field(default_factory=Planning)
    """Release policy for orders."""
    capacity: Capacity = Field(default_factory=Capacity)
    """How capacity follows demand."""
    costs: Costs = Field(default_factory=Costs)
    """Unit-cost parameters."""
    run: Run = Field(default_factory=Run)
    """Default run settings."""
    capabilities: list[Capability] = Field(default_factory=list)
    """Capabilities `twin ablate` switches off one at a time to measure what each is worth."""
    layout: Layout | None = None
    """Places on the floor (optional; without it an automatic layout from the routes)."""

    def _check_built(self) -> None:
        # a spec built in Python gets the checks a loaded one gets (duplicate names, unknown
        # stations in routes, ...) before anything can run it
        errors = self.problems()[0]
        if errors:
            raise SpecError([f"<Spec {self.name}>: {p}: {m}" for p, m in errors])

    @model_validator(mode="after")
    def _default_product(self) -> "Spec":
        if not self.products:
            self.products = [Product(name="unit", route=[s.name for s in self.stations])]
        for t in self.transport:  # a fleet that measures its trips on the layout
            t._layout_m = floorplan.fleet_distance(self, t) if t.distance_m is None and t.travel_time is None else None
            if t._layout_m is not None:
                t._check_trip(t._layout_m)
        return self

    def _check_flow(self, errors: list[tuple[str, str]], names: set[str], products: set[str]) -> None:
        """Checks of the shop-floor elements: minor stops, routing, rework stations, batches,
        components and transport."""
        visitors = {n: [p.name for p in self.products if n in p.route] for n in names}
        comps = {c.name for c in self.components}
        _dupes(errors, "components", [c.name for c in self.components])
        _dupes(errors, "transport", [t.name for t in self.transport])
        for s in self.stations:
            at = f"stations.{s.name}"
            if s.batch is not None and s.batch.min is not None and s.batch.min > s.batch.size:
                errors.append((f"{at}.batch.min", f"{s.batch.min} is more than batch.size ({s.batch.size})"))
            total = sum(s.routing.values())
            if total > 1.0 + 1e-9:
                errors.append((f"{at}.routing", f"probabilities sum to {total:g}; at most 1"))
            if s.routing.get(s.name, 0.0) >= 1.0:
                errors.append((f"{at}.routing.{s.name}", "a lot sent back with probability 1 never leaves"))
            for tgt in s.routing:
                if tgt not in names:
                    errors.append((f"{at}.routing.{tgt}", f"unknown station {tgt!r}{_hint(tgt, names)}"))
                else:
                    off = [p for p in visitors[s.name] if tgt not in self._route(p)]
                    _times_for(errors, self, f"{at}.routing.{tgt}", tgt, off)
            q = s.quality
            if q is not None and q.rework_at is not None:
                if q.rework_at not in names:
                    errors.append((f"{at}.quality.rework_at", f"unknown station {q.rework_at!r}{_hint(q.rework_at, names)}"))
                elif q.rework_at == s.name:
                    errors.append((f"{at}.quality.rework_at", "is this station; leave it out and set rework_time to "
                                                              "rework in place"))
                else:
                    _times_for(errors, self, f"{at}.quality.rework_at", q.rework_at, visitors[s.name])
                if q.rework_time > 0:
                    errors.append((f"{at}.quality.rework_time", "is for rework in place; with rework_at the rework "
                                                                "station's processing time applies"))
            if q is not None and q.rework_return is not None:
                if q.rework_at is None:
                    errors.append((f"{at}.quality.rework_return", "needs rework_at (a rework station)"))
                for pname in visitors[s.name]:
                    if q.rework_return not in self._route(pname):
                        errors.append((f"{at}.quality.rework_return", f"{q.rework_return!r} is not on the route of "
                                                                      f"product {pname!r}"))
        errors.extend(_trapped_routes(self, names))
        for p in self.products:
            for c in p.bom:
                if c not in comps:
                    errors.append((f"products.{p.name}.bom.{c}", f"unknown component {c!r}{_hint(c, comps)}"))
        for comp in self.components:
            if comp.at is not None and comp.at not in names:
                errors.append((f"components.{comp.name}.at", f"unknown station {comp.at!r}{_hint(comp.at, names)}"))
            if comp.policy == "RS" and comp.order_up_to <= 0:
                errors.append((f"components.{comp.name}.order_up_to", "an RS policy needs an order-up-to level > 0"))
            if comp.at is not None and not any(comp.name in p.bom and comp.at in p.route for p in self.products):
                errors.append((f"components.{comp.name}.at", f"no product that needs {comp.name!r} visits {comp.at!r}"))
        served: dict[tuple[str, str], str] = {}  # a move and the fleet that serves it (the first to name it)
        every: str | None = None  # the fleet without moves: it serves every move no other fleet names
        for t in self.transport:
            if t.name in names:
                errors.append((f"transport.{t.name}.name", "is also a station's name"))
            if not t.moves:
                if every is not None:
                    errors.append((f"transport.{t.name}.moves", f"omitted, so this fleet would serve every move, as "
                                   f"fleet {every!r} already does; only one fleet can: name each fleet's moves"))
                every = every or t.name
            for i, mv in enumerate(t.moves):
                for j, st in enumerate(mv):
                    if st not in names:
                        errors.append((f"transport.{t.name}.moves.{i}.{j}", f"unknown station {st!r}{_hint(st, names)}"))
                pair = (mv[0], mv[1])
                if pair in served:
                    other = served[pair]
                    errors.append((f"transport.{t.name}.moves.{i}", f"the move {mv[0]} -> {mv[1]} is "
                                   + ("listed twice" if other == t.name else f"already served by fleet {other!r}")
                                   + "; one fleet serves a move"))
                served.setdefault(pair, t.name)
            if t.travel_time is None and t.trip_m is None:
                errors.append((f"transport.{t.name}.distance_m", "missing: give distance_m, or a [layout] that places "
                               "the stations of the fleet's moves (or draws its path in layout.paths)"
                               + ("; a fleet that serves every move needs distance_m or a path" if not t.moves else "")))
        self._check_layout(errors, names)

    def _check_layout(self, errors: list[tuple[str, str]], names: set[str]) -> None:
        lay = self.layout
        if lay is None:
            return
        fleets = {t.name for t in self.transport}
        for what, known, kind in (("stations", names, "station"), ("buffers", names, "station"),
                                  ("paths", fleets, "transport fleet")):
            for n in getattr(lay, what):
                if n not in known:
                    errors.append((f"layout.{what}.{n}", f"unknown {kind} {n!r}{_hint(n, known)}"))
        if lay.stations:
            missing = [s.name for s in self.stations if s.name not in lay.stations]
            if missing:
                errors.append(("layout.stations", f"no place for {', '.join(map(repr, missing))}: place every station, "
                               "or leave layout.stations out for the automatic layout"))
            where: dict[tuple[float, float], str] = {}
            for n, xy in lay.stations.items():
                other = where.setdefault((xy[0], xy[1]), n)
                if other != n:
                    errors.append((f"layout.stations.{n}", f"stands where {other!r} stands ({xy[0]:g}, {xy[1]:g})"))
        elif lay.buffers:
            errors.append(("layout.buffers", "places buffers of stations that have no place: give layout.stations too"))

    def _route(self, product: str) -> list[str]:
        return next(p.route for p in self.products if p.name == product)

    # ------------------------------------------------------------------ helpers
    @property
    def shifts(self) -> list[Shift]:
        """The scenario shifts of the run: ``[demand]``'s, or for a line fed by arrivals the source's."""
        return self.demand.shifts if self.demand is not None else self.source.shifts

    def station(self, name: str) -> Station:
        for s in self.stations:
            if s.name == name:
                return s
        raise KeyError(name)

    # ------------------------------------------------------------------ editing
    def to_dict(self) -> dict[str, Any]:
        """Plain data as it would be written in TOML: the fields that were given, distributions
        in their short form."""
        return _plain(self)

    def to_toml(self) -> str:
        """The spec as TOML text; ``validate(tomllib.loads(spec.to_toml()))`` gives an equal spec."""

        return toml_text.dumps(self.to_dict())

    def with_overrides(self, overrides: dict[str, Any], source: str = "<overrides>") -> "Spec":
        """A new spec with values replaced by dotted paths, validated like any spec.

        ``{"stations.smt.servers": 3, "demand.base_per_week": 150000}``: list items are
        addressed by ``name`` (or index)."""
        data = self.model_dump(mode="python", by_alias=True)
        problems = []
        for path, value in overrides.items():
            err = _set_path(data, path, value)
            if err:
                problems.append(f"{source}: {path}: {err}")
        if problems:
            raise SpecError(problems)
        return validate(data, source=source)  # type: ignore[return-value]

    def calendar(self, name: str) -> CalendarSpec:
        for c in self.calendars:
            if c.name == name:
                return c
        raise KeyError(name)

    def pool(self, name: str) -> WorkerPool:
        for w in self.workers:
            if w.name == name:
                return w
        raise KeyError(name)

    def product_shares(self) -> dict[str, float]:
        """Baseline share of each product (demand shares if given, else product shares), summing to 1."""
        if self.demand is not None and self.demand.shares:
            raw = {p.name: self.demand.shares.get(p.name, 0.0) for p in self.products}
        else:
            raw = {p.name: p.share for p in self.products}
        tot = sum(raw.values()) or 1.0
        return {k: v / tot for k, v in raw.items()}

    def problems(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Semantic checks beyond the schema: ``(errors, warnings)`` as (path, message)."""
        errors: list[tuple[str, str]] = []
        warnings: list[tuple[str, str]] = []
        if self.run.warmup >= self.run.horizon:
            errors.append(("run.warmup", f"warm-up ({self.run.warmup:g} s) must be shorter than the horizon "
                                         f"({self.run.horizon:g} s)"))
        _dupes(errors, "stations", [s.name for s in self.stations])
        _dupes(errors, "products", [p.name for p in self.products])
        names = {s.name for s in self.stations}
        products = {p.name for p in self.products}
        visited: set[str] = set()
        for p in self.products:
            for i, st in enumerate(p.route):
                if st not in names:
                    errors.append((f"products.{p.name}.route.{i}", f"unknown station {st!r}{_hint(st, names)}"))
                    continue
                visited.add(st)
                s = self.station(st)
                if s.process_time is None and p.name not in s.process_time_by_product:
                    errors.append((f"stations.{st}.process_time",
                                   f"no processing time for product {p.name!r} (set process_time or "
                                   f"process_time_by_product.{p.name})"))
        if sum(p.share for p in self.products) <= 0:
            errors.append(("products", "the shares of all products sum to 0"))
        _dupes(errors, "calendars", [c.name for c in self.calendars])
        _dupes(errors, "workers", [w.name for w in self.workers])
        _dupes(errors, "capabilities", [c.name for c in self.capabilities])
        for i, c in enumerate(self.capabilities):
            if c.name.lower() in (ABLATION_FULL, ABLATION_ALL_OFF):
                errors.append((f"capabilities.{i}.name", f"{c.name!r} is the name of twin ablate's run with every "
                               f"capability {'on' if c.name.lower() == ABLATION_FULL else 'off'}; call it something else"))
        cals = {c.name for c in self.calendars}
        pools = {w.name for w in self.workers}
        for w in self.workers:
            if w.calendar is not None and w.calendar not in cals:
                errors.append((f"workers.{w.name}.calendar", f"calendar {w.calendar!r} is not defined{_hint(w.calendar, cals)}"))
        for s in self.stations:
            if s.operators is not None and s.operators in pools and s.crew > self.pool(s.operators).size:
                errors.append((f"stations.{s.name}.crew", f"needs {s.crew} operators but pool {s.operators!r} "
                                                          f"has only {self.pool(s.operators).size}"))
            for key in ("operators", "technicians"):
                ref = getattr(s, key)
                if ref is not None and ref not in pools:
                    errors.append((f"stations.{s.name}.{key}", f"worker pool {ref!r} is not defined{_hint(ref, pools)}"))
            if s.calendar is not None and s.calendar not in cals:
                errors.append((f"stations.{s.name}.calendar", f"calendar {s.calendar!r} is not defined{_hint(s.calendar, cals)}"))
            if s.speeds is not None and len(s.speeds) != s.lanes:
                errors.append((f"stations.{s.name}.speeds", f"has {len(s.speeds)} entries for {s.lanes} lanes"))
            if s.lanes > 1 and s.dispatch not in registry("dispatch"):
                errors.append((f"stations.{s.name}.dispatch", f"unknown dispatch rule {s.dispatch!r}"
                                                            f"{_hint(s.dispatch, registry('dispatch'))}; "
                                                            f"known: {', '.join(sorted(registry('dispatch')))}"))
            if s.queue not in registry("queue"):
                errors.append((f"stations.{s.name}.queue", f"unknown queue discipline {s.queue!r}"
                                                         f"{_hint(s.queue, registry('queue'))}; "
                                                         f"known: {', '.join(sorted(registry('queue')))}"))
            elif s.batch is not None and registry("queue")[s.queue].draws_time:
                errors.append((f"stations.{s.name}.queue", f"{s.queue!r} orders lots by their own processing "
                                                         "time, but a batch station draws one time for the whole "
                                                         "batch; use fifo, edd or priority"))
            m = s.maintenance
            if m is not None:
                if m.policy not in registry("maintenance"):
                    errors.append((f"stations.{s.name}.maintenance.policy", f"unknown maintenance policy {m.policy!r}"
                                                                           f"{_hint(m.policy, registry('maintenance'))}; "
                                                                           f"known: {', '.join(sorted(registry('maintenance')))}"))
                if m.policy == "preventive" and m.interval is None:
                    errors.append((f"stations.{s.name}.maintenance.interval", "preventive maintenance needs an interval"))
                if m.policy != "reactive" and s.failures is None:
                    errors.append((f"stations.{s.name}.maintenance", f"{m.policy} maintenance needs failures to prevent"))
                elif m.policy == "predictive" and s.failures is not None and s.failures.degradation is None:
                    errors.append((f"stations.{s.name}.maintenance.policy", "predictive maintenance reads a condition "
                                   "signal: give the station's failures a degradation (wear) law instead of a ttf"))
                elif m.policy == "predictive" and m.history_weeks <= 0:
                    errors.append((f"stations.{s.name}.maintenance.history_weeks", "predictive maintenance learns "
                                   "its alarm threshold from the station's own history: give at least some weeks"))
            for state in s.power_kw:
                if state not in STATE_KEYS:
                    errors.append((f"stations.{s.name}.power_kw.{state}", f"unknown state {state!r}{_hint(state, STATE_KEYS)}; "
                                                                        f"known: {', '.join(STATE_KEYS)}"))
        if self.source.kind == "orders":
            if self.demand is None:
                errors.append(("demand", "source kind 'orders' needs a [demand] table"))
            if self.planning.policy not in registry("planning"):
                errors.append(("planning.policy", f"unknown planning policy {self.planning.policy!r}"
                                                  f"{_hint(self.planning.policy, registry('planning'))}; "
                                                  f"known: {', '.join(sorted(registry('planning')))}"))
        if self.capacity.policy not in registry("capacity"):
            errors.append(("capacity.policy", f"unknown capacity policy {self.capacity.policy!r}"
                                              f"{_hint(self.capacity.policy, registry('capacity'))}; "
                                              f"known: {', '.join(sorted(registry('capacity')))}"))
        if self.source.kind == "orders" and self.planning.lanes > 1:
            # the planner feeds lot.lane = line number: each multi-lane station must have one lane per line
            for station in self.stations:
                if station.lanes > 1 and station.lanes != self.planning.lanes:
                    errors.append((f"stations.{station.name}.lanes", f"{station.lanes} lanes, but planning.lanes is "
                                                                f"{self.planning.lanes}: the planner feeds one lane "
                                                                "per line or cell; make them equal (to change "
                                                                "all: stations.*.lanes)"))
        if self.capacity.policy in ("modules", "none"):
            cap = self.capacity
            owned = cap.owned_lanes if cap.owned_lanes is not None else self.planning.lanes
            if cap.owned_lanes is not None and cap.owned_lanes > self.planning.lanes:
                errors.append(("capacity.owned_lanes", f"{cap.owned_lanes} is more than planning.lanes "
                                                       f"({self.planning.lanes}), the slots there is room for"))
            elif cap.initial_lanes is not None and cap.initial_lanes > owned:
                errors.append(("capacity.initial_lanes", f"{cap.initial_lanes} is more than "
                                                         + (f"capacity.owned_lanes ({owned}): only owned modules can "
                                                            "be deployed" if cap.owned_lanes is not None else
                                                            f"planning.lanes ({self.planning.lanes})")))
        elif self.capacity.owned_lanes is not None:
            errors.append(("capacity.owned_lanes", f"owned slots are set for the modules and none policies (policy "
                                                   f"is {self.capacity.policy!r}; orchestrated: initial_lanes are "
                                                   "the lines owned at the start)"))
        for i, sh in enumerate(self.source.shifts):
            where = f"source.shifts.{i}"
            if self.source.kind == "orders":
                errors.append((where, "a line released against orders takes its shifts in [demand]"))
            if sh.at >= self.run.horizon:
                errors.append((f"{where}.at", f"shift at {format_duration(sh.at, with_seconds=True)} is at or beyond "
                                              f"the end of the run ({format_duration(self.run.horizon, with_seconds=True)})"))
            if sh.kind == "disruption" and sh.target not in names and sh.target != "supply":
                errors.append((f"{where}.target", f"unknown station {sh.target!r}{_hint(sh.target or '', names)} "
                                                  "(or 'supply': no arrivals)"))
        if self.demand is not None:
            for k in self.demand.shares:
                if k not in products:
                    errors.append((f"demand.shares.{k}", f"unknown product {k!r}{_hint(k, products)}"))
            for i, sh in enumerate(self.demand.shifts):
                where = f"demand.shifts.{i}"
                if sh.at >= self.run.horizon:
                    errors.append((f"{where}.at", f"shift at {format_duration(sh.at, with_seconds=True)} is at or beyond the end of the run "
                                                  f"({format_duration(self.run.horizon, with_seconds=True)})"))
                for k in sh.shares:
                    if k not in products:
                        errors.append((f"{where}.shares.{k}", f"unknown product {k!r}{_hint(k, products)}"))
                if sh.product is not None and sh.product not in products:
                    errors.append((f"{where}.product", f"unknown product {sh.product!r}{_hint(sh.product, products)}"))
                comps = {c.name for c in self.components}
                if sh.kind == "supply" and sh.target not in comps and sh.target != "*":
                    errors.append((f"{where}.target", f"unknown component {sh.target!r}{_hint(sh.target or '', comps)} "
                                                      "(or '*' for every component)"))
                if sh.kind == "disruption" and sh.target not in names and sh.target != "supply":
                    errors.append((f"{where}.target", f"unknown station {sh.target!r}{_hint(sh.target or '', names)} "
                                                      "(or 'supply')"))
        self._check_flow(errors, names, products)
        cycle = _blocking_cycle(self)
        if cycle:
            warnings.append((f"stations.{cycle[0]}.buffer",
                             f"routes loop through {' -> '.join(cycle + [cycle[0]])} and every station on the "
                             "loop has a finite buffer: the line can deadlock (every server blocked by the "
                             "next); leave one of these buffers unlimited"))
        for s in self.stations:  # lots reach rework stations and routing targets off their routes too
            visited.update(s.routing)
            if s.quality is not None and s.quality.rework_at is not None:
                visited.add(s.quality.rework_at)
        for s in self.stations:
            if s.name not in visited:
                warnings.append((f"stations.{s.name}", "no product visits this station"))
            for prod in s.process_time_by_product:
                if prod not in products:
                    errors.append((f"stations.{s.name}.process_time_by_product.{prod}",
                                   f"unknown product {prod!r}{_hint(prod, products)}"))
            if s.setup is not None:
                for a, row in s.setup.matrix.items():
                    if a not in products:
                        errors.append((f"stations.{s.name}.setup.matrix.{a}", f"unknown product {a!r}{_hint(a, products)}"))
                    for b in row:
                        if b not in products:
                            errors.append((f"stations.{s.name}.setup.matrix.{a}.{b}",
                                           f"unknown product {b!r}{_hint(b, products)}"))
        return errors, warnings


def _times_for(errors: list[tuple[str, str]], spec: "Spec", where: str, station: str, products: list[str]) -> None:
    """``station`` (reached off its products' routes) needs a processing time for each of ``products``."""
    s = spec.station(station)
    for p in products:
        if s.process_time is None and p not in s.process_time_by_product:
            errors.append((where, f"sends product {p!r} to {station!r}, which has no processing time for it "
                                  f"(set stations.{station}.process_time or process_time_by_product.{p})"))


def _blocking_cycle(spec: "Spec") -> list[str]:
    """A loop of routes through stations that all have finite buffers (a possible deadlock), or []."""
    finite = {s.name for s in spec.stations if s.buffer is not None}
    succ: dict[str, set[str]] = {n: set() for n in finite}
    for p in spec.products:
        for a, b in zip(p.route, p.route[1:]):
            if a in finite and b in finite:
                succ[a].add(b)
    # probabilistic routing back along a route closes a loop (a retest happens in place and a
    # detour's return joins a re-entry rack: neither can block)
    for st in spec.stations:
        for t in st.routing:
            if t != st.name and st.name in finite and t in finite:
                succ[st.name].add(t)
    # depth-first search with an explicit stack (a line of a thousand stations must not
    # exhaust Python's recursion limit); colour 1 = on the current path, 2 = done
    colour: dict[str, int] = {}
    for root in sorted(finite):
        if root in colour:
            continue
        path = [root]
        colour[root] = 1
        stack = [iter(sorted(succ[root]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                colour[path.pop()] = 2
                stack.pop()
                continue
            if colour.get(nxt) == 1:
                return path[path.index(nxt):]
            if nxt not in colour:
                colour[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(succ[nxt])))
    return []


def _plain(x: Any) -> Any:
    if isinstance(x, _DistBase):
        return x.to_toml_value()
    if isinstance(x, BaseModel):
        out = {}
        for name, f in type(x).model_fields.items():
            v = getattr(x, name)
            if v is None or name not in x.model_fields_set:
                continue
            out[f.alias or name] = _plain(v)
        return out
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def toml_values(text: str, where: str = "--vary") -> list[Any]:
    """``V1,V2,...`` (or ``[V1, V2]``): each value read as TOML, bare words as text. Text with
    brackets, braces or quotes must be TOML (an unterminated ``[1,2`` is an error naming
    ``where``, not ``[1, 2]``)."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text if text.startswith('[') else f'[{text}]'}")["v"]
    except tomllib.TOMLDecodeError as e:
        if any(c in text for c in "[]{}\"'"):
            raise SpecError([f"{where}: {text[:60]!r} is not a TOML list of values ({e})"]) from None
        return [x.strip() for x in text.split(",")]
    except RecursionError:
        raise SpecError([f"{where}: {text[:40]!r}...: nested too deeply"]) from None


def _set_path(data: Any, path: str, value: Any) -> str | None:
    """Set ``value`` at a dotted ``path`` in plain spec data; return an error message or None.

    List items are addressed by ``name`` or index; ``*`` addresses every item
    (``stations.*.lanes``)."""
    return _set_parts(data, path.split("."), 0, value)


def _set_parts(cur: Any, parts: list[str], i: int, value: Any) -> str | None:
    key = parts[i]
    last = i == len(parts) - 1
    if isinstance(cur, list):
        names = [el.get("name") for el in cur if isinstance(el, dict)]
        if key == "*":
            if not cur:
                return f"{'.'.join(parts[:i]) or 'the list'} is empty"
            items = range(len(cur))
        elif key in names:
            items = range(names.index(key), names.index(key) + 1)
        elif key.isdigit() and int(key) < len(cur):
            items = range(int(key), int(key) + 1)
        else:
            known = [n for n in names if isinstance(n, str)]
            return (f"no item named {key!r}{_hint(key, known)}"
                    + (f"; the items here: {', '.join(known[:30])}" if known else ""))
        for k in items:
            if last:
                cur[k] = value
            elif err := _set_parts(cur[k], parts, i + 1, value):
                return err
        return None
    if isinstance(cur, dict):
        if last:
            cur[key] = value  # unknown keys are caught by validation with a "did you mean"
            return None
        if key not in cur or cur[key] is None:
            cur[key] = {}
        return _set_parts(cur[key], parts, i + 1, value)
    return f"{'.'.join(parts[:i])} holds a value, not a table"


def load_plugins(modules: list[str], base: Path | None, source: str) -> list[str]:
    """Import plugin modules (the spec's folder first on the path); return problems."""

    problems = []
    added = False
    if base is not None and str(base) not in sys.path:
        sys.path.insert(0, str(base))
        added = True
    try:
        for i, mod in enumerate(modules):
            try:
                importlib.import_module(mod)
            except Exception as e:  # noqa: BLE001 - any failure of user code is reported as bad input
                problems.append(f"{source}: plugins.{i}: cannot import {mod!r} ({type(e).__name__}: {e})")
    finally:
        if added:
            sys.path.remove(str(base))
    return problems


def _dupes(errors: list[tuple[str, str]], path: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            errors.append((path, f"duplicate name {n!r}"))
        seen.add(n)


def _hint(word: str, choices: typing.Iterable[str]) -> str:
    choices = list(choices)
    same = [c for c in choices if c.lower() == word.lower()]  # the same name in other capitals
    close = same or difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

# --------------------------------------------------------------------------- loading


def resolve(path_or_name: str | os.PathLike[str]) -> Path:
    """A spec path, or the file of a built-in factory given by name (``dark-factory``)."""
    p = Path(path_or_name)
    if p.exists() or p.suffix == ".toml" or os.sep in str(path_or_name):
        return p
    known = builtins.factories()
    name = str(path_or_name).replace("_", "-")
    if name in known:
        return known[name]
    raise SpecError([f"{path_or_name}: no such file, nor a built-in factory{_hint(name, known)}; "
                     f"built-in: {', '.join(known)} (twin list)"])


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for messages about paths that are not regular files."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: Path, max_bytes: int, what: str) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``.

    A device, FIFO or folder is refused before it is opened (a FIFO would block, /dev/zero
    never ends), and the cap is enforced on what is read, so it holds for files whose
    size the system reports as 0 (/proc). Raises :class:`SpecError` naming the file."""
    f = str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SpecError([f"{f}: file not found"]) from None
    except OSError as e:
        raise SpecError([f"{f}: cannot read file ({e.strerror or e})"]) from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecError([f"{f}: is {file_kind(st.st_mode)}, not a regular file ({what} expected)"])
    if st.st_size > max_bytes:
        raise SpecError([f"{f}: file is {st.st_size} bytes; the limit for {what} is {max_bytes} bytes"])
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise SpecError([f"{f}: cannot read file ({e.strerror or e})"]) from None
    if len(data) > max_bytes:
        raise SpecError([f"{f}: more than {max_bytes} bytes; the limit for {what} is {max_bytes} bytes"])
    return data


MAX_DEPTH = 32  # tables and arrays nested deeper than any spec needs are refused before validation


def _too_deep(data: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(data, 0)]
    while stack:
        x, d = stack.pop()
        if d > limit:
            return True
        if isinstance(x, dict):
            stack.extend((v, d + 1) for v in x.values())
        elif isinstance(x, list):
            stack.extend((v, d + 1) for v in x)
    return False


def read_toml(path: Path, what: str = "a spec") -> dict[str, Any]:
    """Read a TOML file with clear, single-line errors (raises :class:`SpecError`)."""
    f = str(path)
    raw = read_regular_file(path, MAX_SPEC_BYTES, what)
    if not raw.strip():
        raise SpecError([f"{f}: file is empty"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([f"{f}: not a text file (invalid UTF-8); {what} is TOML"]) from None
    if "\x00" in text:
        raise SpecError([f"{f}: not a text file (contains NUL bytes); {what} is TOML"])
    # a UTF-8 byte-order mark (Windows editors write one) is not TOML, but says nothing else: skip it
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise SpecError([f"{f}: file is empty"])
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([f"{f}: invalid TOML: {e}"]) from None
    except RecursionError:
        raise SpecError([f"{f}: arrays or tables nested too deeply (more than {MAX_DEPTH} levels)"]) from None
    if _too_deep(data):
        raise SpecError([f"{f}: arrays or tables nested too deeply (more than {MAX_DEPTH} levels)"])
    return data


def load(path_or_name: str | os.PathLike[str]) -> Spec:
    """Load and validate a spec from a TOML file or a built-in factory name."""
    path = resolve(path_or_name)
    data = read_toml(path)
    return validate(data, source=str(path), base=path.parent)


def validate(data: dict[str, Any], source: str = "<spec>", model: type[BaseModel] | None = None,
             base: Path | None = None) -> Spec:
    """Validate a raw dict into a :class:`Spec`; raise :class:`SpecError` listing every problem.

    ``base``: the folder plugin modules are looked up in first (the spec file's folder)."""
    model = model or Spec
    if _too_deep(data):
        raise SpecError([f"{source}: arrays or tables nested too deeply (more than {MAX_DEPTH} levels)"])
    plugins = data.get("plugins") if isinstance(data, dict) and model is Spec else None
    if isinstance(plugins, list) and all(isinstance(m, str) for m in plugins):
        problems = load_plugins(plugins, base, source)
        if problems:
            raise SpecError(problems)
    token = _VALIDATING.set(True)
    try:
        spec = model.model_validate(data)
    except ValidationError as e:
        shown = format_validation_error(e, data, source, model)
        if model is Spec and len(shown) < MAX_PROBLEMS:  # every problem at once: the cross-references too
            shown += [f"{source}: {p}: {m}" for p, m in _raw_route_problems(data)]
        raise SpecError(shown[:MAX_PROBLEMS + 1]) from None
    finally:
        _VALIDATING.reset(token)
    errors = spec.problems()[0] if hasattr(spec, "problems") else []
    if errors:
        shown = [f"{source}: {p}: {m}" for p, m in errors[:MAX_PROBLEMS]]
        if len(errors) > MAX_PROBLEMS:
            shown.append(f"{source}: and {len(errors) - MAX_PROBLEMS:,} more problems (the first {MAX_PROBLEMS} are listed)")
        raise SpecError(shown)
    return spec  # type: ignore[return-value]


def _raw_route_problems(data: Any) -> list[tuple[str, str]]:
    """Route steps naming no station, read from the raw data: reported beside the field errors
    of a spec that did not validate (the checks of :meth:`Spec.problems` need a valid spec)."""
    if not isinstance(data, dict) or not isinstance(data.get("stations"), list) or not isinstance(data.get("products"), list):
        return []
    names = {s["name"] for s in data["stations"] if isinstance(s, dict) and isinstance(s.get("name"), str)}
    out = []
    for p in data["products"]:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not isinstance(p.get("route"), list):
            continue
        for i, st in enumerate(p["route"]):
            if isinstance(st, str) and st not in names:
                out.append((f"products.{p['name']}.route.{i}", f"unknown station {st!r}{_hint(st, names)}"))
    return out


def _trapped_routes(spec: Spec, names: set[str]) -> list[tuple[str, str]]:
    """Routes that a lot can enter and never leave: the absorbing-chain check of each product's
    routing. The chain's states are the steps of the route, the end of the route absorbs; a route
    is refused when some step its lots can reach has no path of positive probability to the end
    (a finite chain is then absorbed with probability less than 1). Retests, detours and routes
    back or ahead follow the engine's rules (``StationRuntime._destination``)."""
    by_name = {s.name: s for s in spec.stations}
    out: list[tuple[str, str]] = []
    for p in spec.products:
        route = [n for n in p.route if n in names]
        if len(route) != len(p.route):
            continue  # an unknown station is reported on its own
        n = len(route)
        succ: list[set[int]] = [set() for _ in range(n)]
        for i, st in enumerate(route):
            routing = {t: q for t, q in by_name[st].routing.items() if q > 0 and t in names}
            if sum(routing.values()) < 1.0 - 1e-12:
                succ[i].add(i + 1)  # on along the route (n: the end)
            for t in routing:
                if t == st or t not in route:
                    succ[i].add(i)  # a retest in place, or a detour that comes back here
                else:
                    j = next((k for k in range(i, -1, -1) if route[k] == t), route.index(t))
                    succ[i].add(j)
        reach, todo = {0}, [0]
        while todo:
            for j in succ[todo.pop()]:
                if j < n and j not in reach:
                    reach.add(j)
                    todo.append(j)
        leaves = {n}
        changed = True
        while changed:
            changed = False
            for i in range(n):
                if i not in leaves and succ[i] & leaves:
                    leaves.add(i)
                    changed = True
        trapped = sorted(i for i in reach if i not in leaves)
        if trapped and not (len(trapped) == 1 and by_name[route[trapped[0]]].routing.get(route[trapped[0]], 0.0) >= 1.0):
            loop = " -> ".join(route[i] for i in trapped)
            out.append((f"stations.{route[trapped[-1]]}.routing",
                        f"lots of product {p.name!r} that reach {route[trapped[0]]} never leave its route: the routing "
                        f"sends them round {loop} with probability 1 (no step of that loop goes on to the end of the "
                        "route)"))
    return out


MAX_PROBLEMS = 100
"""Problems listed at most for one input (a file of 100,000 bad keys would print for minutes);
the rest are counted."""


def format_validation_error(e: ValidationError, data: Any, source: str, model: type[BaseModel]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    errors = e.errors(include_url=False)
    for k, err in enumerate(errors):
        if len(out) >= MAX_PROBLEMS:
            out.append(f"{source}: and {len(errors) - k:,} more problems (the first {MAX_PROBLEMS} are listed)")
            break
        path, parent_model = _readable_path(err["loc"], data, model)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            fields = list(parent_model.model_fields) if parent_model is not None else []
            aliases = [f.alias for f in parent_model.model_fields.values() if f.alias] if parent_model else []
            known = [k for k in fields + aliases if not k.endswith("_")]
            msg = f"unknown key{_hint(key, known)}"
            if known:
                msg += f"; allowed here: {', '.join(sorted(set(known)))}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == NAME_PATTERN:
            msg = name_problem(str(err["input"]))
        line = f"{source}: {path or '(top level)'}: {msg}"
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out


def _readable_path(loc: tuple[Any, ...], data: Any, model: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic loc into ``stations.smt.process_time`` and find the model that owns the last key."""
    parts: list[str] = []
    raw = data
    ann: Any = model
    owner: type[BaseModel] | None = model
    for i, item in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(item, str) and item in DIST_CLASSES and not (isinstance(raw, dict) and item in raw):
            ann = DIST_CLASSES[item]
            owner = ann
            continue  # a union tag, not a key the user wrote
        if isinstance(item, str) and (item.startswith("function-") or item in {"constrained-str", "int", "float"}):
            continue
        if i > 0 and isinstance(item, str) and not isinstance(raw, (dict, list)) and raw is not None:
            continue  # a key of a value we coerced (a bare number became {value = ...})
        if isinstance(raw, list) and isinstance(item, int):
            el = raw[item] if 0 <= item < len(raw) else None
            parts.append(str(el["name"]) if isinstance(el, dict) and isinstance(el.get("name"), str) else str(item))
            raw = el
            ann = _inner(ann)
            continue
        parts.append(str(item))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            owner = ann
            field = _field(ann, str(item))
            ann = _strip_optional(field.annotation) if field is not None else None
        elif _origin(ann) is dict:
            ann = _inner(ann)
        else:
            ann = None
        if not last:
            raw = raw.get(item) if isinstance(raw, dict) else None
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                owner = ann
    return ".".join(parts), owner if isinstance(owner, type) else None


def _field(m: type[BaseModel], key: str):
    f = m.model_fields.get(key)
    if f is not None:
        return f
    for f in m.model_fields.values():
        if f.alias == key:
            return f
    return None


def _origin(a: Any) -> Any:
    return typing.get_origin(a)


def _strip_optional(a: Any) -> Any:
    if _origin(a) in (typing.Union, types.UnionType):
        args = [x for x in typing.get_args(a) if x is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if _origin(a) is typing.Annotated:
        return _strip_optional(typing.get_args(a)[0])
    return a


def _inner(a: Any) -> Any:
    a = _strip_optional(a)
    args = typing.get_args(a)
    if _origin(a) is list and args:
        return _strip_optional(args[0])
    if _origin(a) is dict and len(args) == 2:
        return _strip_optional(args[1])
    return None
