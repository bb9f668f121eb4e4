"""Event logs: export a simulated run, read a real line's log, calibrate a spec from it,
and check a spec against it (DESIGN §12: a twin of a real line).

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
import textwrap
import tomllib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import toml_text
from .fit import best, best_censored
from .io import atomic_write_bytes, atomic_write_text
from .names import safe_text
from .record import Fate, MaintKind, Record
from .runs import replication_seed, run_once
from .spec import MAX_HORIZON, SpecError, read_regular_file, validate
from .state import TRACE_KEYS, State
from .stats import holm, holm_levels, mean_ci, t975
from .units import HOUR

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
STATE_COLS = tuple(State[n].key for n in ("BUSY", "SETUP", "BLOCKED", "DOWN", "MAINTENANCE", "IDLE"))  # compared by twin check
CHECK_ALPHA = 0.05
"""``twin check``'s family-wise error rate: the chance that a right model differs somewhere."""
LEAD_TIME_FACTOR = 3.0
"""The lead-time error ``twin check`` must be able to see: a log whose runs scatter so much that a
factor of 3 would pass is reported as too short to judge ("cannot tell"), not as agreeing."""
STATE_FLOOR = 0.001  # state-fraction differences below 0.1 % of the time are not reported as differing
MIN_OBS = 30  # fewer observations than this: the fit is flagged as weak


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


# --------------------------------------------------------------------------- measurements
def _intervals(df: pd.DataFrame, a: str, b: str, by: list[str]) -> pd.DataFrame:
    """Pair the k-th ``a`` event with the k-th ``b`` event of the same ``by`` key (vectorised):
    rows of station, server, lot, product, qty, t0, t1."""
    cols = ["station", "server", "lot", "product", "qty"]
    sa = df[df["event"] == a]
    sb = df[df["event"] == b]
    if sa.empty or sb.empty:
        return pd.DataFrame(columns=cols + ["t0", "t1"])
    ka = sa.assign(_k=sa.groupby(by, dropna=False, sort=False).cumcount())
    kb = sb.assign(_k=sb.groupby(by, dropna=False, sort=False).cumcount())
    # keys with NaN (an empty lot on a server event) must still match: compare them as text
    keys = []
    for c in by:
        ka[f"_{c}"] = ka[c].astype(str)
        kb[f"_{c}"] = kb[c].astype(str)
        keys.append(f"_{c}")
    mg = ka.merge(kb[keys + ["_k", "t"]], on=keys + ["_k"], suffixes=("", "_b"))
    out = mg[cols].copy()
    out["t0"] = mg["t"].to_numpy()
    out["t1"] = mg["t_b"].to_numpy()
    return out.reset_index(drop=True)


def _overlap(iv: pd.DataFrame, down: pd.DataFrame) -> np.ndarray:
    """Down time of the same server inside each interval (processing excludes repairs)."""
    res = np.zeros(len(iv))
    if down.empty or iv.empty:
        return res
    key_iv = iv["station"].astype(str) + "|" + iv["server"].astype(str)
    key_dn = down["station"].astype(str) + "|" + down["server"].astype(str)
    for k, d in down.groupby(key_dn.to_numpy()):
        idx = np.nonzero((key_iv == k).to_numpy())[0]
        if not len(idx):
            continue
        d0, d1 = d["t0"].to_numpy(), d["t1"].to_numpy()
        t0, t1 = iv["t0"].to_numpy()[idx], iv["t1"].to_numpy()[idx]
        # down spells are few and sorted; each interval overlaps at most a handful of them
        lo = np.searchsorted(d1, t0, side="right")
        hi = np.searchsorted(d0, t1, side="left")
        for j, (a, b) in enumerate(zip(lo, hi)):
            if b > a:
                res[idx[j]] = np.clip(np.minimum(d1[a:b], t1[j]) - np.maximum(d0[a:b], t0[j]), 0, None).sum()
    return res


