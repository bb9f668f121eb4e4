"""Shards: a deterministic 1/N of a command's jobs, run anywhere, merged into the report of the whole.

``twin compare|sweep|ablate ... --shard I/N --out DIR`` runs the jobs whose index in each stage
(the compare grid, its candidate designs, its uncertainty worlds; a sweep's runs; an ablation's
runs) is I modulo N, and stores each result in ``DIR/jobs/`` as it finishes, beside
``DIR/shard.json`` (the command, the shard, the jobs of each stage). ``twin merge DIR... --out OUT``
checks that the shards are the N parts of one command, then runs that command with every job's
result taken from the shards instead of simulated, so its files are the unsharded run's files
byte for byte (a job's seed is its global replication's, whichever shard ran it).

Each stored result carries the key of its job: a hash of the job's function and arguments,
with input files named by their content, not their path (a cluster's hosts may hold the
checkout in different places). A merge whose command would run another job there (an edited
spec or scenario, another twin) refuses, naming the job.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .limits import MAX_SHARDS
from .io import atomic_write_text, remove_stale_temporaries
from .spec import MAX_SPEC_BYTES, SpecError, read_regular_file

__all__ = ["JobStore", "open_shard", "load_shards", "strip_options", "job_key", "share_of", "SHARDABLE"]

SHARDABLE = ("compare", "sweep", "ablate")
"""The commands that take ``--shard``."""

MANIFEST = "shard.json"
_RUN_ONLY = {"--jobs", "--executor", "--scheduler"}
"""Options that change how jobs run, never their results: shards may differ in them."""
_RUN_ONLY_FLAGS = {"-q", "--quiet", "-v", "--verbose", "--resume"}
_MAX_RESULT_BYTES = 64 * MAX_SPEC_BYTES


def share_of(store: JobStore | None, n: int) -> int:
    """How many of a stage's ``n`` jobs this process runs (or takes from the shards)."""
    return len(range(store.shard, n, store.count)) if store is not None and store.sharding else n


def _canon(x: Any, files: dict[str, str]) -> Any:
    """A JSON-able form of a job's arguments that names an input file by its content."""
    if isinstance(x, dict):
        return {str(k): _canon(v, files) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_canon(v, files) for v in x]
    if hasattr(x, "model_dump"):
        return _canon(x.model_dump(mode="json"), files)
    if callable(x):
        return f"{getattr(x, '__module__', '')}.{getattr(x, '__qualname__', repr(x))}"
    if isinstance(x, os.PathLike):
        x = os.fspath(x)
    if isinstance(x, str) and os.path.isabs(x) and os.path.isfile(x):
        if x not in files:
            files[x] = "file:" + hashlib.sha256(read_regular_file(Path(x), MAX_SPEC_BYTES, "an input file")).hexdigest()
        return files[x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)
    return x


