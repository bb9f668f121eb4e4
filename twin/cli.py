"""The ``twin`` command: its parser, and the dispatch to :mod:`twin.commands`.

Exit codes: 0 success, 2 bad input (every problem listed, no traceback, nothing
written), 1 internal error. This module imports only what parsing needs; a command's own
modules are loaded when it runs.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import shlex
import signal
import sys
import threading
import time
from typing import Any, Callable, NoReturn, Sequence

from . import __version__
from .limits import MAX_HORIZON, MAX_REPLICATIONS, MAX_SEED, MAX_SHARDS
from .names import safe_text
from .units import HOUR, MINUTE, WEEK, parse_duration


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # noqa: D401 - argparse API
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:  # a mistyped command: suggest the closest
            choices = re.findall(r"'([^']*)'", m.group(2))
            close = difflib.get_close_matches(m.group(1), choices, n=1)
            if close:
                message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        sys.stderr.write(safe_text(f"{self.prog}: error: {message}\n"))
        raise SystemExit(2)


def _duration_arg(name: str):
    def conv(v: str) -> float:
        try:
            d = parse_duration(v)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if not math.isfinite(d) or d < 0:
            raise argparse.ArgumentTypeError(f"must be a finite duration >= 0, got {v!r}")
        if d > MAX_HORIZON:
            raise argparse.ArgumentTypeError(f"{v} is more than 20 years ({MAX_HORIZON:g} s)")
        return d

    return conv


def _window_arg(v: str) -> tuple[float, float]:
    """``FROM..TO`` or ``FROM+LENGTH`` (durations from the run's start), e.g. ``1d..1d8h`` or ``30h+6h``."""
    conv = _duration_arg("--animate")
    if ".." in v:
        a, _, b = v.partition("..")
        lo, hi = conv(a), conv(b)
    elif "+" in v:
        a, _, b = v.partition("+")
        lo = conv(a)
        hi = lo + conv(b)
    else:
        raise argparse.ArgumentTypeError(f"{v!r} is not FROM..TO or FROM+LENGTH (e.g. 1d..1d8h or 30h+6h)")
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"{v!r}: the window ends before it begins")
    return lo, hi


def _warmup_arg(v: str) -> float | str:
    return "auto" if v.strip().lower() == "auto" else _duration_arg("--warmup")(v)