def measure(df: pd.DataFrame) -> dict[str, Any]:
    """What a log says: processing, setup, repair and maintenance intervals, time to failure,
    time between planned maintenances, routes, releases."""
    down = _intervals(df, "fail", "repair", ["station", "server"])
    pm = _intervals(df, "maint_start", "maint_end", ["station", "server"])
    # every stop of a machine renews it; planned ones end a life before its failure
    renewals = pd.concat([down.assign(_pm=False), pm.assign(_pm=True)], ignore_index=True).sort_values(
        "t0", kind="stable")
    minor = _intervals(df, "minor_start", "minor_end", ["station", "server"])
    proc = _intervals(df, "start", "end", ["station", "server", "lot"])
    stops = pd.concat([renewals[["station", "server", "t0", "t1"]], minor[["station", "server", "t0", "t1"]]],
                      ignore_index=True).sort_values("t0", kind="stable")
    proc["work"] = (proc["t1"] - proc["t0"]) - _overlap(proc, stops)
    # operating time between minor stops: the work between the end of one and the start of the next
    minor_every: dict[str, list[float]] = defaultdict(list)
    for (st, srv), g in minor.groupby(["station", "server"]):
        work = proc[(proc["station"] == st) & (proc["server"] == srv)]
        w0, w1 = work["t0"].to_numpy(), work["t1"].to_numpy()
        g = g.sort_values("t0")
        for a, b in zip(g["t1"].to_numpy()[:-1], g["t0"].to_numpy()[1:]):
            minor_every[st].append(float(np.clip(np.minimum(w1, b) - np.maximum(w0, a), 0, None).sum()))
    setups = _intervals(df, "setup_start", "setup_end", ["station", "server", "lot"])
    blocked = _intervals(df, "blocked", "unblocked", ["station", "server", "lot"])
    # operating time to failure: busy time since the last renewal (a repair or a planned
    # maintenance), per server; a life ended by planned maintenance is censored
    ttf: dict[str, list[float]] = defaultdict(list)
    pm_age: dict[str, list[float]] = defaultdict(list)  # operating time at each planned maintenance
    censored: dict[str, list[float]] = defaultdict(list)  # lives cut short by maintenance or the log's end
    for (st, srv), g in proc.groupby(["station", "server"]):
        ren = renewals[(renewals["station"] == st) & (renewals["server"] == srv)]
        work = g.sort_values("t0")
        w0, w1 = work["t0"].to_numpy(), work["t1"].to_numpy()
        last = 0.0
        for f0, f1, planned in ren[["t0", "t1", "_pm"]].itertuples(index=False):
            busy = float(np.clip(np.minimum(w1, f0) - np.maximum(w0, last), 0, None).sum())
            if planned:
                pm_age[st].append(busy)
                censored[st].append(busy)
            else:
                ttf[st].append(busy)
            last = f1
        censored[st].append(float(np.clip(w1 - np.maximum(w0, last), 0, None).sum()))
    # routes of the lots that completed theirs (last event a leave, not an arrival elsewhere)
    lot_ev = df[df["lot"].notna()]
    last_ev = lot_ev.groupby("lot", sort=False)["event"].last()
    complete = set(last_ev.index[last_ev.to_numpy() == "leave"])
    starts = lot_ev[(lot_ev["event"] == "start") & lot_ev["lot"].isin(complete)]
    seqs = starts.groupby(["product", "lot"], sort=False)["station"].agg(tuple)
    routes, passes, loops = _routes_and_loops(seqs)
    arrivals = df[df["event"] == "arrive"]
    first = arrivals.drop_duplicates("lot", keep="first")
    lost = df[df["event"] == "lost"].drop_duplicates("lot", keep="first")
    leave = df[df["event"] == "leave"]
    # units scrapped at a station: what its work ended with less what left it, over the lots whose
    # every pass there has left (a lot still inside at the end of the log is not counted)
    scrap: dict[str, tuple[float, float]] = {}
    ends = df[df["event"] == "end"]
    e_sum = ends.groupby(["station", "lot"])["qty"].agg(["sum", "count"]).add_suffix("_end")
    l_sum = leave.groupby(["station", "lot"])["qty"].agg(["sum", "count"]).add_suffix("_leave")
    both = e_sum.join(l_sum, how="inner")
    both = both[both["count_end"] == both["count_leave"]]
    for st, g in both.groupby(level="station"):
        scrap[str(st)] = (float(g["sum_end"].sum()), float((g["sum_end"] - g["sum_leave"]).clip(lower=0).sum()))
    # queue (arrived, not started) per station: its maximum is the buffer when upstream blocks
    queue_max: dict[str, int] = {}
    for st, g in df[df["event"].isin(["arrive", "start", "setup_start"])].groupby("station"):
        # a lot leaves the queue when its server takes it (setup or start); at equal times the
        # take comes first (a freed place is what lets the blocked lot arrive)
        take = (g["event"] != "arrive").to_numpy()
        first_take = take & ~g["lot"].where(take).duplicated().to_numpy()
        delta = np.where(g["event"] == "arrive", 1, np.where(first_take, -1, 0))
        order = np.lexsort((delta, g["t"].to_numpy()))
        q = np.cumsum(delta[order])
        queue_max[st] = int(q.max()) if len(q) else 0
    return {"proc": proc, "setups": setups, "down": down, "pm": pm, "pm_age": pm_age, "blocked": blocked,
            "ttf": ttf, "censored": censored, "minor": minor, "minor_every": minor_every,
            "passes": passes, "loops": loops, "routes": routes, "releases": first, "lost": lost, "leave": leave, "queue_max": queue_max,
            "scrap": scrap,
            "horizon": float(df["t"].max())}


