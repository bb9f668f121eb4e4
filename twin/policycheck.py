"""A contract suite for policies, in the manner of scikit-learn's ``check_estimator``.

``check_policy(kind, name)`` builds a small line that uses the registered policy, runs it, and
raises :class:`PolicyContractError` (an ``AssertionError``) naming the first rule broken:

- the class offers the methods of its kind (:data:`twin.contracts.KINDS`);
- it is deterministic: the same seed gives the same tables, twice;
- it returns valid choices: a lane index in range, a queue key that is a number, a maintenance
  age that is not negative, a product index in range, deployed lanes within the line's;
- it does not mutate what it is shown (the lot and the lanes' queues a dispatch rule sees, the
  lot a queue key reads, the condition readings a maintenance policy plans from);
- it tolerates an empty queue (a dispatch choice before any lot has arrived; a plan with no
  order booked: the line runs its first day without demand).

A plugin's author calls it in the plugin's tests; ``options`` adds the fields the policy needs
to its spec table (``stations[].maintenance``, ``planning``, ``capacity``).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from .contracts import KINDS
from .flow import Lot
from .model import Model
from .policies.registry import get
from .results import build
from .spec import validate
from .units import DAY
from .wear import MachineView


class PolicyContractError(AssertionError):
    """A policy broke a rule of its kind's contract (the message names the rule)."""


def _fail(kind: str, name: str, rule: str) -> PolicyContractError:
    return PolicyContractError(f"{kind} policy {name!r}: {rule}")


# fields the built-in policies need beyond their name (a plugin passes its own as ``options``)
_BUILTIN_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("maintenance", "preventive"): {"interval": "40h"},
    ("maintenance", "oracle"): {"recall": 0.9, "lead_time": "4h"},
    ("capacity", "modules"): {"initial_lanes": 1, "lead_time": "1d"},
}


def _spec(kind: str, name: str, options: dict[str, Any]) -> Any:
    pol = {"policy": name, **_BUILTIN_OPTIONS.get((kind, name), {}), **options}
    expo = {"dist": "exponential"}
    base: dict[str, Any] = {"name": f"check-{kind}-{name}", "source": {"kind": "poisson", "rate_per_hour": 90}}
    products = [{"name": "x", "route": ["a", "b"], "priority": 1}, {"name": "y", "route": ["a", "b"], "priority": 0}]
    if kind == "dispatch":
        stations = [{"name": "a", "process_time": {**expo, "mean": 30.0}},
                    {"name": "b", "lanes": 3, "dispatch": name, "process_time": {**expo, "mean": 100.0}}]
    elif kind == "queue":
        stations = [{"name": "a", "process_time": {**expo, "mean": 30.0}},
                    {"name": "b", "queue": name, "process_time": {**expo, "mean": 36.0}}]
    elif kind == "maintenance":
        stations = [{"name": "a", "process_time": {**expo, "mean": 30.0}},
                    {"name": "b", "process_time": {**expo, "mean": 30.0},
                     "failures": {"degradation": {"wear_life": "60h", "wear_cv": 0.3, "threshold_cv": 0.05,
                                                  "reading_noise": 0.02}, "ttr": "2h"},
                     "maintenance": {"history_weeks": 4, "duration": "20min", **pol}}]
    else:  # planning, capacity: a two-lane line fed from the order book, demand after the first day
        stations = [{"name": "a", "lanes": 2, "dispatch": "fixed", "process_time": {**expo, "mean": 60.0}},
                    {"name": "b", "lanes": 2, "dispatch": "fixed", "process_time": {**expo, "mean": 50.0}}]
        base["source"] = {"kind": "orders"}
        base["demand"] = {"base_per_week": 8000.0, "order_size": 10, "due": "2d",
                          "shifts": [{"kind": "pulse", "at": "0s", "duration": "1d", "factor": 0.0}]}
        base["planning"] = {"policy": "hourly", "lanes": 2}
        base[kind] = {**base.get(kind, {}), **pol}
        if kind == "planning" and name == "campaign":
            base["planning"]["period"] = "1d"
    data = {**base, "stations": stations, "products": products}
    return validate(data)


def _lot_state(lot: Any) -> tuple:
    return tuple(copy.copy(getattr(lot, f)) for f in type(lot).__slots__ if f != "route")


def _queue_state(lanes: list[Any]) -> list[tuple]:
    return [tuple(id(q) for q in ln.buffer.items) for ln in lanes]


def check_policy(kind: str, name: str, options: dict[str, Any] | None = None, seed: int = 1,
                 days: float = 3.0) -> None:
    """Run policy ``name`` of ``kind`` through its contract on a small line (``days`` of
    simulated time, twice on ``seed``); raise :class:`PolicyContractError` on the first rule
    it breaks."""
    spec = _spec(kind, name, dict(options or {}))
    try:
        _check(kind, name, spec, seed, days)
    except PolicyContractError:
        raise
    except Exception as e:  # the engine's own refusal, or the policy's crash: both break the contract
        raise _fail(kind, name, f"raised {type(e).__name__}: {e}") from e


