"""A live twin: mirror a running line from its events, forecast from its current state, and
score the forecasts (``twin live``, ``twin replay``, ``twin backtest``).

:class:`LiveTwin` is the part without a network: events in (the event-log schema), forecasts
out. It folds every event into a :class:`~twin.tracker.StateTracker` and forecasts, on a
cadence of the line's own time (``every``) and after a significant event (a failure, a planned
maintenance, a new order), by simulating ``replications`` runs of ``horizon`` seconds from the
state at that instant (:func:`forecast`). Because the cadence counts in the events' timestamps,
a log replayed at any speed gives the same forecasts for the same seed.

:func:`run_live` connects it to an MQTT broker (paho-mqtt 2: the Eclipse client every broker is
tested against, pure Python, with automatic reconnection and QoS 1): events arrive on
``PREFIX/events`` and orders on ``PREFIX/orders``, one JSON object per message; every forecast is
published, retained with QoS 1, on ``PREFIX/forecast`` as one JSON object. :func:`replay` plays
an event log onto ``PREFIX/events`` as a running line would. :func:`backtest` forecasts along a
recorded log and scores each forecast against what then happened (:class:`Scores`).
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

import numpy as np

from .eventlog import COLUMNS
from .model import Model
from .record import Fate
from .runs import replication_seed
from .snapshot import Snapshot
from .spec import Spec, SpecError
from .state import State
from .tables import spells
from .tracker import EventError, StateTracker, _plain
from .units import format_duration

SIGNIFICANT = ("fail", "maint_start")
"""Events after which a forecast is made at once (besides the cadence and new orders)."""
QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class Order:
    """An order the line is to fill: ``qty`` good units of ``product`` by ``due`` (s, line time)."""

    id: str
    product: str
    qty: int
    due: float
    received: float
    filled: int = 0


def spec_hash(spec: Spec) -> str:
    """A short hash of the spec a forecast came from (its canonical JSON)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]