def _collapse(seq: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x)


def _routes_and_loops(seqs: pd.Series) -> tuple[dict[str, Counter], Counter, dict[str, Counter]]:
    """From the station sequences of complete lots (by product and lot): the routes (stations
    most lots of a product visit, in order), the passes at each station, and the loops taken
    after a pass: ``loops[x][x]`` retests (x twice in a row), ``loops[x][y]`` detours to a
    station ``y`` off the route that came back to ``x``."""
    passes: Counter = Counter()
    loops: dict[str, Counter] = defaultdict(Counter)
    by_prod: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    for (prod, _), seq in seqs.items():
        by_prod[prod].append(seq)
        passes.update(seq)
    routes: dict[str, Counter] = defaultdict(Counter)
    for prod, all_seqs in by_prod.items():
        seen = Counter(st for seq in all_seqs for st in set(seq))
        on_route = {st for st, n in seen.items() if n * 2 >= len(all_seqs)}
        for seq in all_seqs:
            for a, b in zip(seq, seq[1:]):
                if a == b:
                    loops[a][a] += 1
            col = _collapse(seq)
            for a, y, b in zip(col, col[1:], col[2:]):
                if y not in on_route and a == b:
                    loops[a][y] += 1
            routes[prod][_collapse(tuple(x for x in col if x in on_route))] += 1
    return routes, passes, loops


def saturated_release(df: pd.DataFrame, m: dict[str, Any]) -> bool:
    """Whether the line pulled its own work (a saturated source): at its first stations no
    more lots ever waited than there are servers (each server fetches the next lot when it
    is free), and those stations never idled. (Both are needed: a lightly loaded station
    has short queues too, but it idles.)"""
    rel = m["releases"]
    if len(rel) < MIN_OBS:
        return False
    fr = log_kpis(df, m)["stations"]
    for st in set(rel["station"]):
        servers = df.loc[(df["station"] == st) & df["server"].notna(), "server"].nunique()
        if m["queue_max"].get(st, 0) > servers or fr.get(st, {}).get(State.IDLE.key, 1.0) >= 0.02:
            return False
    return True


