"""Start a model from a snapshot of its line, and take a snapshot of a running model.

:func:`restore` puts the snapshot's lots in their buffers and servers and gives every server
what it does first: the remaining job, changeover, repair or maintenance, each drawn from its
law given the time it has already lasted (:func:`twin.dists.residual`), and a failure clock of
the machine's age. The draws come from one named stream per station (``state:<station>``), so
the other streams run exactly as in a run started empty. :func:`capture` is the inverse: the
state of a model at its current time, as a :class:`~twin.snapshot.Snapshot`.

Not carried (and refused by :func:`twin.snapshot.problems`): order books, vehicles, batches,
component stock, wear paths. Minor stops and speed losses of a job in hand are drawn afresh for
the work left; a repair that waited for a technician counts the wait as repair time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from . import snapshot as snapmod
from .dists import residual
from .flow import Lot
from .snapshot import BufferState, LotState, ServerState, Snapshot, SnapshotError
from .state import State
from .station import Resume

if TYPE_CHECKING:
    from .model import Model

_BUSY, _SETUP, _DOWN, _MAINT = State.BUSY.key, State.SETUP.key, State.DOWN.key, State.MAINTENANCE.key


def _lot(model: "Model", ls: LotState, station: str, t: float) -> Lot:
    """A runtime lot for ``ls``, at ``station`` on its route, recorded as released (before ``t``)."""
    p = model.product_names.index(ls.product)
    route_names = model.route_names[p]
    released = t if ls.released is None else ls.released
    # the record numbers lots densely in release order; the line's own numbers are kept aside
    lot_id = model._next_id
    model._next_id += 1
    model.plant_lots.append(ls.id)
    lot = Lot(lot_id, p, ls.qty, model.routes[p], released)
    lot.step = ls.step if ls.step is not None else route_names.index(station)
    model.rec.releases.append((lot_id, p, ls.qty, released))
    model.wip[p] += ls.qty
    return lot


def restore(model: "Model", snap: Snapshot, source: str = "<snapshot>") -> None:
    """Put ``model`` (built, not yet run, its clock at ``snap.time``) in the snapshot's state."""
    errors = snapmod.problems(snap, model.spec, source)
    if errors:
        raise SnapshotError(errors)
    t = model.env.now
    by_server = {(s.station, s.server): s for s in snap.servers}
    for name, st in model.stations.items():
        spec = st.spec
        rng = None
        for srv in st.servers:
            ss = by_server.get((name, srv.index))
            if ss is None:
                continue
            if rng is None:
                rng = model.streams.get(f"state:{name}")
            if ss.age is not None:
                if ss.state == _DOWN and st.reliability.operating_basis:
                    srv.life0, srv.ttf_left = ss.age, 0.0  # it failed at this age: the repair renews it
                else:
                    st.reliability.resume_life(srv, ss.age, rng)
            if ss.last_product is not None:
                srv.last_product = model.product_names.index(ss.last_product)
            lot = _lot(model, ss.lot, name, t) if ss.lot is not None else None
            state = State[ss.state.upper()]
            if lot is None and state not in (State.DOWN, State.MAINTENANCE):
                continue  # idle (or off shift with nothing in hand): the loop starts as usual
            job = 0.0
            setup = 0.0
            worked = 0.0
            stop = 0.0
            if lot is not None and state != State.BLOCKED:
                dist = spec.process_time_by_product.get(ss.lot.product, spec.process_time)  # type: ignore[union-attr]
                worked = ss.job_elapsed if ss.job_elapsed is not None else (ss.since if state == State.BUSY else 0.0)
                job = residual(dist, worked * srv.lane.speed, rng, lot.qty) if dist is not None else 0.0
                if state == State.SETUP:
                    last = srv.last_product
                    d = spec.setup.matrix.get(model.product_names[last], {}).get(ss.lot.product) if last is not None else None  # type: ignore[union-attr]
                    d = d if d is not None else spec.setup.default  # type: ignore[union-attr]
                    setup = residual(d, ss.since, rng)
                    job = residual(dist, 0.0, rng, lot.qty) if dist is not None else 0.0
                if st.pool is not None:  # a job under way holds its crew
                    if not st.pool.try_get(st.crew):
                        raise SnapshotError([f"{source}: servers: more servers of {name} hold work than "
                                             f"pool {spec.operators} has operators for"])
            if state == State.DOWN:
                stop = residual(spec.failures.ttr, ss.since, rng)  # type: ignore[union-attr]
            elif state == State.MAINTENANCE:
                stop = residual(spec.maintenance.duration, ss.since, rng)  # type: ignore[union-attr]
            srv.resume = Resume(int(state), lot, job, stop, setup, worked)
    for b in snap.buffers:
        st = model.stations[b.station]
        buf = st.lanes[b.lane].buffer
        for ls in b.lots:
            buf.items.append(_lot(model, ls, b.station, t))
    if model.plant_lots:  # lots released from now on continue the line's numbering
        model.plant_shift = max(model.plant_lots) + 1 - len(model.plant_lots)