def forecast(spec: Spec, snap: Snapshot, horizon: float, replications: int, seed: int,
             orders: list[Order] | None = None, stale: list[str] | None = None) -> dict[str, Any]:
    """Simulate ``replications`` runs of ``horizon`` s from ``snap`` (seeds from ``seed`` and the
    snapshot's time, :func:`forecast_seed`) and say what they give: good
    units from the snapshot's time to ``horizon`` later (P10, P50, P90), the station that most
    often holds the line up, each open order's expected completion and the chance it is late, and
    when each lot in the line now is expected to leave it."""
    t0 = snap.time
    good: list[float] = []
    bottlenecks: dict[str, int] = {}
    fills: list[dict[str, list[float]]] = []  # per replication: product -> finish time of each good unit
    lot_done: dict[int, list[float]] = {}
    products = [p.name for p in spec.products]
    in_line = [lot.id for lot in snap.lots()]
    end = t0 + horizon
    base = forecast_seed(seed, t0)
    for r in range(replications):
        # the record read directly (results.build's tables are four fifths of a short run's cost)
        rec = Model(spec, replication_seed(base, r), end, state=snap).run(end, t0)
        fin = rec.array("finishes")
        ok = (fin["fate"] == int(Fate.GOOD)) & (fin["t"] >= t0)
        good.append(float(fin["units"][ok].sum()))
        b = _bottleneck(rec, t0, end)
        bottlenecks[b] = bottlenecks.get(b, 0) + 1
        rel = rec.array("releases")
        order = np.argsort(fin["t"][ok], kind="stable")
        per: dict[str, list[float]] = {p: [] for p in products}
        for lot, t, g in zip(fin["lot"][ok][order].tolist(), fin["t"][ok][order].tolist(), fin["units"][ok][order].tolist()):
            per[products[int(rel["product"][lot])]].extend([t] * int(g))
        fills.append(per)
        # the record numbers the snapshot's lots 0.. in the snapshot's order (servers, then buffers)
        t_done = np.full(len(in_line), math.nan)
        mine = fin["lot"] < len(in_line)
        t_done[fin["lot"][mine]] = np.where(fin["units"][mine] > 0, fin["t"][mine], math.nan)
        for i, lot_id in enumerate(in_line):
            lot_done.setdefault(lot_id, []).append(float(t_done[i]))
    q = np.quantile(good, QUANTILES)
    bottleneck = max(sorted(bottlenecks), key=lambda s: bottlenecks[s])
    out: dict[str, Any] = {
        "as_of": t0, "horizon": horizon, "replications": replications, "seed": seed,
        "output": {"p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2])},
        "ensemble": good,
        "bottleneck": bottleneck, "bottleneck_share": bottlenecks[bottleneck] / replications,
        "orders": _order_forecasts(orders or [], fills, t0 + horizon),
        "lots": [{"lot": lot_id, "eta_p50": _finite(np.nanquantile(_inf(v), 0.5)),
                  "eta_p90": _finite(np.nanquantile(_inf(v), 0.9))} for lot_id, v in lot_done.items()],
        "stale": sorted(stale or []),
        "spec": spec_hash(spec),
    }
    if stale:
        out["assumed"] = (f"no events from {', '.join(sorted(stale))} for longer than the heartbeat: "
                          "the forecast assumed their last known state")
    return out


def forecast_seed(seed: int, as_of: float) -> int:
    """The base seed of the forecast made as of ``as_of`` (s): fixed by the seed and the time, so
    the same events give the same forecasts, and different for each forecast. With one set of
    seeds for all, every forecast's runs would share their arrivals and failures (common random
    numbers): a set that happened to scatter little would make every band too narrow at once, and
    the forecasts' misses would not be independent (the band's coverage could not be judged)."""
    return int(np.random.SeedSequence([seed, round(as_of * 1000)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _bottleneck(rec: Any, t0: float, t1: float) -> str:
    """The station with the highest active share (busy, setup, down) in [t0, t1]: the KPI
    ``bottleneck`` of :func:`twin.results.build`, from the record alone."""
    sid, state, start, end = spells(rec, t1)
    dur = np.clip(end, t0, t1) - np.clip(start, t0, t1)
    active = np.isin(state, [int(State.BUSY), int(State.SETUP), int(State.DOWN)])
    per_server = np.bincount(sid[active], weights=dur[active], minlength=len(rec.servers))
    share = {n: 0.0 for n in rec.stations}
    for (name, _), a in zip(rec.servers, per_server.tolist()):
        share[name] += a / rec.servers_of(name)
    return max(rec.stations, key=lambda n: share[n])  # the first of equals, as idxmax


def _inf(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=float)
    return np.where(np.isnan(a), np.inf, a)  # not done within the horizon


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _order_forecasts(orders: list[Order], fills: list[dict[str, list[float]]], end: float) -> list[dict[str, Any]]:
    """Each open order's completion in each replication: filled oldest first per product, from the
    good units finished after the forecast's start; not filled within the horizon: after ``end``."""
    out = []
    for o in orders:
        ahead = sum(x.qty - x.filled for x in orders if x.product == o.product and x.received <= o.received
                    and x is not o and (x.received, x.id) < (o.received, o.id))
        need = ahead + o.qty - o.filled
        etas = []
        for per in fills:
            f = per.get(o.product, [])
            etas.append(f[need - 1] if 0 < need <= len(f) else (-math.inf if need <= 0 else math.inf))
        a = np.asarray(etas)
        late = a > o.due
        known = o.due <= end or bool((a < math.inf).all())
        out.append({"id": o.id, "product": o.product, "qty": o.qty, "due": o.due,
                    "eta_p50": _finite(float(np.quantile(a, 0.5))),
                    "p_late": float(late.mean()) if known else None,
                    **({} if known else {"beyond_horizon": True})})
    return out


# --------------------------------------------------------------------------- the twin without a network
@dataclass
class LiveTwin:
    """Events in, forecasts out (see the module doc). ``every``, ``horizon`` and ``heartbeat`` in
    s of the line's clock. ``publish(forecast)`` is called with each forecast."""

    spec: Spec
    every: float
    horizon: float
    replications: int = 20
    seed: int = 1
    heartbeat: float = math.inf
    publish: Callable[[dict[str, Any]], None] = lambda f: None
    warn: Callable[[str], None] = lambda text: None
    outcome: Callable[[dict[str, Any]], None] = lambda o: None
    tracker: StateTracker = field(init=False)
    orders: list[Order] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)
    _next_due: float | None = None
    _pending: float | None = None  # a significant event's time: forecast once its instant is complete
    _finishes: list[tuple[float, str, int]] = field(default_factory=list)  # (t, product, good units) seen
    _awaiting: list[dict[str, Any]] = field(default_factory=list)  # forecasts whose outcome is not known yet

    def __post_init__(self) -> None:
        self.tracker = StateTracker(self.spec)
        self._last_station = {p.name: p.route[-1] for p in self.spec.products}
        self._route_len = {p.name: len(p.route) for p in self.spec.products}

    def event(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        """Fold one event; returns the forecasts it made due (those whose instant it closed)."""
        t = self.tracker.check(ev)[4]  # a bad event is refused before it closes any instant
        made = self._due_before(t)
        lot = ev.get("lot")
        steps_before = self.tracker._steps.get(lot, 0) if isinstance(lot, int) else 0
        self.tracker.apply(ev)
        if self._next_due is None:
            self._next_due = (math.floor(self.tracker.now / self.every) + 1) * self.every
        if ev["event"] == "leave" and isinstance(lot, int) and ev.get("qty"):
            product = ev.get("product")
            if product in self._route_len and steps_before + 1 == self._route_len[product]:
                self._finish(float(ev["timestamp"]), product, int(ev["qty"]))
        if ev["event"] in SIGNIFICANT:
            self._pending = self.tracker.now
        return made

    def order(self, msg: dict[str, Any], source: str = "order") -> list[dict[str, Any]]:
        """A new order ``{"id", "product", "qty", "due"}`` (``due`` in s of the line's clock):
        forecast at once as of the last event."""
        for k in ("id", "product", "qty", "due"):
            if k not in msg:
                raise EventError(f"{source}: missing {k!r}")
        if msg["product"] not in self._route_len:
            raise EventError(f"{source}: unknown product {msg['product']!r}")
        qty, due = msg["qty"], msg["due"]
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            raise EventError(f"{source}: qty {qty!r} is not a number of units >= 1")
        if not isinstance(due, (int, float)) or isinstance(due, bool) or not math.isfinite(due):
            raise EventError(f"{source}: due {due!r} is not a time in seconds")
        if any(o.id == str(msg["id"]) for o in self.orders):
            raise EventError(f"{source}: order {msg['id']!r} is already open")
        self.orders.append(Order(str(msg["id"]), msg["product"], qty, float(due), self.tracker.now))
        f = self._forecast(self.tracker.now)
        return [f] if f is not None else []

    def _finish(self, t: float, product: str, units: int) -> None:
        self._finishes.append((t, product, units))
        for o in self.orders:  # oldest first
            if o.product == product and o.filled < o.qty and units > 0:
                take = min(units, o.qty - o.filled)
                o.filled += take
                units -= take
        self.orders = [o for o in self.orders if o.filled < o.qty]

    def _outcomes_before(self, t: float) -> None:
        """Say what happened to each forecast whose horizon ended before ``t`` (every event up to
        its end is in): the good units made, whether they fell in the band, the PIT and the CRPS."""
        while self._awaiting and self._awaiting[0]["as_of"] + self._awaiting[0]["horizon"] < t:
            f = self._awaiting.pop(0)
            y = float(self.actual_output(f["as_of"], f["as_of"] + f["horizon"]))
            self.outcome({"outcome_of": f["as_of"], "horizon": f["horizon"], "good_units": y,
                          "in_band": f["output"]["p10"] <= y <= f["output"]["p90"],
                          "pit": pit(f["ensemble"], y, 0.5), "crps": crps(f["ensemble"], y)})

    def _due_before(self, t: float) -> list[dict[str, Any]]:
        """The forecasts whose instant an event at ``t`` closes: the pending significant event's
        (at an earlier time) and each cadence point before ``t``, in time order."""
        self._outcomes_before(t)
        made: list[dict[str, Any]] = []
        while True:
            due = []
            if self._pending is not None and self._pending < t:
                due.append(self._pending)
            if self._next_due is not None and self._next_due < t:
                due.append(self._next_due)
            if not due:
                return made
            at = min(due)
            if self._pending == at:
                self._pending = None
            if self._next_due == at:
                self._next_due = at + self.every
            f = self._forecast(at)
            if f is not None:
                made.append(f)

    def flush(self) -> list[dict[str, Any]]:
        """The forecast of a significant event whose instant no later event has closed (at the end)."""
        if self._pending is None:
            return []
        at, self._pending = self._pending, None
        f = self._forecast(at)
        return [f] if f is not None else []

    def stale(self, at: float) -> list[str]:
        """Stations with no event for longer than the heartbeat before ``at`` (s)."""
        seen = self.tracker.last_seen
        return [s.name for s in self.spec.stations
                if at - seen.get(s.name, -math.inf) > self.heartbeat and self.tracker.events > 0]

    def _forecast(self, at: float) -> dict[str, Any] | None:
        snap = self.tracker.snapshot(at)
        try:
            f = forecast(self.spec, snap, self.horizon, self.replications, self.seed, self.orders, self.stale(at))
        except SpecError as e:  # the events gave a state the spec cannot hold (events missing?)
            self.warn(f"no forecast as of {format_duration(at)}: the state the events give does not fit the spec: "
                      + "; ".join(p.split(": ", 1)[-1] for p in e.problems[:3]))
            return None
        self.forecasts.append(f)
        self._awaiting.append(f)
        self.publish(f)
        return f

    def actual_output(self, start: float, end: float) -> int:
        """Good units the line finished in (start, end] by its events."""
        return sum(u for t, _, u in self._finishes if start < t <= end)


# --------------------------------------------------------------------------- scoring
def crps(ensemble: Iterable[float], y: float) -> float:
    """The continuous ranked probability score of an ensemble forecast for the outcome ``y``
    (units): E|X - y| - E|X - X'| / 2 over the ensemble's empirical law (Gneiting and Raftery
    2007, eq. 21); 0 for a sure and right forecast, in the outcome's units."""
    x = np.sort(np.asarray(list(ensemble), dtype=float))
    n = len(x)
    # E|X - X'| for the empirical law from the sorted sample: 2 Σ (2i - n - 1) x_i / n²
    spread = 2.0 * float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x)) / (n * n)
    return float(np.mean(np.abs(x - y))) - spread / 2


def pit(ensemble: Iterable[float], y: float, v: float) -> float:
    """The randomised probability integral transform of ``y`` under the ensemble's empirical law:
    ``F(y-) + v (F(y) - F(y-))`` with ``v`` uniform on [0, 1] (Czado, Gneiting and Held 2009), so
    that an outcome tied with ensemble members (integer counts) is placed among them at random.
    A calibrated forecast gives uniform PITs."""
    x = np.asarray(list(ensemble), dtype=float)
    lo = float(np.mean(x < y))
    return lo + v * (float(np.mean(x <= y)) - lo)


@dataclass
class Scores:
    """How the forecasts of one horizon fared: how often the outcome fell in the P10–P90 band
    (nominally 80 %) with its Wilson 95 % interval, the same share by the randomised PIT (an
    outcome on a band edge counted by where it falls among the tied members), and the mean CRPS."""

    horizon: float
    n: int
    coverage: float
    coverage_ci: tuple[float, float]
    pit_coverage: float
    pit_ci: tuple[float, float]
    crps: float
    below: float
    above: float

    def as_dict(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "forecasts": self.n, "coverage_p10_p90": self.coverage,
                "coverage_ci95": list(self.coverage_ci), "pit_coverage": self.pit_coverage,
                "pit_coverage_ci95": list(self.pit_ci), "nominal": 0.8, "below_p10": self.below,
                "above_p90": self.above, "crps_mean": self.crps}


def _wilson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    if n == 0:
        return (math.nan, math.nan)
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def score(forecasts: list[dict[str, Any]], outcomes: list[float], seed: int = 0) -> Scores:
    """Score forecasts of one horizon against their outcomes (good units); ``seed`` fixes the
    randomised PIT's draws."""
    n = len(forecasts)
    if n == 0:
        nan2 = (math.nan, math.nan)
        return Scores(math.nan, 0, math.nan, nan2, math.nan, nan2, math.nan, math.nan, math.nan)
    inside = sum(f["output"]["p10"] <= y <= f["output"]["p90"] for f, y in zip(forecasts, outcomes))
    below = float(np.mean([y < f["output"]["p10"] for f, y in zip(forecasts, outcomes)]))
    above = float(np.mean([y > f["output"]["p90"] for f, y in zip(forecasts, outcomes)]))
    v = np.random.default_rng(seed).random(n)
    u = [pit(f["ensemble"], y, float(vi)) for f, y, vi in zip(forecasts, outcomes, v)]
    k_pit = sum(0.1 <= x <= 0.9 for x in u)
    return Scores(horizon=forecasts[0]["horizon"], n=n, coverage=inside / n, coverage_ci=_wilson(int(inside), n),
                  pit_coverage=k_pit / n, pit_ci=_wilson(int(k_pit), n),
                  crps=float(np.mean([crps(f["ensemble"], y) for f, y in zip(forecasts, outcomes)])),
                  below=below, above=above)


def score_live(twin: "LiveTwin") -> Scores | None:
    """Score a live twin's forecasts whose horizon its events have passed (None: none has)."""
    done = [f for f in twin.forecasts if f["as_of"] + f["horizon"] <= twin.tracker.now]
    if not done:
        return None
    return score(done, [float(twin.actual_output(f["as_of"], f["as_of"] + f["horizon"])) for f in done])


def backtest(spec: Spec, events: Any, every: float, horizons: list[float], replications: int = 20,
             seed: int = 1) -> list[Scores]:
    """Forecast along a recorded log (a DataFrame in the event-log schema, seconds) every ``every``
    s for each horizon, and score each forecast whose horizon the log covers against the good units
    the log shows finished in it."""
    rows = [_plain(r) for r in (events.to_dict("records") if hasattr(events, "to_dict") else events)]
    end = max(r["timestamp"] for r in rows) if rows else 0.0
    out = []
    for h in horizons:
        twin = LiveTwin(spec, every, h, replications, seed)
        for r in rows:
            twin.event(r)
        done = [f for f in twin.forecasts if f["as_of"] + h <= end]
        outcomes = [float(twin.actual_output(f["as_of"], f["as_of"] + h)) for f in done]
        out.append(score(done, outcomes))
    return out


# --------------------------------------------------------------------------- messages
def parse_broker(url: str) -> tuple[str, int]:
    """``mqtt://HOST:PORT`` (port 1883 when left out) as (host, port); :class:`SpecError` otherwise."""
    u = urlparse(url)
    if u.scheme != "mqtt" or not u.hostname:
        raise SpecError([f"--broker: {url!r} is not mqtt://HOST:PORT"])
    try:
        port = u.port or 1883
    except ValueError:
        raise SpecError([f"--broker: {url!r} has no valid port"]) from None
    return u.hostname, port


class Clock:
    """Event timestamps as seconds of the line's clock: numbers as they are, ISO 8601 date-times as
    seconds after ``origin`` (default: the first ISO timestamp seen)."""

    def __init__(self, origin: datetime | None = None):
        self.origin = origin

    def seconds(self, v: Any) -> float:
        if isinstance(v, bool):
            raise EventError(f"timestamp {v!r} is neither seconds nor an ISO 8601 date-time")
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
            try:
                dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise EventError(f"timestamp {v!r} is neither seconds nor an ISO 8601 date-time") from None
            if dt.tzinfo is None:
                raise EventError(f"timestamp {v!r} has no time zone (write Z or +HH:MM)")
            if self.origin is None:
                self.origin = dt
            return (dt - self.origin).total_seconds()
        raise EventError(f"timestamp {v!r} is neither seconds nor an ISO 8601 date-time")


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    """A message's JSON object, or :class:`EventError` (``what``: how the message is named)."""
    try:
        msg = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise EventError(f"{what}not a JSON object ({e})") from None
    if not isinstance(msg, dict):
        raise EventError(f"{what}not a JSON object")
    return msg


def parse_event(payload: bytes, clock: Clock) -> dict[str, Any]:
    """One event message (a JSON object with the event-log columns) as the tracker reads it."""
    msg = _json_object(payload, "")
    unknown = sorted(set(msg) - set(COLUMNS))
    if unknown:
        raise EventError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                         f"(an event has: {', '.join(COLUMNS)})")
    if "timestamp" not in msg or "event" not in msg or "station" not in msg:
        raise EventError("an event needs timestamp, station and event")
    ev = {k: msg.get(k) for k in COLUMNS}
    ev["timestamp"] = clock.seconds(ev["timestamp"])
    for k in ("server", "lot", "qty"):
        v = ev[k]
        if isinstance(v, float) and v.is_integer():
            ev[k] = int(v)
        elif isinstance(v, str) and v.strip().lstrip("-").isdigit():
            ev[k] = int(v)
        elif v == "":
            ev[k] = None
    return ev


def parse_order(payload: bytes, clock: Clock) -> dict[str, Any]:
    """One order message ``{"id", "product", "qty", "due"}`` (``due``: seconds or ISO 8601)."""
    msg = _json_object(payload, "order: ")
    if "due" in msg:
        msg["due"] = clock.seconds(msg["due"])
    return msg


def _say(text: str) -> None:
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- MQTT
def _client(name: str) -> Any:
    try:
        import paho.mqtt.client as mqtt  # the live commands' own dependency (extra "live")
    except ImportError:
        raise SpecError(["twin live and twin replay need paho-mqtt 2: pip install 'twin[live]'"]) from None

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"twin-{name}-{threading.get_ident():x}-{time.time_ns() % 10**9}",
                    protocol=mqtt.MQTTv5)
    c.reconnect_delay_set(min_delay=1, max_delay=30)  # backoff while the broker is away
    return c