def _positive_int(name: str, maximum: int = MAX_REPLICATIONS):
    def conv(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {v!r}") from None
        if not 1 <= n <= maximum:
            raise argparse.ArgumentTypeError(f"must be between 1 and {maximum}, got {n}")
        return n

    return conv


def _seed(v: str) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {v!r}") from None
    if not 0 <= n <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_SEED}, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="twin", description="Factory digital-twin simulator (model time in seconds). "
                "Start with 'twin list', 'twin run dark-factory' or 'twin compare --quick'.")
    p.add_argument("--version", action="version", version=f"twin {__version__}")
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars and no notes on stderr")
    common.add_argument("-v", "--verbose", action="store_true", help="say what is being done and how long it took")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add = sub.add_parser

    def add_parser(name: str, help: str) -> argparse.ArgumentParser:
        sp = _add(name, help=help, description=help[0].upper() + help[1:] + ".", parents=[common])
        p.commands[name] = sp  # type: ignore[attr-defined]
        return sp

    p.commands = {}  # type: ignore[attr-defined]

    sub.add_parser = add_parser  # type: ignore[method-assign, assignment]

    r = sub.add_parser("run", help="simulate a spec (file or built-in name) and print its KPIs")
    r.add_argument("spec", help="spec file (TOML) or built-in factory name (static-line, dark-factory, microfactory)")
    r.add_argument("--horizon", type=_duration_arg("--horizon"), help="simulated time, e.g. 4w (default: spec)")
    r.add_argument("--warmup", type=_warmup_arg, help="warm-up removed from KPIs, e.g. 1d, or 'auto' "
                   "(measured by MSER on the WIP series)")
    r.add_argument("--replications", type=_positive_int("--replications"), help="independent replications")
    r.add_argument("--seed", type=_seed, help="base seed (same seed => identical results)")
    r.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    r.add_argument("--out", help="folder for kpis.json and tidy CSVs")
    r.add_argument("--event-log", metavar="FILE", help="write the first replication's event log (CSV, or .parquet)")
    r.add_argument("--from-state", metavar="SNAPSHOT", help="start from this snapshot of the line (JSON, "
                   "docs/snapshot.md) at its time, with no warm-up; --horizon counts from it")
    r.add_argument("--write-state", metavar="FILE", help="write the first replication's state at the end "
                   "of the run as a snapshot (JSON)")
    r.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a spec value, e.g. stations.smt.servers=3 (TOML value; repeatable)")
    anim = r.add_mutually_exclusive_group()
    anim.add_argument("--animate", type=_window_arg, metavar="WINDOW",
                      help="the replay's window in report.html, FROM..TO or FROM+LENGTH from the run's start "
                      "(default: the first day after the warm-up)")
    anim.add_argument("--no-animate", action="store_true", help="leave the replay out of report.html")

    k = sub.add_parser("calibrate", help="infer a spec from a line's event log")
    k.add_argument("log", help="event log (CSV or .parquet)")
    k.add_argument("--out", required=True, help="spec file to write (TOML)")
    k.add_argument("--map", help="your column names: ours=theirs,... e.g. timestamp=ts,station=machine")
    k.add_argument("--name", default="calibrated line", help="name of the written spec")
    k.add_argument("--json", action="store_true", help="print {out, spec, warnings} as JSON (the spec as data) "
                   "instead of the summary line")

    h = sub.add_parser("check", help="simulate a spec with a log's releases and compare it with the log")
    h.add_argument("spec", help="spec file (TOML) or built-in factory name")
    h.add_argument("log", help="event log (CSV or .parquet) with timestamp, station, server, lot, product, qty, event")
    h.add_argument("--map", help="your column names: ours=theirs,...")
    h.add_argument("--replications", type=_positive_int("--replications"), default=10,
                   help="simulated replications to compare the log with (default 10)")
    h.add_argument("--seed", type=_seed, default=1, help="base seed of the replications (default 1)")
    h.add_argument("--json", action="store_true", help="print JSON instead of a table")

    lv = sub.add_parser("live", help="mirror a running line from its MQTT event stream and publish forecasts")
    lv.add_argument("spec", help="spec file (TOML) of the line, e.g. from twin calibrate")
    lv.add_argument("--broker", required=True, help="the MQTT broker, mqtt://HOST:PORT")
    lv.add_argument("--topic-prefix", required=True, metavar="P",
                    help="events on P/events, orders on P/orders, forecasts published on P/forecast")
    lv.add_argument("--every", type=_duration_arg("--every"), default=15 * MINUTE,
                    help="forecast cadence in the line's own time (default 15min)")
    lv.add_argument("--horizon", type=_duration_arg("--horizon"), default=8 * HOUR,
                    help="how far each forecast looks ahead (default 8h)")
    lv.add_argument("--replications", type=_positive_int("--replications"), default=20,
                    help="simulated runs per forecast (default 20)")
    lv.add_argument("--seed", type=_seed, default=1, help="base seed of the forecasts (default 1)")
    lv.add_argument("--heartbeat", type=_duration_arg("--heartbeat"), default=HOUR,
                    help="a station with no event for longer than this (line time) is listed as stale (default 1h)")
    lv.add_argument("--until-idle", type=_duration_arg("--until-idle"),
                    help="stop when no message has come for this long of wall time (default: run until stopped)")
    lv.add_argument("--forecasts", metavar="FILE", help="also append every forecast to FILE (JSON lines)")
    lv.add_argument("--score", action="store_true",
                    help="at the end, score the forecasts whose horizon has passed (P10-P90 coverage, CRPS)")
    lv.add_argument("--serve", metavar="HOST:PORT", help="serve the live page (state and latest forecast) there")

    rp = sub.add_parser("replay", help="publish an event log on MQTT as a running line would")
    rp.add_argument("log", help="event log (CSV or .parquet)")
    rp.add_argument("--broker", required=True, help="the MQTT broker, mqtt://HOST:PORT")
    rp.add_argument("--topic-prefix", required=True, metavar="P", help="publish on P/events")
    rp.add_argument("--speed", default="3600x", help="how much faster than the line: e.g. 3600x (an hour a "
                    "second), 1x (real time) or max (as fast as the broker takes them; default 3600x)")
    rp.add_argument("--map", help="your column names: ours=theirs,...")

    bt = sub.add_parser("backtest", help="forecast along a recorded event log and score the forecasts")
    bt.add_argument("log", help="event log (CSV or .parquet)")
    bt.add_argument("spec", help="spec file (TOML) of the line")
    bt.add_argument("--map", help="your column names: ours=theirs,...")
    bt.add_argument("--every", type=_duration_arg("--every"), default=HOUR, help="forecast cadence (default 1h)")
    bt.add_argument("--horizon", action="append", type=_duration_arg("--horizon"), metavar="DURATION",
                    help="a horizon to score (repeatable; default 1h, 4h and 8h)")
    bt.add_argument("--replications", type=_positive_int("--replications"), default=20,
                    help="simulated runs per forecast (default 20)")
    bt.add_argument("--seed", type=_seed, default=1, help="base seed (default 1)")
    bt.add_argument("--json", action="store_true", help="print JSON instead of a table")

    w = sub.add_parser("sweep", help="run a spec over a grid of parameter values (what-if study)")
    w.add_argument("spec", help="spec file (TOML) or built-in factory name")
    w.add_argument("--vary", action="append", default=[], metavar="PATH=V1,V2,...", required=True,
                   help="a spec path and its values (TOML values, comma-separated or a TOML array); "
                        "repeat for a grid, e.g. --vary stations.smt.servers=1,2,3")
    w.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="a fixed override for every point (repeatable)")
    w.add_argument("--horizon", type=_duration_arg("--horizon"), help="simulated time, e.g. 4w (default: spec)")
    w.add_argument("--warmup", type=_duration_arg("--warmup"), help="warm-up removed from KPIs, e.g. 1d")
    w.add_argument("--replications", type=_positive_int("--replications"), help="replications per point")
    w.add_argument("--seed", type=_seed, help="base seed: every point gets the same replication seeds")
    w.add_argument("--jobs", type=_positive_int("--jobs"), help="parallel local processes (default: all cores)")
    w.add_argument("--executor", choices=["local", "dask"], default="local", help="local processes or Dask")
    w.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a local cluster)")
    w.add_argument("--engine", choices=["auto", "simpy", "serial"], default="auto",
                   help="auto (default): saturated serial lines by their exact recursion, the same results many "
                        "times faster, other specs by SimPy events; simpy: always events; serial: refuse a spec "
                        "the recursion cannot take, saying why")
    w.add_argument("--out", help="folder for sweep.csv (per replication), sweep_summary.csv, kpis.json and report.html")
    w.add_argument("--json", action="store_true", help="print the per-point summary as JSON")
    w.add_argument("--shard", type=_shard_arg, metavar="I/N", help="run only shard I of N (I from 0 to N-1) of the jobs and store them in --out; twin merge joins the N folders into the whole run's report, byte for byte")

    i = sub.add_parser("init", help="write a commented starter spec to edit")
    i.add_argument("file", help="spec file to create, e.g. line.toml")
    i.add_argument("--force", action="store_true", help="overwrite an existing file")

    v = sub.add_parser("validate", help="check a spec without running it")
    v.add_argument("spec", help="spec file (TOML) or built-in factory name")
    v.add_argument("--json", action="store_true", help="print {ok, problems, warnings, ...} as JSON on stdout "
                   "(exit 2 when not ok)")

    li = sub.add_parser("list", help="list the built-in factories and scenarios")
    li.add_argument("--json", action="store_true", help="print the factories and scenarios as JSON")
    c = sub.add_parser("compare", help="the reference factories side by side under demand scenarios")
    c.add_argument("--factories", nargs="+", metavar="F", help="factory names or spec files, by spaces or commas "
                   "(default: static-line dark-factory microfactory)")
    c.add_argument("--scenarios", nargs="+", metavar="S", help="scenario names or files, by spaces or commas "
                   "(default: all nine in benchmarks/scenarios)")
    c.add_argument("--replications", type=_positive_int("--replications"), help="replications (default 5; quick 2)")
    c.add_argument("--weeks", type=_positive_float("--weeks", MAX_HORIZON / WEEK), help="weeks observed after warm-up (default 26; quick: 10, or longer to see "
                   "every scenario's shift end and 3 weeks after it: 14 with the surge)")
    c.add_argument("--warmup", type=_warmup_arg, help="warm-up before observation (default 2w; quick 1w), or "
                   "'auto': measured by MSER on each factory's WIP under the first scenario, the longest kept")
    c.add_argument("--seed", type=_seed, default=1, help="base seed (default 1)")
    c.add_argument("--quick", action="store_true", help="a short profile for CI: 2 replications, every shift and 3 weeks after it "
                   "(14 weeks with the surge)")
    c.add_argument("--jobs", type=_positive_int("--jobs"), help="parallel local processes (default: all cores)")
    c.add_argument("--out", default="compare-out", help="output folder (default compare-out/)")
    c.add_argument("--resume", action="store_true", help="reuse the finished jobs stored in OUT/jobs")
    c.add_argument("--no-animate", action="store_true", help="leave the replays out of report.html "
                   "(each factory's and scenario's first replication is otherwise watched for one)")
    c.add_argument("--set", action="append", default=[], metavar="[FACTORY:]PATH=VALUE",
                   help="override a factory's spec value before the scenarios, e.g. "
                        "dark-factory:costs.energy_per_kwh=0.2, or demand.base_per_week=230000 for every factory; "
                        "stations.*.lanes=13 changes every station "
                        "(TOML value; repeatable)")
    c.add_argument("--uncertainty", type=_positive_int("--uncertainty", 1000), metavar="N",
                   help="also run N behavioural worlds drawn by Latin hypercube in the plausible ranges of the "
                        "estimated parameters that are not prices, each priced again under --price-draws draws of "
                        "the prices; report each factory's probability of being the best, with its interval")
    c.add_argument("--designs", nargs="?", const="", metavar="FILE",
                   help="also run each factory's candidate designs (default: the reference factories' "
                        "lines/designs.toml) on the same seeds: Pareto fronts of baseline conversion cost against "
                        "surge fill rate and recovery; with --uncertainty, each factory takes its best candidate "
                        "in every world by the design protocol's rule")
    c.add_argument("--price-draws", type=_positive_int("--price-draws", 100_000), default=200, metavar="M",
                   help="price draws per behavioural world (default 200; free: the runs are priced again, "
                        "not simulated)")
    c.add_argument("--uncertainty-file", metavar="FILE",
                   help="the ranges (default: the reference factories' lines/uncertainty.toml)")
    c.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local processes (default) or a Dask distributed cluster (pip install -e '.[dask]')")
    c.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a local cluster)")
    c.add_argument("--json", action="store_true", help="print kpis.json on stdout instead of the tables")
    c.add_argument("--shard", type=_shard_arg, metavar="I/N", help="run only shard I of N (I from 0 to N-1) of the jobs and store them in --out; twin merge joins the N folders into the whole run's report, byte for byte")
    o = sub.add_parser("optimize", help="search a design space under constraints for the best design (optuna)")
    o.add_argument("spec", help="spec file (TOML) or built-in factory name")
    o.add_argument("--vary", action="append", default=[], metavar="PATH=LOW..HIGH|V1,V2,...", required=True,
                   help="a varied spec path: an integer range 0..6, a real interval 0.5..2 or 2h..12h, or a "
                        "list of values (repeatable)")
    o.add_argument("--maximize", action="append", default=[], metavar="KPI", help="a KPI to maximize")
    o.add_argument("--minimize", action="append", default=[], metavar="KPI", help="a KPI to minimize")
    o.add_argument("--constraint", action="append", default=[], metavar="EXPR",
                   help="a comparison over varied paths, spec values and KPIs, e.g. "
                        "'stations.b.buffer + stations.c.buffer <= 6' or 'fill_rate >= 0.98' (repeatable)")
    o.add_argument("--trials", type=_positive_int("--trials"), default=30, help="designs to try (default 30)")
    o.add_argument("--replications", type=_positive_int("--replications"), default=3,
                   help="replications per design (default 3; the best few get twice that)")
    o.add_argument("--confirm", type=_positive_int("--confirm"), default=3,
                   help="best designs run again on fresh seeds to compare them (default 3)")
    o.add_argument("--scenarios", nargs="+", metavar="S",
                   help="run every design under each of these scenarios (names or .toml files, by spaces or "
                        "commas): a KPI is then "
                        "their equal-weight mean, SCENARIO.KPI one scenario's value (e.g. 'surge.fill_rate >= 0.95')")
    o.add_argument("--horizon", type=_duration_arg("--horizon"), help="simulated time, e.g. 4w (default: spec)")
    o.add_argument("--warmup", type=_duration_arg("--warmup"), help="warm-up removed from KPIs (default: spec)")
    o.add_argument("--seed", type=_seed, default=1, help="base seed (default 1): the run is reproducible from it")
    o.add_argument("--jobs", type=_positive_int("--jobs"), help="parallel local processes (default: all cores)")
    o.add_argument("--executor", choices=["local", "dask"], default="local", help="local processes or Dask")
    o.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a local cluster)")
    o.add_argument("--engine", choices=["auto", "simpy", "serial"], default="auto",
                   help="auto (default): designs that are saturated serial lines by their exact recursion (the "
                        "same results, many times faster), others by SimPy events; simpy: always events; "
                        "serial: refuse a design the recursion cannot take, saying why")
    o.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="a fixed override (repeatable)")
    o.add_argument("--storage", metavar="URL",
                   help="keep the study in journal:PATH (one host or a shared disk) or a database "
                        "(postgresql://USER@HOST/DB, sqlite:///FILE): several processes then run its trials, "
                        "--trials counting all of theirs; needs --study")
    o.add_argument("--study", metavar="NAME", help="the shared study's name in --storage (created by the first "
                   "process, joined by the others, which must pose the same problem)")
    o.add_argument("--out", help="write trials.csv, best.toml, kpis.json and report.html to this folder")
    o.add_argument("--json", action="store_true", help="print the result as JSON on stdout")

    a = sub.add_parser("ablate", help="what each capability of a factory is worth: paired differences with "
                       "each switched off")
    a.add_argument("factory", help="factory name or spec file with [[capabilities]]")
    a.add_argument("--scenarios", nargs="+", metavar="S", help="scenario names or files, by spaces or commas "
                   "(default: all nine; quick: baseline surge)")
    a.add_argument("--replications", type=_positive_int("--replications"), help="replications (default 5; quick 2)")
    a.add_argument("--weeks", type=_positive_float("--weeks", MAX_HORIZON / WEEK),
                   help="weeks observed after warm-up (default 26; quick 8)")
    a.add_argument("--warmup", type=_warmup_arg, help="warm-up before observation (default 2w; quick 1w)")
    a.add_argument("--seed", type=_seed, default=1, help="base seed (default 1)")
    a.add_argument("--quick", action="store_true", help="a short profile for CI: baseline and surge, 2 replications, 8 weeks")
    a.add_argument("--jobs", type=_positive_int("--jobs"), help="parallel local processes (default: all cores)")
    a.add_argument("--out", help="write kpis.json, ablation.csv, runs.csv and report.html to this folder")
    a.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    a.add_argument("--executor", choices=["local", "dask"], default="local",
                   help="local processes (default) or a Dask distributed cluster")
    a.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a local cluster)")
    a.add_argument("--shard", type=_shard_arg, metavar="I/N", help="run only shard I of N (I from 0 to N-1) of the jobs and store them in --out; twin merge joins the N folders into the whole run's report, byte for byte")
    g = sub.add_parser("gate", help="judge a spec's or compare grid's KPIs against a recorded baseline on its seeds "
                       "(exit 0 pass or inconclusive, 1 regression, 2 bad input)")
    g.add_argument("target", nargs="?", help="spec file (TOML) or built-in factory name; or leave out and give --compare")
    g.add_argument("--baseline", required=True, metavar="FILE", help="the baseline file (JSON) to judge against or record")
    g.add_argument("--update-baseline", action="store_true", help="run and record the baseline (with the run options given)")
    g.add_argument("--tolerance", action="append", default=[], metavar="KPI=SHARE",
                   help="tolerance in the bad direction, e.g. unit_cost=0.02 (relative for throughput, costs, "
                        "lead times, WIP; points of a share for fill_rate, oee); defaults: throughput -1 %%, "
                        "unit cost +1 %%, fill rate -1 point, lead time +5 %%, OEE -1 point (repeatable)")
    g.add_argument("--compare", action="store_true", help="gate a compare grid (--factories, --scenarios, --weeks)")
    g.add_argument("--factories", nargs="+", metavar="F", help="with --compare: factories (default: the three reference ones)")
    g.add_argument("--scenarios", nargs="+", metavar="S", help="with --compare: scenarios (default: baseline)")
    g.add_argument("--weeks", type=_positive_float("--weeks", MAX_HORIZON / WEEK), help="with --compare: weeks observed (default 10)")
    g.add_argument("--horizon", type=_duration_arg("--horizon"), help="simulated time of a spec target (default: spec)")
    g.add_argument("--warmup", type=_duration_arg("--warmup"), help="warm-up removed from KPIs (default: spec; compare 1w)")
    g.add_argument("--replications", type=_positive_int("--replications"), help="replications (default: spec; compare 5)")
    g.add_argument("--seed", type=_seed, help="base seed (default: spec; compare 1)")
    g.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a spec value (repeatable)")
    g.add_argument("--jobs", type=_positive_int("--jobs"), help="with --compare: parallel local processes")
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML: one test case per factory × scenario × KPI")
    g.add_argument("--summary", metavar="FILE", help="write the Markdown table (also appended to $GITHUB_STEP_SUMMARY when set)")
    g.add_argument("--json", action="store_true", help="print JSON: the verdicts and github-action-benchmark's custom entries")

    m = sub.add_parser("merge", help="join the shard folders of one compare, sweep or ablate run into the "
                       "report of the whole (byte-identical to the unsharded run)")
    m.add_argument("shards", nargs="+", metavar="DIR", help="the --out folders of the N shards (--shard I/N)")
    m.add_argument("--out", required=True, help="folder for the whole run's files")
    sc = sub.add_parser("completion", help="print a shell completion script (bash, zsh or tcsh)")
    sc.add_argument("shell", choices=["bash", "zsh", "tcsh"], help="the shell, e.g. "
                    "twin completion bash > ~/.local/share/bash-completion/completions/twin")
    return p


