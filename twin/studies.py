"""Shared optimisation studies: several ``twin optimize`` processes, on one host or many, run
the trials of one optuna study kept in a journal file (``journal:PATH``, one host or a shared
disk) or a database (``postgresql://…``, ``sqlite:///…``), and exactly one of them confirms.

What makes it one study and not several that share a name: the process that creates it records
the problem (space, objectives, constraints, horizon, warm-up, seeds, replications, scenarios,
the spec's hash) before any trial can be asked, and every process that joins must pose the same
problem. The trial budget counts the whole study's trials, every process's. The confirmation is
claimed by creating a second study, ``NAME.confirmation``, which the storage lets exactly one
process create; the claimer stores the confirmed result there, and any later process (a rerun
of the same command) reads it back instead of confirming again."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
from optuna.exceptions import DuplicatedStudyError
from optuna.storages.journal import JournalFileBackend, JournalStorage
from sqlalchemy.engine import make_url

from .io import pid_alive
from .spec import SpecError, file_kind

JOURNAL = "journal:"
RDB_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgresql+psycopg", "sqlite", "mysql", "mysql+pymysql")
CONNECT_TIMEOUT = 10  # s: a database that does not answer by then is reported, not waited for
SETUP_WAIT = 60.0  # s: how long a joining process waits for the creator to record the problem
PROBLEM, ROW, BY, CLAIM, RESULT = "twin.problem", "twin.row", "twin.by", "twin.claimed_by", "twin.result"


def me() -> str:
    """This process, as the study records who ran a trial: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def shown(url: str) -> str:
    """The URL as messages show it: a database password is hidden."""
    if url.startswith(JOURNAL) or "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL sqlalchemy cannot parse is reported by open_storage; show its scheme only
        return url.split("://", 1)[0] + "://…"


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The optuna storage of ``url`` (``journal:PATH`` or an RDB URL), checked before anything
    runs: a journal path must be a regular file (or not exist yet) in an existing folder and, when
    it has content, be an optuna journal; a database must answer within ``CONNECT_TIMEOUT``."""
    if url.startswith(JOURNAL):
        return _journal(url)
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in RDB_SCHEMES:
        raise SpecError([f"--storage: {shown(url)!r} is neither journal:PATH nor a database URL "
                         f"({', '.join(s + '://…' for s in RDB_SCHEMES[:1] + RDB_SCHEMES[3:4])})"])
    connect_args = {"connect_timeout": CONNECT_TIMEOUT} if scheme.startswith(("postgresql", "mysql")) else {}
    try:
        for attempt in range(5):
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": connect_args,
                                                                      "pool_pre_ping": True})
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # processes that start together on a new database race to create optuna's tables;
                # the loser's CREATE fails on the winner's, and its next try finds them made
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("unreachable")
    except ImportError as e:
        raise SpecError([f"--storage {shown(url)}: the database driver is missing ({e}); for PostgreSQL: "
                         "pip install -e '.[postgres]' (psycopg)"]) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError, OSError) as e:
        first = str(getattr(e, "orig", None) or e).strip().splitlines()[0][:160]
        raise SpecError([f"--storage {shown(url)}: cannot be reached or used ({first})"]) from None


def _journal(url: str) -> optuna.storages.BaseStorage:
    text = url[len(JOURNAL):]
    if not text:
        raise SpecError(["--storage: journal: needs a file path, e.g. journal:study.log"])
    path = Path(text).expanduser()
    if path.exists() and not path.is_file():
        raise SpecError([f"--storage {url}: {path} is {file_kind(path.stat().st_mode)}; give a journal file"])
    if not path.parent.is_dir():
        raise SpecError([f"--storage {url}: the folder {path.parent} does not exist"])
    if path.exists() and path.stat().st_size:
        with path.open("rb") as f:
            first = f.readline(1 << 20)
        try:
            ok = isinstance(json.loads(first), dict) and "op_code" in json.loads(first)
        except ValueError:
            ok = False
        if not ok:
            raise SpecError([f"--storage {url}: {path} is not an optuna journal (its first line is not a "
                             "journal record); give a new file or the journal of a study"])
    try:
        return JournalStorage(JournalFileBackend(str(path)))
    except OSError as e:
        raise SpecError([f"--storage {url}: cannot use {path} ({e.strerror or e})"]) from None


def open_study(storage: optuna.storages.BaseStorage, url: str, name: str, directions: list[str],
               sampler: optuna.samplers.BaseSampler, problem: dict[str, Any],
               queue: list[dict[str, Any]]) -> optuna.Study:
    """Create the study ``name`` (enqueue ``queue``, then record ``problem``) or join it: a
    joining process waits up to ``SETUP_WAIT`` for the record and must pose the same problem."""
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions,  # type: ignore[arg-type]
                                    sampler=sampler)
    except DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    else:
        for q in queue:
            study.enqueue_trial(q)
        study.set_user_attr(PROBLEM, problem)
        return study
    end = time.monotonic() + SETUP_WAIT
    while PROBLEM not in study.user_attrs:
        if time.monotonic() > end:
            raise SpecError([f"--study {name}: the study in {shown(url)} has no twin problem record (it was not "
                             f"made by twin optimize, or its maker stopped while setting it up); use another name"])
        time.sleep(0.5)
    theirs = study.user_attrs[PROBLEM]
    differ = sorted(k for k in set(theirs) | set(problem) if theirs.get(k) != problem.get(k))
    if differ:
        raise SpecError([f"--study {name}: the study in {shown(url)} was made for another problem (it differs in "
                         f"{', '.join(differ)}); use another --study name, or the same options"])
    return study


def counted(study: optuna.Study) -> int:
    """Trials that use the study's budget: finished with a twin row, or running (in any process;
    a process that died mid-trial leaves its trial running, which only ends the study sooner)."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.RUNNING or ROW in t.user_attrs:
            n += 1
    return n