def _connect_properties() -> Any:
    """MQTT 5 CONNECT properties: a receive maximum of 65,535 messages in flight, so that the
    broker hands the twin everything it has at once. With MQTT 3.1.1 a broker keeps at most 20 in
    flight and queues the rest (mosquitto: 1,000 by default), then drops them: a twin busy with a
    forecast while a line replays fast would lose events."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.ReceiveMaximum = 65535
    return props


def run_live(twin: LiveTwin, broker: str, prefix: str, until_idle: float | None = None,
             forecasts_out: Any = None, on_state: Callable[[LiveTwin], None] | None = None) -> int:
    """Subscribe to ``prefix/events`` and ``prefix/orders``, fold and forecast, publish each forecast
    retained with QoS 1 on ``prefix/forecast``. Returns when no message has come for
    ``until_idle`` s of wall time (never, without it). Bad messages and a broker that is down or goes
    away are reported on stderr and the twin keeps running."""
    host, port = parse_broker(broker)
    inbox: "queue.Queue[tuple[str, bytes]]" = queue.Queue()
    status = {"connected": False, "ever": False, "closing": False, "fails": 0}
    c = _client("live")

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            _say(f"twin live: the broker at {host}:{port} refused the connection ({reason}); retrying")
            return
        status["connected"] = status["ever"] = True
        client.subscribe([(f"{prefix}/events", 1), (f"{prefix}/orders", 1)])

    def on_subscribe(client: Any, userdata: Any, mid: Any, reasons: Any, props: Any) -> None:
        # said once the broker has taken the subscription (SUBACK), not at CONNACK: a line that
        # starts publishing when it reads this loses nothing to the gap between the two
        bad = [str(r) for r in reasons or [] if getattr(r, "is_failure", False)]
        if bad:
            _say(f"twin live: the broker at {host}:{port} refused the subscription ({', '.join(bad)})")
            return
        _say(f"twin live: connected to {host}:{port}, listening on {prefix}/events and {prefix}/orders")

    def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if status["connected"] and not status["closing"]:
            _say(f"twin live: lost the broker at {host}:{port} ({reason}); reconnecting")
        status["connected"] = False
        status["fails"] = 0

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        inbox.put((msg.topic, msg.payload))

    def on_connect_fail(client: Any, userdata: Any) -> None:
        status["fails"] += 1
        if status["fails"] in (1, 2, 4, 8) or status["fails"] % 16 == 0:  # a line, not a flood
            _say(f"twin live: cannot reach the broker at {host}:{port} (attempt {status['fails']}); retrying with backoff")

    c.on_connect, c.on_disconnect, c.on_message = on_connect, on_disconnect, on_message
    c.on_subscribe = on_subscribe
    c.on_connect_fail = on_connect_fail
    clock = Clock()
    topic = f"{prefix}/forecast"

    def publish(f: dict[str, Any]) -> None:
        text = json.dumps(f, allow_nan=False)  # the whole message first: never half of one
        info = c.publish(topic, text, qos=1, retain=True)
        if forecasts_out is not None:
            forecasts_out.write(text + "\n")
            forecasts_out.flush()
        _say(f"twin live: forecast as of {format_duration(f['as_of'])}: {f['output']['p50']:.0f} good units "
             f"in the next {format_duration(f['horizon'])} (P10 {f['output']['p10']:.0f}, P90 {f['output']['p90']:.0f}), "
             f"bottleneck {f['bottleneck']}" + (f"; stale: {', '.join(f['stale'])}" if f["stale"] else ""))
        del info

    def outcome(o: dict[str, Any]) -> None:  # what then happened, beside the forecasts in the log
        if forecasts_out is not None:
            forecasts_out.write(json.dumps(o, allow_nan=False) + "\n")
            forecasts_out.flush()

    twin.publish = publish
    twin.outcome = outcome
    twin.warn = lambda text: _say("twin live: " + text)
    c.connect_async(host, port, keepalive=30, properties=_connect_properties())
    c.loop_start()
    last = time.monotonic()
    try:
        while True:
            try:
                topic_in, payload = inbox.get(timeout=0.2)
            except queue.Empty:
                if until_idle is not None and time.monotonic() - last > until_idle:
                    twin.flush()
                    if on_state is not None:
                        on_state(twin)
                    if not status["ever"]:
                        _say(f"twin live: no broker at {host}:{port} within {until_idle:g} s")
                        return 1
                    return 0
                continue
            last = time.monotonic()
            try:
                if topic_in.endswith("/orders"):
                    twin.order(parse_order(payload, clock), "order")
                else:
                    twin.event(parse_event(payload, clock))
            except (EventError, SpecError) as e:
                _say(f"twin live: {topic_in}: skipped a message: {e}")
            if on_state is not None:
                on_state(twin)
    finally:
        status["closing"] = True
        c.disconnect()
        c.loop_stop()


def replay(events: Any, broker: str, prefix: str, speed: float | None = None) -> int:
    """Publish a log's events (a DataFrame in the event-log schema, seconds) on ``prefix/events``
    with QoS 1, spaced by their timestamps divided by ``speed`` (None: as fast as the broker takes
    them). Returns the number of events published."""
    host, port = parse_broker(broker)
    c = _client("replay")
    up = threading.Event()
    c.on_connect = lambda client, userdata, flags, reason, props: up.set() if not getattr(reason, "is_failure", False) else None
    try:
        c.connect(host, port, keepalive=30)
    except OSError as e:
        raise SpecError([f"--broker: cannot reach {host}:{port} ({e.strerror or e})"]) from None
    c.loop_start()
    try:
        if not up.wait(10):
            raise SpecError([f"--broker: {host}:{port} did not accept the connection within 10 s"])
        rows = [_plain(r) for r in events.to_dict("records")]
        start_wall = time.monotonic()
        t0 = rows[0]["timestamp"] if rows else 0.0
        infos = []
        for r in rows:
            if speed:
                wait = (r["timestamp"] - t0) / speed - (time.monotonic() - start_wall)
                if wait > 0:
                    time.sleep(wait)
            msg = {k: v for k, v in r.items() if k in COLUMNS and v is not None}
            infos.append(c.publish(f"{prefix}/events", json.dumps(msg, allow_nan=False), qos=1))
        for info in infos:
            info.wait_for_publish(timeout=30)
        return len(rows)
    finally:
        c.loop_stop()
        c.disconnect()