# --------------------------------------------------------------------------- calibrate
def calibrate(df: pd.DataFrame, name: str = "calibrated line", source: str = "") -> tuple[str, list[str]]:
    """A spec (TOML text with comments on every fit) and warnings, from a checked log."""

    m = measure(df)
    proc, routes = m["proc"], m["routes"]
    warnings: list[str] = []
    # products and routes
    products = []
    lost = m["lost"]
    # the product mix of what arrived, turned away or not
    shares = pd.concat([m["releases"]["product"], lost["product"]]).value_counts()
    station_order: list[str] = []
    for prod in sorted(routes):
        route, count = routes[prod].most_common(1)[0]
        total = sum(routes[prod].values())
        if count < total:
            warnings.append(f"product {prod}: {total - count} of {total} lots took another route; "
                            f"the most common one ({' > '.join(route)}) is used")
        qty = m["releases"].loc[m["releases"]["product"] == prod, "qty"]
        lot_size = int(qty.mode().iloc[0]) if len(qty) else 1
        products.append({"name": prod, "route": list(route), "lot_size": lot_size,
                         "share": round(float(shares.get(prod, 0)) / max(1, int(shares.sum())), 6)})
        for s in route:
            if s not in station_order:
                station_order.append(s)
    for st in sorted({y for x in m["loops"] for y in m["loops"][x]} - set(station_order)):
        station_order.append(st)  # a repair bench or other detour station, off every route
    blocked_into: set[str] = set()
    for r in m["blocked"].itertuples(index=False):
        for p in products:
            if p["name"] == r.product and r.station in p["route"]:
                i = p["route"].index(r.station)
                if i + 1 < len(p["route"]):
                    blocked_into.add(p["route"][i + 1])
    stations = []
    notes: dict[str, list[str]] = {}
    for st in station_order:
        g = proc[proc["station"] == st]
        n_servers = int(df.loc[(df["station"] == st) & df["server"].notna(), "server"].nunique())
        entry: dict[str, Any] = {"name": st, "servers": max(1, n_servers)}
        note = [f"{st}: {n_servers} server(s) seen; {len(g)} processed lots"]
        by_prod = {}
        for prod, gp in g.groupby("product"):
            q = gp["qty"].to_numpy(dtype=float)
            unit = gp["work"].to_numpy() / np.maximum(q, 1)
            if (q > 1).any():
                # a lot time is a sum of q unit times: unit mean = mean(d/q), unit cv = cv(d) * sqrt(q)
                mean = float(unit.mean())
                cv = float(gp["work"].std() / gp["work"].mean() * math.sqrt(float(np.mean(q)))) if len(gp) > 1 else 0.0
                by_prod[prod] = {"dist": "gamma", "mean": float(f"{mean:.6g}"), "cv": float(f"{cv:.6g}")} \
                    if cv > 0 else float(f"{mean:.6g}")
                note.append(f"  process_time {prod}: n={len(gp)} lots of ~{np.mean(q):.0f}, moment fit (gamma)")
            else:
                fit, rep = best(unit)
                by_prod[prod] = fit.spec()  # type: ignore[union-attr]
                note.append(f"  process_time {prod}: {rep}")
            if len(gp) < MIN_OBS:
                warnings.append(f"station {st}, product {prod}: only {len(gp)} processing times (< {MIN_OBS}); "
                                "the fit is weak")
                note.append(f"  WARNING: only {len(gp)} observations for {prod}")
        if len(by_prod) == 1:
            entry["process_time"] = next(iter(by_prod.values()))
        else:
            entry["process_time_by_product"] = by_prod
        n_lost = int((lost["station"] == st).sum())
        if n_lost:
            # an arrival is turned away only when the entrance is full: the most that waited is its size
            entry["buffer"] = m["queue_max"].get(st, 0)
            note.append(f"  buffer: {n_lost} arrivals were turned away (lost) with at most {entry['buffer']} lots "
                        "waiting here: a finite entrance")
        elif st in blocked_into:
            entry["buffer"] = m["queue_max"].get(st, 0)
            note.append(f"  buffer: upstream was blocked; at most {entry['buffer']} lots waited here")
        su = m["setups"][m["setups"]["station"] == st]
        if len(su):
            fit, rep = best((su["t1"] - su["t0"]).to_numpy())
            entry["setup"] = {"default": fit.spec()}  # type: ignore[union-attr]
            note.append(f"  setup: {rep}")
        mi = m["minor"][m["minor"]["station"] == st]
        if len(mi) >= 2 and len(m["minor_every"].get(st, [])):
            every_fit, every_rep = best(np.asarray(m["minor_every"][st]))
            dur_fit, dur_rep = best((mi["t1"] - mi["t0"]).to_numpy())
            entry["minor_stops"] = {"every": every_fit.spec(), "duration": dur_fit.spec()}  # type: ignore[union-attr]
            note.append(f"  minor stops: {len(mi)}; operating time between them {every_rep}; duration {dur_rep}")
        loops = m["loops"].get(st, {})
        if loops and m["passes"][st]:
            entry["routing"] = {y: float(f"{n / m['passes'][st]:.6g}") for y, n in sorted(loops.items())}
            note.append("  routing per pass: " + ", ".join(
                f"{'retest' if y == st else 'to ' + y} {n} of {m['passes'][st]}" for y, n in sorted(loops.items())))
        made, scrapped = m["scrap"].get(st, (0.0, 0.0))
        if scrapped > 0 and made > 0:
            share = scrapped / made
            entry["quality"] = {"defect_rate": float(f"{share:.6g}"), "inspect": "inline"}
            note.append(f"  scrap: {scrapped:.0f} of {made:.0f} units processed here did not leave ({share:.2%}): "
                        "inline inspection of defects made here (where a defect was made is not in the log)")
        fails = m["ttf"].get(st, [])
        dn = m["down"][m["down"]["station"] == st]
        ages = m["pm_age"].get(st, [])
        pms = m["pm"][m["pm"]["station"] == st]
        if len(fails):
            ttf_spec: Any
            if len(ages):
                # planned maintenance cuts lives short: fit failures and censored lives together
                ttf_fit, ttf_rep = best_censored(fails, m["censored"][st])
                ttf_spec = ttf_fit.spec()  # type: ignore[union-attr]
            else:
                ttf_fit, ttf_rep = best(fails)
                ttf_spec = ttf_fit.spec()  # type: ignore[union-attr]
                if ttf_fit is not None and ttf_fit.family == "exponential":
                    exp_mean = (sum(fails) + sum(m["censored"][st])) / len(fails)
                    ttf_spec = {"dist": "exponential", "mean": float(f"{exp_mean:.6g}")}
                    ttf_rep += f"; mean with censored tails {exp_mean:.1f} s"
            ttr_fit, ttr_rep = best((dn["t1"] - dn["t0"]).to_numpy())
            entry["failures"] = {"ttf": ttf_spec, "ttr": ttr_fit.spec(), "basis": "operating"}  # type: ignore[union-attr]
            note.append(f"  ttf (operating time): {ttf_rep}")
            note.append(f"  ttr: {ttr_rep}")
            if len(fails) < 10:
                warnings.append(f"station {st}: only {len(fails)} failures; time-to-failure and repair fits are weak")
                note.append(f"  WARNING: only {len(fails)} failures")
        if len(pms) and len(fails):
            pm_fit, pm_rep = best((pms["t1"] - pms["t0"]).to_numpy())
            cv = float(np.std(ages) / np.mean(ages)) if len(ages) > 1 and np.mean(ages) > 0 else 0.0
            if cv < 0.05:
                # age-based: maintenance starts at the first lot boundary after the interval,
                # so the shortest observed age is the closest to the interval itself
                interval, how = float(np.min(ages)), "shortest age at maintenance"
            else:
                interval, how = float(np.mean(ages)), "mean age at maintenance"
                warnings.append(f"station {st}: planned maintenance at irregular ages (cv {cv:.2f}), as condition-"
                                "based maintenance would be; modelled as preventive at the mean age")
            entry["maintenance"] = {"policy": "preventive", "interval": float(f"{interval:.6g}"),
                                    "duration": pm_fit.spec()}  # type: ignore[union-attr]
            note.append(f"  planned maintenance: {len(pms)}, every {interval:.1f} s of operating time ({how}; "
                        f"ages cv {cv:.3f}); duration {pm_rep}")
        elif len(pms):
            warnings.append(f"station {st}: {len(pms)} planned maintenances but no failures: not modelled "
                            "(planned maintenance in twin prevents failures)")
            note.append(f"  WARNING: {len(pms)} planned maintenances and no failures; not modelled")
        stations.append(entry)
        notes[st] = note
    rel = np.concatenate([m["releases"]["t"].to_numpy(), lost["t"].to_numpy()])
    src: dict[str, Any]
    ia = np.diff(np.sort(rel))
    ia = ia[ia > 0]
    src_note = ""
    if saturated_release(df, m):
        src = {"kind": "saturated"}
        src_note = (f"releases: {len(rel)} lots; no more waited at the first station than it has servers and it "
                    "never idled: a saturated source")
    elif len(ia) >= 2:
        fit, rep = best(ia)
        if fit.family == "exponential":  # type: ignore[union-attr]
            src = {"kind": "poisson", "rate_per_hour": float(f"{HOUR / fit.mean:.6g}")}  # type: ignore[union-attr]
        else:
            src = {"kind": "renewal", "interarrival": fit.spec()}  # type: ignore[union-attr]
        src_note = f"releases: {len(rel)} lots; interarrival {rep}"
        if len(lost):
            src_note += f"; {len(lost)} of them turned away at a full entrance (lost) and counted as arrivals"
        else:
            src_note += ("; no arrival was turned away (the log has no 'lost' events), so the entrance is left "
                         "unlimited: a line that turns work away at a full entrance should log it as 'lost'")
    else:
        src = {"kind": "saturated"}
    spec = {"name": name, "description": f"calibrated from {source}" if source else "calibrated from an event log",
            "source": src, "products": products, "stations": stations,
            "run": {"horizon": float(f"{m['horizon']:.6g}"), "warmup": 0.0, "replications": 5, "seed": 1}}
    head = [f"Calibrated by twin calibrate from {source or 'an event log'}: {len(df)} events,",
            f"{m['horizon'] / HOUR:.1f} h, {len(m['releases'])} lots. Fits are maximum likelihood, chosen by AIC;",
            "KS D is the Kolmogorov-Smirnov distance of the chosen fit (smaller is better).",
            *textwrap.wrap(src_note, 100)]
    text = toml_text.dumps(spec, lambda table, i: notes[station_order[i]] if table == "stations" else [])
    out = [f"# {x}" for x in head] + text.splitlines()
    # validate what we wrote: a calibration must give a runnable spec

    validate(tomllib.loads("\n".join(out)), source=f"{source or 'the log'} (the spec calibrated from it)")
    return "\n".join(out) + "\n", warnings