def _parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` → ``(I, N)``: shard I (0 to N − 1, as Slurm's ``--array=0-<N-1>`` numbers its
    tasks) of N; :class:`ValueError` with the reason otherwise."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if not m:
        raise ValueError(f"expected I/N, e.g. 0/4 (shard I of N, I from 0 to N-1), got {text!r}")
    i, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= MAX_SHARDS:
        raise ValueError(f"N must be 1 to {MAX_SHARDS:,}, got {n}")
    if i >= n:
        raise ValueError(f"I counts from 0 to N-1 = {n - 1} (as Slurm's --array=0-{n - 1}), got {i}")
    return i, n


def canonical_argv(argv: list[str], options: list[str]) -> list[str]:
    """``argv`` with every abbreviated long option (argparse takes a unique prefix) written out
    in full, so that a recorded command names its options one way."""
    out: list[str] = []
    for k, t in enumerate(argv):
        if t == "--":
            return out + argv[k:]
        name, eq, value = t.partition("=")
        if name.startswith("--") and name not in options:
            hits = [o for o in options if o.startswith(name)]
            if len(hits) == 1:
                t = hits[0] + eq + value
        out.append(t)
    return out


def _shard_arg(v: str) -> tuple[int, int]:
    try:
        return _parse_shard(v)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--shard: {e}") from None


def _positive_float(name: str, maximum: float | None = None):
    def conv(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {v!r}") from None
        if not x > 0 or not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
        if maximum is not None and x > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum:g}, got {v}")
        return x

    return conv


def _blank_options(sp: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options and arguments given as empty or blank text (``--out ''`` would mean the
    current folder; no value of twin's is blank)."""
    out = []
    for a in sp._actions:
        v = getattr(args, a.dest, None)
        if a.nargs == "?" and v == a.const:  # a bare flag (``--designs``) stands for its default
            continue
        vals = v if isinstance(v, list) else [v]
        if any(isinstance(x, str) and not x.strip() for x in vals):
            out.append(a.option_strings[0] if a.option_strings else a.dest.upper())
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:
        parser.print_help()
        return 0
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # a flag the command does not know: its own usage, and the closest flag it has
            sp = parser.commands.get(args.command, parser)  # type: ignore[attr-defined]
            known = [o for a in sp._actions for o in a.option_strings]
            hints = [f"{x!r} (did you mean {c[0]!r}?)" if (c := difflib.get_close_matches(x.split("=")[0], known, n=1))
                     else repr(x) for x in extra]
            sp.error(f"unrecognized arguments: {', '.join(hints)}")
        sp = parser.commands.get(args.command, parser)  # type: ignore[attr-defined]
        # abbreviations written out: a recorded command (a shard's, kpis.json's) names each option one way
        argv = [argv[0]] + canonical_argv(argv[1:], [o for a in sp._actions for o in a.option_strings
                                                      if o.startswith("--")])
        blank = _blank_options(sp, args)
        if blank:
            sp.error("; ".join(f"{o}: an empty value (a path or a name needs at least one character)" for o in blank))
    except SystemExit as e:
        return int(e.code or 0)
    if args.command is None:
        parser.print_help()
        return 0
    from . import commands
    from .commands import _QUIET, _warn
    from .spec import SpecError

    _QUIET[0] = bool(getattr(args, "quiet", False))
    t0 = time.perf_counter()
    previous = _catch_sigterm()
    try:
        if args.command == "list":
            return commands.cmd_list(args)
        if getattr(args, "verbose", False):
            _warn(f"twin {args.command}: {shlex.join(argv)}\n")
            rc = _dispatch(args, argv)
            _warn(f"twin {args.command}: done in {time.perf_counter() - t0:.1f} s (exit {rc})\n")
            return rc
        return _dispatch(args, argv)
    except SpecError as e:
        if getattr(args, "verbose", False):
            _warn(f"twin {args.command}: stopped after {time.perf_counter() - t0:.1f} s\n")
        for line in e.problems:
            _warn(f"error: {safe_text(line, keep_newlines=False)}\n")
        return 2
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        if getattr(args, "command", "") == "compare":
            _warn(f"\n{what}; finished jobs are kept in {args.out}/jobs — resume with:\n"
                  f"  twin {shlex.join(a for a in argv if a != '--resume')} --resume\n")
        else:
            _warn(f"{what}\n")
        return 143 if isinstance(e, Terminated) else 130
    except BrokenPipeError:
        # the reader (``| head``) went away: stop quietly, as Unix tools do, and keep
        # Python from complaining again when it flushes stdout at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main process so that a ``kill`` stops a command as Ctrl-C does:
    workers terminated, finished jobs kept, the resume hint printed (exit 143)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _catch_sigterm() -> Any:
    """Handle SIGTERM as Ctrl-C for this command (a scheduler's or a CI runner's ``kill`` stops
    workers and prints the resume hint); the previous handler, to restore, or None when it was
    not ours to take (a handler someone else set, or not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        return None
    signal.signal(signal.SIGTERM, _on_sigterm)
    return previous


def _print_completion(shell: str) -> int:
    from .completion import script

    sys.stdout.write(script(build_parser(), shell))
    return 0


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    """Run the command ``args`` names."""
    from . import commands as c

    run = {"run": lambda: c.cmd_run(args, argv), "validate": lambda: c.cmd_validate(args),
           "compare": lambda: c.cmd_compare(args, argv), "calibrate": lambda: c.cmd_calibrate(args),
           "check": lambda: c.cmd_check(args), "sweep": lambda: c.cmd_sweep(args, argv), "init": lambda: c.cmd_init(args),
           "ablate": lambda: c.cmd_ablate(args, argv), "optimize": lambda: c.cmd_optimize(args, argv),
           "completion": lambda: _print_completion(args.shell), "gate": lambda: c.cmd_gate(args),
           "merge": lambda: c.cmd_merge(args, _parse_recorded), "live": lambda: c.cmd_live(args),
           "replay": lambda: c.cmd_replay(args), "backtest": lambda: c.cmd_backtest(args)}
    return run[args.command]()


def _parse_recorded(argv: list[str]) -> tuple[argparse.Namespace, Callable[[argparse.Namespace, list[str]], int]]:
    """A recorded command line (a shard's) parsed as ``twin`` would, and the way to run it."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        raise ValueError("twin cannot parse it") from None
    return args, _dispatch




if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
