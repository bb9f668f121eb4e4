"""Event logs: the format, a simulated run's log exported, a real line's log read (DESIGN §12: a
twin of a real line). :mod:`twin.calibrate` fits a spec to a log, :mod:`twin.logcheck` judges a
spec against one.

Format: CSV (or Parquet with pyarrow), one row per event, columns ``timestamp``
(seconds, or ISO 8601 date-times), ``station``, ``server``, ``lot``, ``product``,
``qty``, ``event`` — one of ``arrive``, ``lost``, ``setup_start``, ``setup_end``,
``start``, ``end``, ``blocked``, ``unblocked``, ``leave`` (lot events at a station, ``server``
empty for ``arrive`` and ``lost``, an arrival turned away at a full entrance) and ``fail``,
``repair``, ``maint_start``, ``maint_end``, ``minor_start``, ``minor_end`` (server events: unplanned failures, planned maintenance and minor stops;
``lot`` may be empty). Rows are sorted by time. Your own column names map with
``timestamp=ts,station=machine`` (``time`` is accepted for ``timestamp``).

A lot that starts twice in a row at a station was tested again there (a retest); one that
visits a station off its usual route and comes back took a detour (a repair bench):
``twin calibrate`` turns both into ``routing`` probabilities per pass.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_write_bytes, atomic_write_text
from .names import safe_text
from .record import Fate, MaintKind, Record
from .spec import MAX_HORIZON, SpecError, read_regular_file
from .state import TRACE_KEYS

COLUMNS = ["timestamp", "station", "server", "lot", "product", "qty", "event"]
EVENTS = ["arrive", "lost", "setup_start", "setup_end", "start", "end", "blocked", "unblocked", "leave", "fail",
          "repair", "maint_start", "maint_end", "minor_start", "minor_end"]
SERVER_EVENTS = ("fail", "repair", "maint_start", "maint_end", "minor_start", "minor_end")
# order of simultaneous events in an exported log (a repair before the work it allows, ...)
_PRIORITY = {"repair": 0, "maint_end": 0, "minor_end": 0, "end": 1, "blocked": 2, "unblocked": 3, "leave": 4,
             "arrive": 5, "lost": 5, "setup_start": 6, "setup_end": 7, "start": 8, "fail": 9, "maint_start": 9,
             "minor_start": 9}
MAX_LISTED = 20
MAX_LOG_INT = 2**53  # ids and quantities beyond this lose their last digits as floats
MAX_LOG_BYTES = 1 << 30  # 1 GiB of log: far more than a year of one line's events, far less than memory


# --------------------------------------------------------------------------- export
def log_frame(rec: Record) -> pd.DataFrame:
    """The event log of a traced run (``run_once(..., trace=True).record``)."""
    if rec.trace is None:
        raise ValueError("the model was not built with trace=True")
    names = [s for s, _ in rec.servers]
    nums = [i for _, i in rec.servers]
    routes = [p.route for p in rec.spec.products]
    prods = rec.products
    rows: list[tuple[float, int, str, Any, Any, str | None, int | None, str]] = []
    fin = rec.array("finishes")
    lost = set(fin["lot"][fin["fate"] == int(Fate.LOST)].tolist())  # turned away at a full first buffer
    rel = rec.array("releases")
    for lot_id, p, qty, t in zip(rel["lot"].tolist(), rel["product"].tolist(), rel["qty"].tolist(), rel["t"].tolist()):
        ev = "lost" if lot_id in lost else "arrive"
        rows.append((t, _PRIORITY[ev], routes[p][0], None, lot_id, prods[p], qty, ev))
    step: dict[int, int] = defaultdict(int)
    tr = rec.array("trace")
    events = [TRACE_KEYS[c] for c in tr["event"].tolist()]
    # where a lot went after each leave: the station of its next take (a retest, a detour and a
    # rework loop leave the route); a lot still queued at the end goes by its route
    takes = {"start", "setup_start"}
    next_at: dict[int, str] = {}
    pending: dict[int, int] = {}
    trace = list(zip(tr["t"].tolist(), tr["server"].tolist(), tr["lot"].tolist(), tr["product"].tolist(),
                     tr["qty"].tolist(), events))
    for i, (_, sid, lot_id, _, qty, ev) in enumerate(trace):
        if ev in takes and lot_id in pending:
            next_at[pending.pop(lot_id)] = names[sid]
        elif ev == "leave" and qty > 0:
            pending[lot_id] = i
    for i, (t, sid, lot_id, p, qty, ev) in enumerate(trace):
        rows.append((t, _PRIORITY[ev], names[sid], nums[sid], lot_id, prods[p], qty, ev))
        if ev == "leave" and qty > 0:
            step[lot_id] += 1
            k = step[lot_id]
            at = next_at.get(i, routes[p][k] if k < len(routes[p]) else None)
            if at is not None:
                rows.append((t, _PRIORITY["arrive"], at, None, lot_id, prods[p], qty, "arrive"))
    mt = rec.array("maint")
    for t0, sid, kind, dur in zip(mt["t"].tolist(), mt["server"].tolist(), mt["kind"].tolist(), mt["duration"].tolist()):
        a, b = ("fail", "repair") if kind == int(MaintKind.REPAIR) else ("maint_start", "maint_end")
        rows.append((t0, _PRIORITY[a], names[sid], nums[sid], None, None, None, a))
        rows.append((t0 + dur, _PRIORITY[b], names[sid], nums[sid], None, None, None, b))
    ms = rec.array("minor")
    for t0, sid, dur in zip(ms["t"].tolist(), ms["server"].tolist(), ms["duration"].tolist()):
        rows.append((t0, _PRIORITY["minor_start"], names[sid], nums[sid], None, None, None, "minor_start"))
        rows.append((t0 + dur, _PRIORITY["minor_end"], names[sid], nums[sid], None, None, None, "minor_end"))
    horizon = rec.end_time
    rows = [r for r in rows if r[0] <= horizon]
    rows.sort(key=lambda r: (r[0], r[1]))
    df = pd.DataFrame([(r[0], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows], columns=COLUMNS)
    for c in ("server", "lot", "qty"):
        df[c] = df[c].astype("Int64")
    return df


LOG_FORMATS = {".csv": "CSV", ".parquet": "Parquet"}
"""What an event log is written as, by the file's suffix."""