# --------------------------------------------------------------------------- check
def log_kpis(df: pd.DataFrame, m: dict[str, Any] | None = None) -> dict[str, Any]:
    """Throughput (units/h), lead time (s) and per-station state fractions observed in a log."""
    m = m or measure(df)
    h = m["horizon"]
    leave = m["leave"]
    last = {p: r for p, c in m["routes"].items() for r in [c.most_common(1)[0][0][-1]]}
    done = leave[(leave["station"].to_numpy() == leave["product"].map(last).to_numpy()) & (leave["qty"] > 0)]
    rel = m["releases"].set_index("lot")["t"]
    units = float(done["qty"].sum())
    lt = (done["t"].to_numpy() - rel.reindex(done["lot"]).to_numpy())
    w = done["qty"].to_numpy(dtype=float)
    # units, as the simulation counts its lost share
    n_lost = float(m["lost"]["qty"].fillna(1).sum())
    n_arrived = n_lost + float(m["releases"]["qty"].fillna(1).sum())
    out: dict[str, Any] = {"throughput_per_hour": units / h * HOUR if h > 0 else float("nan"),
                           "lost_share": n_lost / n_arrived if n_arrived else 0.0,
                           "lead_time_mean_s": float(np.average(lt, weights=w)) if w.sum() > 0 else float("nan"),
                           "stations": {}}
    for st, g in df[df["server"].notna()].groupby("station"):
        n = g["server"].nunique()
        tot = n * h
        pr = m["proc"][m["proc"]["station"] == st]
        dn = m["down"][m["down"]["station"] == st]
        pm = m["pm"][m["pm"]["station"] == st]
        su = m["setups"][m["setups"]["station"] == st]
        bl = m["blocked"][m["blocked"]["station"] == st]
        down = float((dn["t1"] - dn["t0"]).sum())
        maint = float((pm["t1"] - pm["t0"]).sum())
        busy = float(pr["work"].sum())
        setup = float((su["t1"] - su["t0"]).sum())
        blocked = float((bl["t1"] - bl["t0"]).sum())
        fr = {State.BUSY.key: busy / tot, State.SETUP.key: setup / tot, State.BLOCKED.key: blocked / tot,
              State.DOWN.key: down / tot, State.MAINTENANCE.key: maint / tot}
        fr[State.IDLE.key] = max(0.0, 1 - sum(fr.values()))
        out["stations"][st] = fr
    return out