def rank(study: optuna.Study, trial: optuna.Trial) -> int:
    """Where ``trial`` (just asked) falls among the study's budget-using trials, by trial number."""
    return sum(1 for t in study.get_trials(deepcopy=False) if t.number <= trial.number and (
        t.number == trial.number or t.state == optuna.trial.TrialState.RUNNING or ROW in t.user_attrs))


def rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Every finished trial's row, by trial number (every process's)."""
    done = [t for t in study.get_trials(deepcopy=False) if ROW in t.user_attrs and t.state.is_finished()]
    return [dict(t.user_attrs[ROW]) for t in sorted(done, key=lambda t: t.number)]


def by_process(study: optuna.Study) -> dict[str, int]:
    """How many of the study's finished trials each process ran."""
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if ROW in t.user_attrs and BY in t.user_attrs:
            out[t.user_attrs[BY]] = out.get(t.user_attrs[BY], 0) + 1
    return dict(sorted(out.items()))


def wait_for_others(study: optuna.Study, poll: float = 0.5) -> None:
    """Wait for trials other processes are still running, for at most three times the longest
    trial so far (and a minute): a process that died leaves a trial running for ever."""
    spans = [(t.datetime_complete - t.datetime_start).total_seconds() for t in study.get_trials(deepcopy=False)
             if t.state.is_finished() and t.datetime_start and t.datetime_complete]
    end = time.monotonic() + 60.0 + 3 * max(spans, default=0.0)
    while time.monotonic() < end:
        if not any(t.state == optuna.trial.TrialState.RUNNING for t in study.get_trials(deepcopy=False)):
            return
        time.sleep(poll)


class ConfirmedElsewhere(Exception):
    """Another process claimed the confirmation and has not stored its result yet."""

    def __init__(self, name: str, trials: int, mine: int, by: str):
        self.name, self.trials, self.mine, self.by = name, trials, mine, by
        super().__init__(f"study {name}: its {trials} trials are done ({mine} of them in this process); "
                         f"{by} is confirming the best designs: run the same command again once it has "
                         "finished to write the report from the stored result")


def _claim_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    return optuna.load_study(study_name=f"{name}.confirmation", storage=storage)


def claim(storage: optuna.storages.BaseStorage, name: str) -> tuple[bool, dict[str, Any] | None, str]:
    """Try to claim the confirmation of study ``name``: ``(claimed, stored result or None, who
    holds the claim)``. A claim left by a process of this host that is no longer alive is taken
    over (it died confirming)."""
    try:
        c = optuna.create_study(storage=storage, study_name=f"{name}.confirmation")
    except DuplicatedStudyError:
        c = _claim_study(storage, name)
        if RESULT in c.user_attrs:
            return False, json.loads(c.user_attrs[RESULT]), c.user_attrs.get(CLAIM, "?")
        holder = c.user_attrs.get(CLAIM, "another process")
        host, _, pid = str(holder).rpartition(":")
        if host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid)):
            c.set_user_attr(CLAIM, me())
            return True, None, me()
        return False, None, holder
    c.set_user_attr(CLAIM, me())
    c.set_user_attr("twin.claimed_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    return True, None, me()


def store_result(storage: optuna.storages.BaseStorage, name: str, result: dict[str, Any]) -> None:
    """Keep the confirmed result with the claim (plain JSON: NaN stays NaN), for later readers."""
    body = {k: v for k, v in result.items() if k != "study"}
    _claim_study(storage, name).set_user_attr(RESULT, json.dumps(body, allow_nan=True))