def check_log_path(path: str | Path, label: str = "--event-log") -> None:
    """Refuse a suffix the log would not be written as (``log.xlsx`` would hold CSV text)."""
    suffix = Path(path).suffix.lower()
    if suffix not in LOG_FORMATS:
        raise SpecError([f"{label}: {path}: the event log is written as CSV (.csv) or Parquet (.parquet); "
                         f"{'no suffix' if not suffix else repr(suffix)} says neither"])


def write_log(rec: Record, path: str | Path) -> None:
    """Write a traced run's event log (CSV, or Parquet for a ``.parquet`` path), atomically."""
    check_log_path(path)
    df = log_frame(rec)
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    else:
        atomic_write_text(path, df.to_csv(index=False, float_format="%.6f", lineterminator="\n"))


# --------------------------------------------------------------------------- reading
def _parquet_as_text(raw: pd.DataFrame, f: str) -> pd.DataFrame:
    """A Parquet log as the text a CSV gives: strings as they are, bytes as UTF-8 (or an error
    naming the row), missing values as empty cells."""
    out = {}
    for col in raw.columns:
        vals = []
        for i, v in enumerate(raw[col].tolist()):
            if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
                vals.append("")
            elif isinstance(v, bytes):
                try:
                    vals.append(v.decode("utf-8"))
                except UnicodeDecodeError:
                    raise SpecError([f"{f}: row {i + 1}: column {col!r} holds bytes that are not UTF-8 text"]) from None
            else:
                vals.append(str(v))
        out[str(col)] = vals
    return pd.DataFrame(out, dtype=object).astype(str)


def parse_map(text: str | None) -> dict[str, str]:
    """``time=ts,station=machine`` → {"timestamp": "ts", "station": "machine"} (``time`` means timestamp)."""
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        if "=" not in part:
            raise SpecError([f"--map: {part!r}: expected ours=theirs, e.g. timestamp=ts,station=machine"])
        a, b = (x.strip() for x in part.split("=", 1))
        a = "timestamp" if a in ("time", "t") else a
        if a not in COLUMNS:
            raise SpecError([f"--map: unknown column {a!r} (ours are: {', '.join(COLUMNS)})"])
        out[a] = b
    return out