def check(spec: Any, df: pd.DataFrame, replications: int = 10, seed: int = 1) -> dict[str, Any]:
    """Simulate ``spec`` over the log's horizon with the log's releases; compare with the log.

    Each row: the log's value, the runs' mean, CI and 95 % prediction interval of one run (the
    lead time on the log scale), the prediction p-value ``p`` and its Holm adjustment over all
    rows, and ``verdict``: ``DIFFERS`` (Holm-adjusted p below :data:`CHECK_ALPHA`), ``ok``, or
    ``cannot tell`` for a lead time the runs scatter too much to catch a factor of
    :data:`LEAD_TIME_FACTOR` (with ``log_length_needed``: how many times longer a log would do)."""
    from scipy.stats import t as student_t  # 0.8 s of CPU to import: only when a check runs

    m = measure(df)
    h = m["horizon"]
    stations = {st.name for st in spec.stations}
    strangers = sorted(set(df["station"]) - stations)
    if strangers:
        raise SpecError([f"the log's station(s) {', '.join(strangers)} are not in the spec (stations: "
                         f"{', '.join(sorted(stations))}); a check compares like with like"])
    names = [p.name for p in spec.products]
    rel = m["releases"]
    unknown = sorted(set(rel["product"]) - set(names))
    if unknown:
        raise SpecError([f"the log's product(s) {', '.join(unknown)} are not in the spec (products: {', '.join(names)})"])
    # a saturated line pulls its own work: replaying its releases would feed a line that runs
    # a little slower than the log's with exactly its pace (a queue at utilisation 1)
    # a log that records its turned-away arrivals (``lost``) replays them too, and the spec's
    # entrance decides again which are turned away
    lossy = len(m["lost"]) > 0
    arrived = pd.concat([rel, m["lost"]]).sort_values("t", kind="stable") if lossy else rel
    replay = None if spec.source.kind == "saturated" else [
        (float(r.t), names.index(r.product), int(r.qty) if not math.isnan(r.qty) else 1)
        for r in arrived.itertuples(index=False)]
    obs = log_kpis(df, m)
    sims: list[dict[str, Any]] = []
    for r in range(replications):
        res = run_once(spec, h, 0.0, replication_seed(seed, r), replay=replay, replay_lossy=lossy)
        k = res.kpis.iloc[0]
        st = res.stations
        sims.append({"throughput_per_hour": float(k["throughput_per_hour"]),
                     "lead_time_mean_s": float(k["lead_time_mean_s"]),
                     "lost_share": float(k["lost_share"]),
                     "stations": {n: {c: float(st.loc[n, c]) for c in STATE_COLS}
                                  for n in st.index}})
    rows: list[dict[str, Any]] = []

    def add(metric: str, observed: float, values: list[float], floor: float = 0.0, ratio: bool = False) -> None:
        x = np.array(values)
        mean, ci = mean_ci(x)
        n = len(x)
        # the log is one more realisation: judge it by the prediction interval of one run; a lead
        # time (positive, right-skewed: a long repair in one run) on the log scale, where an
        # error shows as a factor
        use_log = ratio and observed > 0 and bool((x > 0).all())
        y, o = (np.log(x), math.log(observed)) if use_log else (x, observed)
        centre = float(y.mean())
        scale = float(y.std(ddof=1) * math.sqrt(1 + 1 / n)) if n > 1 else float("nan")
        pi = float(t975(n - 1) * scale) if n > 1 else float("nan")
        gap = abs(o - centre)
        tol = max(floor if not use_log else 0.0, 1e-9 * max(1.0, abs(centre)))
        if gap <= tol:
            p = 1.0
        elif not (math.isfinite(scale) and scale > 0):
            p = 0.0  # no spread in the runs and the log lies outside it
        else:
            p = float(2 * student_t.sf(gap / scale, n - 1))
        lo, hi = (math.exp(centre - pi), math.exp(centre + pi)) if use_log and math.isfinite(pi) else (
            mean - pi, mean + pi)
        rows.append({"metric": metric, "log": observed, "sim_mean": mean, "sim_ci95": ci,
                     "sim_pi95": float(pi if not use_log else (hi - lo) / 2), "pi95": [lo, hi],
                     "scale": "log" if use_log else "linear", "p": p, "within_pi": bool(p >= 0.05),
                     "_scale": scale, "_log": use_log})

    add("throughput_per_hour", obs["throughput_per_hour"], [s["throughput_per_hour"] for s in sims])
    add("lead_time_mean_s", obs["lead_time_mean_s"], [s["lead_time_mean_s"] for s in sims], ratio=True)
    if lossy and replay is not None:
        add("lost_share", obs["lost_share"], [s["lost_share"] for s in sims])
    for st, fr in obs["stations"].items():
        for c in STATE_COLS:
            if st in sims[0]["stations"] and (c != State.MAINTENANCE.key or fr[c] > 0 or
                                              any(s["stations"][st][c] > 0 for s in sims)):
                # a state the simulation never shows has no spread: differences under
                # STATE_FLOOR of the time (seconds of timestamp rounding) count as agreement
                add(f"{st}.{c}", fr[c], [s["stations"][st][c] for s in sims], STATE_FLOOR)
    # the exit code answers one question for all rows: Holm keeps the chance that a right model
    # is reported as differing anywhere at 5 % (each row at 95 % would flag it in about a third
    # of one-day logs of a three-station line)
    # a row whose runs show no spread is judged exactly (equal within its floor, or not): it
    # cannot differ by chance, so it does not widen the family of the others
    random_rows = [math.isfinite(row["_scale"]) and row["_scale"] > 0 for row in rows]
    family = [row["p"] if rnd else float("nan") for row, rnd in zip(rows, random_rows)]
    adjusted = [pa if rnd else row["p"] for row, pa, rnd in zip(rows, holm(family), random_rows)]
    levels = holm_levels(family, CHECK_ALPHA)
    for row, pa, level in zip(rows, adjusted, levels):
        row["p_holm"] = pa
        row["verdict"] = "DIFFERS" if pa < CHECK_ALPHA else "ok"
        scale, use_log = row.pop("_scale"), row.pop("_log")
        if use_log and row["verdict"] == "ok" and math.isfinite(scale) and scale > 0:
            # the widest error this row could still miss at its Holm level: beyond a factor of 3
            # the log cannot judge the lead time, and says by how much longer it would have to be
            n = replications
            half = float(student_t.isf(level / 2, n - 1) * scale)
            row["undetectable_factor"] = math.exp(half)
            if half > math.log(LEAD_TIME_FACTOR):
                row["verdict"] = "cannot tell"
                row["log_length_needed"] = (half / math.log(LEAD_TIME_FACTOR)) ** 2
    return {"horizon": h, "replications": replications, "seed": seed, "replayed": replay is not None, "rows": rows}
