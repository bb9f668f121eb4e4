"""Running replications: one run of a spec, the replication seeds, and parallel jobs through an
executor (local processes or Dask), with a progress bar on a terminal."""

from __future__ import annotations

import math
import multiprocessing as mp
import re
import shutil
import signal
import sys
from typing import Any, Callable

import numpy as np
from tqdm import tqdm

from .units import WEEK
from .model import Model
from .snapshot import Snapshot
from .results import Results, build
from .shards import JobStore
from .spec import MAX_HORIZON, Spec, SpecError
from .watch import Watch

__all__ = ["run_once", "replication_seed", "check_run_times", "map_jobs", "progress_bar", "EXECUTORS"]


def replication_seed(seed: int, replication: int) -> int:
    """The seed of replication ``r``: independent streams per replication, the same for every factory."""
    return int(np.random.SeedSequence([seed, replication]).generate_state(1, dtype=np.uint64)[0] >> 1)


def run_once(spec: Spec, horizon: float, warmup: float, seed: int, *, trace: bool = False,
             replay: list[tuple[float, int, int]] | None = None, replay_lossy: bool = False,
             unit_sampling: bool = False, progress: Callable[[float], None] | None = None,
             state: Snapshot | None = None, watch: Watch | None = None) -> Results:
    """Build, run and tabulate one replication: the one way every command runs a spec.

    ``horizon``/``warmup`` in s; ``trace``, ``replay``, ``replay_lossy`` and ``unit_sampling`` as for
    :class:`~twin.model.Model`; ``progress(fraction)`` follows simulated time.
    ``state``: start from this snapshot (:mod:`twin.snapshot`) at its time ``T``; ``horizon`` and
    ``warmup`` then count from ``T`` (the run covers ``T`` to ``T + horizon``, KPIs from
    ``T + warmup``). ``watch``: record a replay's levels, trips and flows too (:mod:`twin.watch`;
    the results are the same). ``Results.record`` keeps the run's plain record."""
    check_run_times(horizon, warmup)
    t0 = state.time if state is not None else 0.0
    model = Model(spec, seed, t0 + horizon, unit_sampling=unit_sampling, trace=trace, replay=replay,
                  replay_lossy=replay_lossy, state=state, watch=watch)
    return build(model.run(t0 + horizon, t0 + warmup, progress=progress))


def check_run_times(horizon: float, warmup: float, source: str = "") -> None:
    """Refuse a horizon or warm-up (s) that cannot be simulated: not finite, not positive,
    beyond 20 years, or a warm-up not shorter than the horizon (:class:`SpecError`)."""
    where = f"{source}: " if source else ""
    if not (math.isfinite(horizon) and 0 < horizon <= MAX_HORIZON):
        raise SpecError([f"{where}horizon: must be > 0 and at most {MAX_HORIZON / WEEK:g} weeks "
                         f"(20 years), got {horizon:g} s"])
    if not (math.isfinite(warmup) and 0 <= warmup < horizon):
        raise SpecError([f"{where}warm-up: must be >= 0 and shorter than the horizon ({horizon:g} s), "
                         f"got {warmup:g} s"])



