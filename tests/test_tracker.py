"""Folding a line's events into its state (issue 27, part 2): the log of a run, folded up to
time t, gives exactly the model's own state at t; bad events are refused and change nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from test_snapshot import RICH, _spec
from twin.eventlog import log_frame
from twin.model import Model
from twin.runs import run_once
from twin.tracker import EventError, StateTracker

SATURATED = """
name = "sat"
[source]
kind = "saturated"
[[products]]
name = "a"
route = ["press", "paint", "pack"]
share = 0.5
[[products]]
name = "b"
route = ["press", "paint", "pack"]
share = 0.5
[[stations]]
name = "press"
process_time = { dist = "exponential", mean = "50s" }
setup = { default = "40s" }
failures = { ttf = { dist = "lognormal", mean = "30min", cv = 1.2 }, ttr = { dist = "gamma", mean = "3min", cv = 0.5 } }
[[stations]]
name = "paint"
servers = 2
process_time = { dist = "normal", mean = "100s", cv = 0.3 }
buffer = 2
[[stations]]
name = "pack"
process_time = "45s"
buffer = 1
"""


def _as_data(snap) -> dict:
    return json.loads(snap.to_json())


def _close(want, got, path=""):
    """Equal, floats to 1e-6 s (the log's own and the engine's sums of the same spells)."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, abs=1e-6), path
    elif isinstance(want, dict):
        assert set(want) == set(got), path
        for k in want:
            _close(want[k], got[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(want) == len(got), path
        for i, (a, b) in enumerate(zip(want, got)):
            _close(a, b, f"{path}[{i}]")
    else:
        assert want == got, path


@pytest.mark.parametrize("text,seed", [(RICH, 11), (SATURATED, 4)], ids=["poisson-failures-setups", "saturated-blocking"])
def test_a_folded_log_gives_the_models_own_state(text, seed):
    spec = _spec(text)
    horizon = 10 * 3600.0
    # the log of the whole run: a stop under way at t is logged when it ends, so the log is cut at t
    traced = Model(spec, seed, horizon, trace=True)
    log = log_frame(traced.run(horizon))
    tracker = StateTracker(spec)
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(600, horizon - 600, 12))
    seen = set()
    done = 0
    for t in times:
        model = Model(spec, seed, horizon)  # the same run, stopped at t
        model.run(float(t))
        want = _as_data(model.snapshot())
        rows = log.iloc[done:]
        upto = rows[rows.timestamp < t]
        tracker.fold(upto)
        done += len(upto)
        got = _as_data(tracker.snapshot(float(t)))
        _close(want, got)
        seen |= {s["state"] for s in want["servers"]}
    assert {"busy", "idle" if text is RICH else "blocked"} <= seen


def test_a_tracked_state_starts_a_forecast(tmp_path):
    spec = _spec(RICH)
    log = log_frame(Model(spec, 3, 7200.0, trace=True).run(7200.0))
    snap = StateTracker(spec).fold(log[log.timestamp < 5000]).snapshot(5000.0)
    res = run_once(spec, 3600.0, 0.0, 1, state=snap)
    assert res.kpis.good_units.iloc[0] > 0
    assert res.lots.t_release.min() < 5000.0  # the lots in the line at the snapshot are there


@pytest.mark.parametrize("event,message", [
    ({"timestamp": 5.0, "station": "cut", "server": 0, "event": "explode"}, "unknown event 'explode'"),
    ({"timestamp": 5.0, "station": "drill", "server": 0, "event": "fail"}, "unknown station 'drill'"),
    ({"timestamp": 5.0, "station": "weld", "server": 7, "event": "fail"}, "weld: server 7 is not one of 0..1"),
    ({"timestamp": "noon", "station": "cut", "event": "fail", "server": 0}, "timestamp 'noon' is not a number"),
    ({"timestamp": 1.0, "station": "cut", "server": 0, "event": "fail"}, "earlier than the last one"),
    ({"timestamp": 6.0, "station": "cut", "lot": 3, "product": "zz", "qty": 1, "event": "arrive"}, "unknown product 'zz'"),
    ({"timestamp": 6.0, "station": "cut", "lot": -1, "product": "a", "qty": 1, "event": "arrive"}, "lot -1 is not a lot"),
])
def test_a_bad_event_is_refused_and_changes_nothing(event, message):
    tr = StateTracker(_spec(RICH))
    tr.apply({"timestamp": 2.0, "station": "cut", "lot": 0, "product": "a", "qty": 1, "event": "arrive"})
    before = tr.snapshot().to_json()
    with pytest.raises(EventError, match=message):
        tr.apply(event)
    assert tr.snapshot().to_json() == before and tr.events == 1
