"""Output files: checked before any work, written atomically, never over anything but a regular file.

- :func:`check_output_dir` / :func:`check_output_file` refuse a target that is a device, a
  FIFO, a folder where a file is wanted (or a file where a folder is), under a file, or not
  writable, naming the path; commands call them before they simulate.
- :func:`atomic_write_bytes` writes a temporary file in the same folder and renames it over
  the target, so a reader sees the old file or the whole new one.
- :class:`ResultSet` publishes a folder of results with its summary written last: a result
  set without its summary is visibly incomplete, never mixed with an older one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .spec import SpecError, file_kind

_UMASK = os.umask(0)
os.umask(_UMASK)


_TMP_TAG = ".twin-tmp-"  # temporary files and folders carry it, with the writing process's id


def _probe_writable(folder: Path, label: str, shown: Path) -> None:
    """Create and remove a temporary file in ``folder``: the only test that holds for /proc,
    /sys, read-only mounts and permissions alike."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_TAG}{os.getpid()}-probe-", dir=folder)
    except OSError as e:
        raise SpecError([f"{label}: {shown}: cannot write there ({e.strerror or e})"]) from None
    os.close(fd)
    os.unlink(tmp)


def _nearest_existing(path: Path, label: str) -> Path:
    cur = path
    while not cur.exists():
        if cur.parent == cur:
            break
        cur = cur.parent
    try:
        mode = os.stat(cur).st_mode
    except OSError as e:
        raise SpecError([f"{label}: {path}: cannot use {cur} ({e.strerror or e})"]) from None
    if not stat.S_ISDIR(mode):
        raise SpecError([f"{label}: {path}: {cur} is {file_kind(mode) if not stat.S_ISREG(mode) else 'a file'}, "
                         "not a folder"])
    return cur