class progress_bar:
    """A progress bar with elapsed time and ETA on a terminal (tqdm, on stderr); nothing at all
    when disabled or when stderr is not a terminal (CI logs stay clean)."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.on = bool(enabled) and sys.stderr.isatty()
        self.n = 0
        self._total = total
        # a terminal that reports no size (a bare pseudo-terminal) gets a fixed width
        width = None if shutil.get_terminal_size((0, 0)).columns else 100
        # block characters only where the terminal takes UTF-8 (tqdm goes silent on an encoding error)
        plain = (getattr(sys.stderr, "encoding", "") or "").lower().replace("-", "") != "utf8"
        self._bar = tqdm(total=total, desc=label, unit="step", file=sys.stderr, leave=True, ncols=width,
                         nrows=None if width is None else 24, dynamic_ncols=width is None,
                         ascii=plain) if self.on else None

    def __enter__(self) -> "progress_bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()

    @property
    def total(self) -> int | None:
        """Steps the bar runs to (it can grow, e.g. when an optimisation knows its confirmation runs)."""
        return self._bar.total if self._bar is not None else self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = value
        if self._bar is not None:
            self._bar.total = value
            self._bar.refresh()

    def update(self, k: int = 1) -> None:
        if k > 0:
            self.n += k
            if self._bar is not None:
                self._bar.update(k)


def _progress(it, enabled: bool, label: str, total: int | None = None):
    """Yield from ``it`` with a progress bar of ``total`` items (see :class:`progress_bar`)."""
    items = it if total is not None else list(it)
    with progress_bar(total if total is not None else len(items), label, enabled) as bar:
        for x in items:
            yield x
            bar.update(1)


EXECUTORS = ("local", "dask")
SCHEDULER_TIMEOUT = "10s"  # a scheduler that does not answer by then is reported, not waited for


def map_jobs(fn: Any, arglist: list[tuple[Any, ...]], jobs: int = 1, executor: str = "local",
             scheduler: str | None = None, store: JobStore | None = None, stage: str = ""):
    """Run ``fn(*args)`` for every ``args`` of ``arglist``; yield ``(index, result)`` as each finishes.

    - ``executor="local"``: in this process when ``jobs == 1``, else a pool of ``jobs`` local processes;
    - ``executor="dask"``: a Dask distributed cluster at ``scheduler`` (``tcp://host:port``), or a
      ``LocalCluster`` of ``jobs`` single-threaded worker processes when no address is given
      (``pip install -e '.[dask]'``).

    Jobs are independent and deterministic given their arguments, so every executor
    gives the same results; only the completion order differs (callers sort).

    With a ``store`` (:class:`twin.shards.JobStore`), the jobs are ``stage`` of a sharded
    command: a shard runs and stores only its share (and yields only those), a merge yields
    every job's stored result and runs none.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    if store is not None:
        todo, known, keys = store.plan(stage, fn, arglist)
        yield from known.items()
        if not todo:  # a merge (or a finished shard) needs no executor: a cluster long gone is fine
            return
        for k, r in map_jobs(fn, [arglist[i] for i in todo], jobs, executor, scheduler):
            store.put(stage, todo[k], keys[todo[k]], r)
            yield todo[k], r
        return
    if executor == "dask":
        yield from _map_dask(fn, arglist, jobs, scheduler)
        return
    if jobs <= 1 or len(arglist) <= 1:
        for i, a in enumerate(arglist):
            yield i, fn(*a)
        return

    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
    # the workers ignore Ctrl-C: the parent catches it and terminates them at once, so an
    # interrupted run stops now instead of finishing (and throwing away) the jobs in hand
    try:
        pool = ctx.Pool(processes=min(jobs, len(arglist)), initializer=_ignore_sigint)
    except OSError as e:
        # no room for the pool's semaphores (a full /dev/shm, a file-size limit) or no
        # processes left: every job's seed is its own, so running them here gives the same results
        sys.stderr.write(f"note: cannot start {jobs} worker processes ({e.strerror or e}); running the jobs in "
                         "this process\n")
        for i, a in enumerate(arglist):
            yield i, fn(*a)
        return
    try:
        yield from pool.imap_unordered(_indexed_call, [(fn, i, a) for i, a in enumerate(arglist)])
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _ignore_sigint() -> None:
    # a worker leaves Ctrl-C to the parent, and dies at once of the SIGTERM the parent's
    # pool.terminate() sends (the parent's handler, inherited by fork, would raise in a job)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _indexed_call(job: tuple[Any, int, tuple[Any, ...]]) -> tuple[int, Any]:
    fn, i, args = job
    return i, fn(*args)


def _map_dask(fn: Any, arglist: list[tuple[Any, ...]], jobs: int, scheduler: str | None):
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ImportError("the dask executor needs dask.distributed: pip install -e '.[dask]'") from None
    cluster = None
    if scheduler is not None:
        if not re.fullmatch(r"(tcp|tls|ucx|ws|wss)://[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", scheduler):
            raise SpecError([f"--scheduler: {scheduler!r} is not a scheduler address like tcp://HOST:PORT"])
        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as e:
            raise SpecError([f"--scheduler: cannot reach {scheduler} within {SCHEDULER_TIMEOUT} "
                             f"({str(e).splitlines()[0][:120]})"]) from None
    else:
        cluster = LocalCluster(n_workers=max(1, jobs), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        futs = [client.submit(fn, *a, pure=False) for a in arglist]
        index = {f.key: i for i, f in enumerate(futs)}
        for f in as_completed(futs):
            yield index[f.key], f.result()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