def _check(kind: str, name: str, spec: Any, seed: int, days: float) -> None:
    protocol = KINDS[kind]
    first = Model(spec, seed, days * DAY)
    if kind == "dispatch":
        rule = first.stations["b"].input.rule
        probe = Lot(10**9, 0, 1, (), 0.0)
        if not isinstance(rule, protocol):
            raise _fail(kind, name, f"has no choose(lot) (a {protocol.__name__})")
        i = rule.choose(probe)  # nothing has arrived: every queue is empty
        if not (isinstance(i, int) and 0 <= i < 3):
            raise _fail(kind, name, f"chose lane {i!r} before any lot arrived; lanes are 0..2")
    elif kind == "maintenance":
        pol = first.stations["b"].reliability.policy
        if not isinstance(pol, protocol):
            raise _fail(kind, name, f"has no plan(view) (a {protocol.__name__})")
    else:
        part = {"queue": lambda: first.stations["b"].lanes[0].buffer, "planning": lambda: first.planner,
                "capacity": lambda: first.capacity}[kind]()
        obj = part if kind != "queue" else get("queue", name)(first.stations["b"])
        if not isinstance(obj, protocol):
            raise _fail(kind, name, f"does not offer the {protocol.__name__} surface")
    first.rec.counters_at_warmup = first.counters()  # as run() does at t = 0
    _run_and_watch(kind, name, first, days)
    a = build(first.finish(days * DAY))
    b = build(Model(spec, seed, days * DAY).run(days * DAY))
    for table in ("kpis", "stations", "lots"):
        if not getattr(a, table).equals(getattr(b, table)):
            raise _fail(kind, name, f"is not deterministic: two runs on seed {seed} differ in the {table} table")
    if kind in ("planning", "capacity") and int(a.kpis["good_units"].iloc[0]) <= 0:
        raise _fail(kind, name, "the line made nothing in its run")


def _run_and_watch(kind: str, name: str, m: Any, days: float) -> None:
    """Advance ``m`` a day at a time and check the choices the policy makes on the way."""
    st = m.stations["b"]
    for k in range(1, int(math.ceil(days)) + 1):
        m._advance(min(k, days) * DAY)
        if kind == "dispatch":
            rule = st.input.rule
            lots = [q for ln in st.lanes for q in ln.buffer.items] + [_probe(m)]
            for lot in lots[-5:]:
                before, queues = _lot_state(lot), _queue_state(st.lanes)
                i = rule.choose(lot)
                if not (isinstance(i, int) and 0 <= i < len(st.lanes)):
                    raise _fail(kind, name, f"chose lane {i!r}; lanes are 0..{len(st.lanes) - 1}")
                if _lot_state(lot) != before or _queue_state(st.lanes) != queues:
                    raise _fail(kind, name, "changed the lot or the queues it was shown")
        elif kind == "queue":
            key = st.queue_key
            for lot in list(st.lanes[0].buffer.items)[:20]:
                if key is None:
                    break
                before = _lot_state(lot)
                v = key(lot)
                if not isinstance(v, (int, float)) or math.isnan(v):
                    raise _fail(kind, name, f"keyed a lot by {v!r}, not a number")
                if _lot_state(lot) != before:
                    raise _fail(kind, name, "changed the lot whose key it read")
        elif kind == "maintenance":
            pol = st.reliability.policy
            for srv in st.servers:
                view = srv.view
                if not isinstance(view, MachineView):
                    continue
                readings = view.readings_to(view.read_to).copy()
                t = pol.plan(view)
                if not isinstance(t, (int, float)) or math.isnan(t) or t < 0:
                    raise _fail(kind, name, f"planned maintenance at age {t!r}; an age is a number >= 0 (inf: never)")
                if not (view.readings_to(view.read_to) == readings).all():
                    raise _fail(kind, name, "changed the condition readings it was shown")
        elif kind == "capacity":
            n = sum(m.lanes_active)
            if not 0 <= n <= len(m.lanes_active):
                raise _fail(kind, name, f"deployed {n} lanes of {len(m.lanes_active)}")
        elif kind == "planning":
            bad = [p for _, p, *_ in m.rec.releases if not 0 <= p < len(m.product_names)]
            if bad:
                raise _fail(kind, name, f"released product index {bad[0]!r}")


def _probe(m: Any) -> Any:
    """A lot that has just arrived (the next one a dispatch rule will be asked about)."""
    return Lot(10**9, 0, 1, (), m.env.now)