def job_key(fn: Callable[..., Any], args: tuple[Any, ...], files: dict[str, str] | None = None) -> str:
    """The identity of a job: a hash of its function and arguments (input files by content)."""
    canon = _canon([fn, list(args)], {} if files is None else files)
    return hashlib.sha256(json.dumps(canon, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def _plain(x: Any) -> Any:
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"a job result holds {type(x).__name__}, which a shard cannot store")


def _result_text(key: str, result: Any) -> str:
    # NaN and infinity kept as such (JSON's extension literals) and the keys in their order: a
    # merged job must be what the unsharded run computed (a frame's columns follow the order)
    return json.dumps({"key": key, "result": result}, default=_plain, allow_nan=True) + "\n"


def strip_options(argv: list[str], drop: set[str], flags: set[str] | None = None) -> list[str]:
    """``argv`` without the options of ``drop`` (each with its value, ``--opt V`` or ``--opt=V``)
    and the bare ``flags``. Options are matched by their full names (the command line parser
    writes abbreviations out first: :func:`twin.cli.canonical_argv`)."""
    out: list[str] = []
    skip = False
    for k, t in enumerate(argv):
        if skip:
            skip = False
            continue
        if t == "--":
            return out + argv[k:]
        name = t.split("=", 1)[0]
        if flags and name in flags:
            continue
        if name in drop:
            skip = "=" not in t
            continue
        out.append(t)
    return out


def _comparable(command: list[str]) -> list[str]:
    return strip_options(command, _RUN_ONLY, _RUN_ONLY_FLAGS)


@dataclass
class JobStore:
    """Where a sharded command keeps its jobs' results (``shard``/``count`` set: this process runs
    its share and stores each result) or takes them from (``merging``: every result preloaded
    from the shards; nothing is simulated, a job no shard holds is an error)."""

    folder: Path | None = None
    shard: int = 0
    count: int = 1
    command: list[str] = field(default_factory=list)
    merging: bool = False
    results: dict[tuple[str, int], tuple[str, Any]] = field(default_factory=dict)
    sources: dict[tuple[str, int], Path] = field(default_factory=dict)
    stages: dict[str, dict[str, int]] = field(default_factory=dict)
    _files: dict[str, str] = field(default_factory=dict)

    @property
    def sharding(self) -> bool:
        """True in a shard's run: the command stops after its jobs (no report of a part)."""
        return not self.merging

    def plan(self, stage: str, fn: Callable[..., Any], arglist: list[tuple[Any, ...]]
             ) -> tuple[list[int], dict[int, Any], list[str]]:
        """For the jobs ``arglist`` of ``stage``: the indices to run here, the results known
        already (index → result) and every job's key."""
        if stage in self.stages:
            raise ValueError(f"stage {stage!r} planned twice in one command")
        keys = [job_key(fn, a, self._files) for a in arglist]
        if self.merging:
            missing = [i for i in range(len(keys)) if (stage, i) not in self.results]
            if missing:
                raise SpecError([f"twin merge: the shards hold {len(keys) - len(missing)} of the {len(keys)} "
                                 f"{stage} jobs (none holds job {missing[0]}); the shards do not add up to the command"])
            other = [i for i, k in enumerate(keys) if self.results[(stage, i)][0] != k]
            if other:
                i = other[0]
                raise SpecError([f"{self.sources[(stage, i)]}: {stage} job {i} was run with other input: an input "
                                 f"file (a spec, scenario, designs or uncertainty file) or twin changed since the "
                                 f"shards ran ({len(other)} of {len(keys)} jobs differ); run the shards again"])
            if len(self.results) and any(s == stage and i >= len(keys) for s, i in self.results):
                raise SpecError([f"twin merge: the shards hold more {stage} jobs than the command has "
                                 f"({len(keys)}); they are not this command's shards"])
            self.stages[stage] = {"jobs": len(keys), "mine": len(keys)}
            return [], {i: self.results[(stage, i)][1] for i in range(len(keys))}, keys
        if not self.stages:  # the first stage: the inputs are checked, the folder is this shard's from now
            self.write_manifest(complete=False)
        own = [i for i in range(len(keys)) if i % self.count == self.shard]
        known: dict[int, Any] = {}
        for i in own:
            r = self._stored(stage, i, keys[i])
            if r is not None:
                known[i] = r[0]
        self.stages[stage] = {"jobs": len(keys), "mine": len(own), "reused": len(known)}
        return [i for i in own if i not in known], known, keys

    def _path(self, stage: str, i: int) -> Path:
        assert self.folder is not None
        return self.folder / "jobs" / f"{stage}-{i:06d}.json"

    def _stored(self, stage: str, i: int, key: str) -> tuple[Any] | None:
        p = self._path(stage, i)
        if not p.exists():
            return None
        try:
            d = json.loads(read_regular_file(p, _MAX_RESULT_BYTES, "a shard's job"))
        except (ValueError, SpecError):
            return None  # damaged (a kill mid-write cannot do it; a hand can): run it again
        if not isinstance(d, dict) or d.get("key") != key or "result" not in d:
            return None
        return (d["result"],)

    def put(self, stage: str, i: int, key: str, result: Any) -> None:
        """Store job ``i`` of ``stage`` (atomically: a killed shard leaves whole files only)."""
        atomic_write_text(self._path(stage, i), _result_text(key, result))

    def write_manifest(self, complete: bool) -> None:
        """``shard.json``: the command, this shard and, once ``complete``, the jobs of each stage."""
        assert self.folder is not None
        atomic_write_text(self.folder / MANIFEST, json.dumps(
            {"twin_version": __version__, "command": self.command, "shard": self.shard, "of": self.count,
             "complete": complete, "stages": self.stages}, indent=2, sort_keys=True) + "\n")


def _read_manifest(folder: Path) -> dict[str, Any]:
    p = folder / MANIFEST
    try:
        mode = os.stat(folder).st_mode
    except OSError as e:
        raise SpecError([f"{folder}: cannot read it ({e.strerror or e})"]) from None
    if not stat.S_ISDIR(mode):
        raise SpecError([f"{folder}: not a folder; a shard is the --out folder of a command run with --shard I/N"])
    if not p.exists():
        raise SpecError([f"{folder}: not a shard folder (no {MANIFEST}); a shard is the --out folder of a command "
                         "run with --shard I/N"])
    try:
        m = json.loads(read_regular_file(p, MAX_SPEC_BYTES, "a shard manifest"))
    except ValueError:
        raise SpecError([f"{p}: damaged (not JSON)"]) from None
    ok = (isinstance(m, dict) and isinstance(m.get("command"), list) and all(isinstance(a, str) for a in m["command"])
          and isinstance(m.get("shard"), int) and isinstance(m.get("of"), int) and isinstance(m.get("stages"), dict)
          and isinstance(m.get("complete"), bool) and m["command"] and m["command"][0] in SHARDABLE
          and 0 <= m["shard"] < m["of"] <= MAX_SHARDS)
    if not ok:
        raise SpecError([f"{p}: damaged (not a shard manifest of twin)"])
    return m


def open_shard(folder: Path, shard: tuple[int, int], argv: list[str]) -> JobStore:
    """The store of shard ``shard`` of the command ``argv`` in ``folder``; a folder holding another
    command's (or another shard's) jobs is refused, the same one's are kept (a shard run again
    after a kill runs only what is missing)."""
    command = strip_options(argv, {"--shard", "--out"})
    i, n = shard
    if (folder / MANIFEST).exists():
        m = _read_manifest(folder)
        if (m["shard"], m["of"]) != (i, n) or _comparable(m["command"]) != _comparable(command):
            raise SpecError([f"--out: {folder} holds shard {m['shard']}/{m['of']} of "
                             f"'twin {' '.join(m['command'])}'; give each shard its own folder"])
        if m["twin_version"] != __version__:
            raise SpecError([f"--out: {folder} holds jobs of twin {m['twin_version']} (this is {__version__}); "
                             "give the shard a new folder"])
    store = JobStore(folder=folder, shard=i, count=n, command=command)
    if (folder / "jobs").is_dir():
        remove_stale_temporaries(folder / "jobs")
    return store


def load_shards(folders: list[Path]) -> JobStore:
    """Read and cross-check the shard folders of one command (all problems at once): the same
    command and twin, every shard 0 … N − 1 once, each finished; their results preloaded."""
    problems: list[str] = []
    manifests: list[tuple[Path, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for f in folders:
        key = str(f.resolve())
        if key in seen:
            problems.append(f"{f}: given twice")
            continue
        seen[key] = f
        try:
            manifests.append((f, _read_manifest(f)))
        except SpecError as e:
            problems += e.problems
    if problems:
        raise SpecError(problems)
    if not manifests:
        raise SpecError(["twin merge: no shard folders given"])
    first_dir, first = manifests[0]
    for f, m in manifests:
        if m["twin_version"] != __version__:
            problems.append(f"{f}: its jobs were run by twin {m['twin_version']}; this is twin {__version__}, whose "
                            "report of them could differ: run the shards with this twin")
        if _comparable(m["command"]) != _comparable(first["command"]):
            problems.append(f"{f}: a shard of another command ('twin {' '.join(m['command'])}', not "
                            f"'twin {' '.join(first['command'])}' as {first_dir})")
        elif m["of"] != first["of"]:
            problems.append(f"{f}: shard {m['shard']}/{m['of']}, but {first_dir} is one of {first['of']}")
        elif not m["complete"]:
            problems.append(f"{f}: shard {m['shard']}/{m['of']} did not finish; run it again (it keeps its "
                            "finished jobs)")
    if problems:
        raise SpecError(problems)
    n = first["of"]
    by_index: dict[int, Path] = {}
    for f, m in manifests:
        if m["shard"] in by_index:
            problems.append(f"{f}: shard {m['shard']}/{n} again ({by_index[m['shard']]} is it too)")
        by_index[m["shard"]] = f
    missing = [i for i in range(n) if i not in by_index]
    if missing:
        shown = ", ".join(f"{i}/{n}" for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        problems.append(f"twin merge: the shards do not add up: {len(missing)} of {n} missing ({shown})")
    if problems:
        raise SpecError(problems)
    store = JobStore(command=first["command"], merging=True, count=n)
    for f, m in manifests:
        jobs = f / "jobs"
        names = sorted(os.listdir(jobs)) if jobs.is_dir() else []
        for name in names:
            mm = re.fullmatch(r"([a-z]+)-(\d{6,})\.json", name)
            if not mm:
                continue
            stage, i = mm.group(1), int(mm.group(2))
            p = jobs / name
            if i % n != m["shard"]:
                problems.append(f"{p}: job {i} is not shard {m['shard']}/{n}'s")
                continue
            try:
                d = json.loads(read_regular_file(p, _MAX_RESULT_BYTES, "a shard's job"))
                if not (isinstance(d, dict) and isinstance(d.get("key"), str) and "result" in d):
                    raise ValueError
            except (ValueError, SpecError):
                problems.append(f"{p}: damaged (not a stored job); run shard {m['shard']}/{n} again")
                continue
            store.results[(stage, i)] = (d["key"], d["result"])
            store.sources[(stage, i)] = p
    held = Counter((s, i % n) for s, i in store.results)  # once: a loop per shard would be quadratic
    for f, m in manifests:
        for stage, counts in m["stages"].items():
            have = held[(stage, m["shard"])]
            if isinstance(counts, dict) and isinstance(counts.get("mine"), int) and have < counts["mine"]:
                problems.append(f"{f}: holds {have} of the {counts['mine']} {stage} jobs it ran; "
                                f"run shard {m['shard']}/{n} again")
    if problems:
        raise SpecError(problems)
    return store