def check_output_dir(path: str | os.PathLike[str], label: str = "--out") -> Path:
    """Make sure results can be written into folder ``path`` (created later if missing);
    raise :class:`SpecError` naming the path otherwise. Writes nothing that stays."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        _probe_writable(_nearest_existing(p, label), label, p)
        return p
    except OSError as e:
        raise SpecError([f"{label}: {p}: cannot use it ({e.strerror or e})"]) from None
    if not stat.S_ISDIR(mode):
        what = "a file" if stat.S_ISREG(mode) else file_kind(mode)
        raise SpecError([f"{label}: {p}: is {what}; results go into a folder"])
    _probe_writable(p, label, p)
    return p


def check_output_file(path: str | os.PathLike[str], label: str) -> Path:
    """Make sure ``path`` can be written as a regular file (replacing only a regular file);
    raise :class:`SpecError` naming the path otherwise. Writes nothing that stays."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        _probe_writable(_nearest_existing(p.parent, label), label, p)
        return p
    except OSError as e:
        raise SpecError([f"{label}: {p}: cannot use it ({e.strerror or e})"]) from None
    if not stat.S_ISREG(mode):
        raise SpecError([f"{label}: {p}: is {file_kind(mode)}; only a regular file is written or replaced"])
    _probe_writable(p.parent, label, p)
    remove_stale_temporaries(p.parent)
    return p


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host is alive (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> int:
    """Remove temporary files and folders left in ``folder`` by twin processes that are gone
    (killed mid-write); returns how many were removed."""
    n = 0
    d = Path(folder)
    if not d.is_dir():
        return 0
    for entry in d.iterdir():
        name = entry.name
        if _TMP_TAG not in name:
            continue
        pid_text = name.split(_TMP_TAG, 1)[1].split("-", 1)[0]
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            n += 1
        except OSError:
            pass
    return n


def _make_dirs(folder: Path) -> list[Path]:
    """``folder.mkdir(parents=True, exist_ok=True)``, returning the folders it created
    (outermost first) so that a failed write can take them away again."""
    made: list[Path] = []
    cur = folder
    while not cur.exists() and cur.parent != cur:
        made.append(cur)
        cur = cur.parent
    made.reverse()
    for d in made:
        d.mkdir(exist_ok=True)
    return made


def _remove_if_empty(folders: list[Path]) -> None:
    for d in reversed(folders):
        try:
            d.rmdir()
        except OSError:
            return  # not empty (or gone): it and its parents stay


def write_error(e: OSError, path: Path, need: int | None = None) -> SpecError:
    """The one message for an output that could not be written: the path, what it needed
    and, for a full disk, how much is free."""
    size = f"{need:,} bytes" if need is not None else "its contents"
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        try:
            free = f", {shutil.disk_usage(_nearest_folder(path)).free:,} bytes free"
        except OSError:
            free = ""
        why = f"the disk (or quota) is full: it needed {size}{free}"
    elif e.errno == errno.EFBIG:
        why = f"it needed {size}, more than this process may write to a file (the file-size limit, ulimit -f)"
    else:
        why = f"{e.strerror or e}"
    return SpecError([f"{path}: cannot write it: {why}; nothing was written there"])


def _nearest_folder(path: Path) -> Path:
    cur = path.parent
    while not cur.exists() and cur.parent != cur:
        cur = cur.parent
    return cur


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    Only a regular file is ever replaced: a device, FIFO or folder at ``path`` raises
    :class:`SpecError` (a device node is never renamed over)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise SpecError([f"{path}: is {file_kind(mode)}; only a regular file is written or replaced"])
    made: list[Path] = []
    try:
        made = _make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{_TMP_TAG}{os.getpid()}-", suffix=".tmp", dir=path.parent)
    except OSError as e:
        _remove_if_empty(made)
        raise write_error(e, path, len(data)) from None
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        _remove_if_empty(made)
        if isinstance(e, OSError):
            raise write_error(e, path, len(data)) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def clean_json(x: Any) -> Any:
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def dumps(obj: Any) -> str:
    """Stable JSON (sorted keys, no NaN) so equal results give byte-identical files."""
    return json.dumps(clean_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, dumps(obj))


def csv_text(df: pd.DataFrame) -> str:
    """The tidy CSV form of a table (stable number format)."""
    return df.to_csv(index=False, float_format="%.10g", lineterminator="\n")


def write_csv(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    atomic_write_text(path, csv_text(df))


class ResultSet:
    """A folder of result files published together, its summary last.

    Files are written into a staging folder inside ``folder``; :meth:`publish` removes the old
    summary, moves the other files into place and the summary last, so ``kpis.json`` (or
    whatever ``summary`` names) marks a complete set. A failure before :meth:`publish`
    leaves the folder as it was (the staging folder is removed, or later cleaned up as stale).
    """

    def __init__(self, folder: str | os.PathLike[str], summary: str = "kpis.json"):
        self.folder = Path(folder)
        self.summary = summary
        self._made: list[Path] = []
        try:
            self._made = _make_dirs(self.folder)
            remove_stale_temporaries(self.folder)
            self.stage = Path(tempfile.mkdtemp(prefix=f"{_TMP_TAG}{os.getpid()}-", dir=self.folder))
        except OSError as e:
            _remove_if_empty(self._made)
            raise write_error(e, self.folder) from None
        self.names: list[str] = []

    def __enter__(self) -> "ResultSet":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
        if exc_type is not None:  # a set that failed leaves no folder it made behind
            _remove_if_empty(self._made)

    def add_bytes(self, name: str, data: bytes) -> None:
        atomic_write_bytes(self.stage / name, data)
        if name not in self.names:
            self.names.append(name)

    def add_text(self, name: str, text: str) -> None:
        self.add_bytes(name, text.encode("utf-8"))

    def add_json(self, name: str, obj: Any) -> None:
        self.add_text(name, dumps(obj))

    def add_csv(self, name: str, df: pd.DataFrame) -> None:
        self.add_text(name, csv_text(df))

    def publish(self) -> list[Path]:
        """Move the staged files into the folder, the summary last; return their paths."""
        for name in self.names:
            target = self.folder / name
            if target.exists() and not target.is_file():
                raise SpecError([f"{target}: is {file_kind(os.stat(target).st_mode)}; only a regular file is replaced"])
        old = self.folder / self.summary
        if old.is_file():
            old.unlink()  # from here until the new summary lands, the folder says "incomplete"
        order = [n for n in self.names if n != self.summary] + [n for n in self.names if n == self.summary]
        for name in order:
            try:
                os.replace(self.stage / name, self.folder / name)
            except OSError as e:
                raise write_error(e, self.folder / name) from None
        return [self.folder / n for n in order]