def read_log(path: str | Path, mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Read and check an event log; timestamps become seconds from the first row.

    Raises :class:`SpecError` listing every problem as ``file: line N: message``."""
    path = Path(path)
    f = str(path)
    data = read_regular_file(path, MAX_LOG_BYTES, "an event log")
    try:
        if path.suffix == ".parquet":
            raw = pd.read_parquet(io.BytesIO(data))
        else:
            raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except ImportError:
        raise SpecError([f"{f}: reading Parquet needs pyarrow (pip install pyarrow), or give a CSV"]) from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as e:
        raise SpecError([f"{f}: not a readable CSV event log ({str(e).splitlines()[0]})"]) from None
    if path.suffix == ".parquet":  # same text view as a CSV: missing values are empty cells
        raw = _parquet_as_text(raw, f)
    mapping = mapping or {}
    for ours, theirs in mapping.items():
        if theirs not in raw.columns:
            raise SpecError([f"{f}: --map {ours}={theirs}: the log has no column {theirs!r} "
                             f"(found: {', '.join(map(str, raw.columns))})"])
        if ours in raw.columns and ours != theirs:
            raise SpecError([f"{f}: --map {ours}={theirs}: the log already has a column {ours!r}; "
                             "map only the columns whose names differ"])
    rename = {theirs: ours for ours, theirs in mapping.items()}
    raw = raw.rename(columns=rename)
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        hint = f"; map your own names with --map {missing[0]}=YOUR_COLUMN" if missing else ""
        raise SpecError([f"{f}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                         f"(found: {', '.join(map(str, raw.columns))}){hint}"])
    if raw.empty:
        raise SpecError([f"{f}: the log has no events"])
    problems: list[str] = []
    line = np.arange(len(raw)) + 2  # header is line 1

    def bad(i: int, msg: str) -> None:
        problems.append(f"{f}: line {line[i]}: {msg}")

    ts_raw = raw["timestamp"].str.strip()
    num = pd.to_numeric(ts_raw, errors="coerce").to_numpy(dtype=float)
    numeric_like = ~np.isnan(num) | ts_raw.str.lower().isin(["nan", "inf", "-inf", "+inf"]).to_numpy()
    if numeric_like.mean() >= 0.5:  # a log of seconds: each line that is not a finite number is named
        for i in np.nonzero(~np.isfinite(num))[0][:MAX_LISTED]:
            bad(int(i), f"timestamp {ts_raw.iloc[i]!r} is " + ("not a finite number of seconds" if numeric_like[i]
                                                                else "neither seconds nor an ISO 8601 date-time"))
        if problems:
            raise SpecError(problems)
        t = num
    else:
        dt = pd.to_datetime(ts_raw, errors="coerce", utc=True, format="ISO8601")
        for i in np.nonzero(dt.isna().to_numpy())[0][:MAX_LISTED]:
            bad(int(i), f"timestamp {ts_raw.iloc[i]!r} is neither seconds nor an ISO 8601 date-time")
        if dt.isna().any():
            raise SpecError(problems)
        t = (dt - dt.iloc[0]).dt.total_seconds().to_numpy()
    t = t - t[0]
    if len(t) and t[-1] <= 0:
        raise SpecError([f"{f}: the log spans no time (every event is at the same instant); rates and "
                         "durations cannot be measured from it"])
    if len(t) and t[-1] - t[0] > MAX_HORIZON:
        jump = int(np.argmax(np.diff(t))) + 1
        bad(jump, f"timestamp {ts_raw.iloc[jump]} is {t[jump] - t[jump - 1]:.4g} s after the line before: the "
                  f"log would span more than 20 years (a stray timestamp?)")
        raise SpecError(problems)
    for col in ("station", "product"):
        ctrl = raw[col].str.contains(r"[\x00-\x1f\x7f-\x9f]", regex=True).to_numpy()
        for i in np.nonzero(ctrl)[0][:MAX_LISTED]:
            bad(int(i), f"{col} '{safe_text(raw[col].iloc[i], keep_newlines=False)}' contains control "
                        "characters; a name is printable text")
    ev = raw["event"].str.strip()
    for i in np.nonzero(~ev.isin(EVENTS).to_numpy())[0]:
        bad(int(i), f"unknown event {ev.iloc[i]!r} (known: {', '.join(EVENTS)})")
    back = np.nonzero(np.diff(t) < 0)[0]
    for i in back:
        bad(int(i) + 1, f"timestamp {ts_raw.iloc[i + 1]} is earlier than the line before ({ts_raw.iloc[i]}); "
                        "the log must be sorted by time")

    def ints(col: str, required: bool) -> np.ndarray:
        s = raw[col].str.strip()
        v = pd.to_numeric(s, errors="coerce")
        frac = (v.notna() & np.isfinite(v.to_numpy(dtype=float, na_value=0.0))
                & (v.to_numpy(dtype=float, na_value=0.0) % 1 != 0)).to_numpy()
        wrong = (v.isna() & (s != "")).to_numpy() | (v < 0).to_numpy() | frac | (v > MAX_LOG_INT).to_numpy()
        for i in np.nonzero(wrong)[0][:MAX_LISTED]:
            bad(int(i), f"{col} {s.iloc[i]!r} is not a whole number between 0 and {MAX_LOG_INT}")
        if required:
            for i in np.nonzero(((s == "") & ev.isin(["start", "end", "arrive", "lost", "leave"])).to_numpy())[0][:MAX_LISTED]:
                bad(int(i), f"{col} is empty for a {ev.iloc[i]!r} event")
        return v.to_numpy(dtype=float)

    server = ints("server", False)
    lot = ints("lot", True)
    qty = ints("qty", False)
    station = raw["station"].str.strip()
    for i in np.nonzero((station == "").to_numpy())[0][:MAX_LISTED]:
        bad(int(i), "station is empty")
    for i in np.nonzero(((raw["server"].str.strip() == "") & ev.isin(
            ["start", "end", "setup_start", "setup_end", "blocked", "unblocked", *SERVER_EVENTS])).to_numpy())[0][:MAX_LISTED]:
        bad(int(i), f"server is empty for a {ev.iloc[i]!r} event")
    df = pd.DataFrame({"t": t, "station": station, "server": server, "lot": lot,
                       "product": raw["product"].str.strip(), "qty": qty, "event": ev, "line": line})
    if not problems:
        problems += _pairing(df, f)
    if problems:
        extra = len(problems) - MAX_LISTED
        raise SpecError(problems[:MAX_LISTED] + ([f"{f}: ... and {extra} more problems"] if extra > 0 else []))
    return df


def _pairing(df: pd.DataFrame, f: str) -> list[str]:
    """Duplicates, and ends without starts (per lot at a server; repairs per server)."""
    problems: list[str] = []
    seen: dict[tuple[Any, ...], int] = {}
    open_: dict[tuple[Any, ...], int] = {}
    pairs = {"end": "start", "setup_end": "setup_start", "unblocked": "blocked", "repair": "fail",
             "maint_end": "maint_start", "minor_end": "minor_start"}
    for r in df.itertuples(index=False):
        key = (r.t, r.station, r.server, r.lot, r.event)
        if key in seen:
            problems.append(f"{f}: line {r.line}: duplicate of line {seen[key]}")
            continue
        seen[key] = r.line
        who = (r.station, r.server) if r.event in SERVER_EVENTS else (r.station, r.server, r.lot)
        if r.event in pairs.values():
            if (who, r.event) in open_:
                problems.append(f"{f}: line {r.line}: {r.event!r} while the {r.event!r} of line "
                                f"{open_[(who, r.event)]} has not ended")
            open_[(who, r.event)] = r.line
        elif r.event in pairs:
            if (who, pairs[r.event]) not in open_:
                what = f"lot {int(r.lot)} at " if r.event not in SERVER_EVENTS else ""
                problems.append(f"{f}: line {r.line}: {r.event!r} of {what}{r.station} server "
                                f"{'' if math.isnan(r.server) else int(r.server)} without a {pairs[r.event]!r}")
            else:
                del open_[(who, pairs[r.event])]
        if len(problems) > MAX_LISTED:
            break
    return problems