def plant_id(model: "Model", lot_id: int) -> int:
    """The line's own number of the model's lot ``lot_id`` (the same unless started from a snapshot)."""
    n = len(model.plant_lots)
    return model.plant_lots[lot_id] if lot_id < n else lot_id + model.plant_shift


def capture(model: "Model") -> Snapshot:
    """The state of ``model`` now (its clock): what :func:`restore` starts from.

    ``since`` counts from the server's last recorded state change; ``job_elapsed`` is the busy
    time since the job in hand began; ``age`` the machine's age on its failure clock."""
    now = model.env.now
    per: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for t, sid, state in model.rec.states:
        per[sid].append((t, state))
    servers: list[ServerState] = []
    names = model.product_names
    buffers: list[BufferState] = []
    for name, st in model.stations.items():
        for srv in st.servers:
            hist = per.get(srv.sid, [])
            state = State(hist[-1][1]) if hist else State.IDLE
            last_change = hist[-1][0] if hist else now
            lot = srv.lot
            w = srv.waiting
            if w is not None and w.triggered:  # a failure struck during a wait, and the wait is over
                lot = w.value if isinstance(w.value, Lot) else None  # a lot arrived, or the blocked one left
            job_elapsed = None
            if lot is not None and srv.t_job >= 0.0 and state not in (State.BLOCKED, State.SETUP):
                job_elapsed = _busy_since(hist, srv.t_job, now)
                if srv.carried[0] == srv.t_job:  # begun before a state start
                    job_elapsed += srv.carried[1]
            age = None
            rel = st.reliability
            if rel.operating_basis:
                age = srv.life0 - srv.ttf_left
                if state == State.DOWN:  # it failed at the end of its life (the clock is not wound down then)
                    age = srv.life0
                elif state == State.BUSY:  # the chunk of work under way has aged it too
                    age += (now - max(srv.t_job, last_change)) * srv.lane.wear
            elif rel.calendar_basis:
                age = now - srv.renewed
            servers.append(ServerState(
                station=name, server=srv.index, state=state.key, since=now - last_change,  # type: ignore[arg-type]
                lot=_lot_state(model, lot, held_blocked=state == State.BLOCKED and st.flow_extras,
                               step_back=state == State.BLOCKED and not st.flow_extras) if lot is not None else None,
                job_elapsed=job_elapsed, age=age,
                last_product=names[srv.last_product] if srv.last_product is not None else None))
        for ln in st.lanes:
            lots = [_lot_state(model, q) for q in ln.buffer.items]
            if lots:
                buffers.append(BufferState(station=name, lane=ln.index, lots=lots))
    return Snapshot(time=now, spec=model.spec.name, servers=servers, buffers=buffers)


def _lot_state(model: "Model", lot: Any, held_blocked: bool = False, step_back: bool = False) -> LotState:
    """``lot`` as a snapshot has it. Its ``step`` is the station it is at: a blocked server's lot has
    been moved on to the next step already (``step_back``), or, where detours and retests decide,
    gets no step (the station's first visit; its destination is drawn again after a restart)."""
    step = None if held_blocked else (lot.step - 1 if step_back else lot.step)
    return LotState(id=plant_id(model, lot.id), product=model.product_names[lot.product], qty=lot.qty,
                    released=lot.t_release, step=step)


def _busy_since(hist: list[tuple[float, int]], t0: float, now: float) -> float:
    """Seconds in state busy between ``t0`` and ``now`` by a server's state records."""
    busy = int(State.BUSY)
    total = 0.0
    cur, cur_t = None, t0
    for t, s in hist:
        if t <= t0:
            cur = s
            continue
        if cur == busy:
            total += t - cur_t
        cur, cur_t = s, t
    if cur == busy:
        total += now - cur_t
    return total
