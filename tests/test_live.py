"""The live twin end to end (issue 27): a real MQTT broker (Debian's mosquitto, started here on
127.0.0.1 with a temporary configuration; `.ci/run` installs it), `twin replay` playing a log,
`twin live` folding it and publishing retained forecasts, bad messages and a broker that comes
and goes, the live page in a real Chromium, and the scores of the forecasts."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from test_browser import CHROMIUM, FLAGS
from test_snapshot import RICH, _spec
from twin.cli import main
from twin.eventlog import log_frame, read_log, write_log
from twin.live import LiveTwin, crps, forecast, forecast_seed, pit, score
from twin.model import Model
from twin.runs import replication_seed, run_once

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)
needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="no mosquitto on this machine (apt-get install mosquitto; .ci/run installs it)")
GUARD = 120  # s: a guard against a hang only; nothing here is judged by how long it took


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, up: bool = True) -> None:
    end = time.monotonic() + GUARD
    while time.monotonic() < end:
        with socket.socket() as s:
            if (s.connect_ex(("127.0.0.1", port)) == 0) == up:
                return
        time.sleep(0.05)
    raise AssertionError(f"port {port} never came {'up' if up else 'down'}")


class Broker:
    """A mosquitto on 127.0.0.1: anonymous, no persistence, its own temporary configuration."""

    def __init__(self, tmp: Path, port: int | None = None):
        self.port = port or _free_port()
        self.conf = tmp / f"mosquitto-{self.port}.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Broker":
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=GUARD)
            self.proc = None
            _wait_port(self.port, up=False)


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("no mosquitto on this machine (apt-get install mosquitto; .ci/run installs it)")
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def _live(spec: Path, url: str, prefix: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "twin.cli", "live", str(spec), "--broker", url, "--topic-prefix", prefix,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def _wait_for(proc: subprocess.Popen, pattern: str, lines: list[str]) -> None:
    """Read ``proc``'s stderr into ``lines`` until a line matches ``pattern``."""
    end = time.monotonic() + GUARD
    while time.monotonic() < end:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line:
            raise AssertionError("twin live ended early:\n" + "".join(lines))
        lines.append(line)
        if re.search(pattern, line):
            return
    raise AssertionError(f"no line matching {pattern!r}:\n" + "".join(lines))


def _client(url: str):
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-{time.time_ns()}")
    port = int(url.rsplit(":", 1)[1])
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _publish(url: str, topic: str, payloads: list[str | bytes]) -> None:
    c = _client(url)
    try:
        for p in payloads:
            c.publish(topic, p, qos=1).wait_for_publish(timeout=GUARD)
    finally:
        c.loop_stop()
        c.disconnect()


def _retained(url: str, topic: str) -> dict:
    got: list[bytes] = []
    c = _client(url)
    c.on_message = lambda client, userdata, msg: got.append(msg.payload)
    c.subscribe(topic, qos=1)
    end = time.monotonic() + GUARD
    while not got and time.monotonic() < end:
        time.sleep(0.05)
    c.loop_stop()
    c.disconnect()
    assert got, f"nothing retained on {topic}"
    return json.loads(got[0])


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """A spec and a 4 h event log of it (CSV, seconds)."""
    tmp = tmp_path_factory.mktemp("live")
    spec = tmp / "rich.toml"
    spec.write_text(RICH)
    rec = Model(_spec(RICH), 5, 4 * 3600.0, trace=True).run(4 * 3600.0)
    log = tmp / "log.csv"
    write_log(rec, log)
    return spec, log


def _offline(spec_path: Path, log: Path, every: float, horizon: float, reps: int, seed: int) -> list[dict]:
    twin = LiveTwin(_spec(spec_path.read_text()), every, horizon, reps, seed, heartbeat=3600.0)
    df = read_log(log)
    for r in df.to_dict("records"):
        from twin.tracker import _plain

        twin.event(_plain(r))
    return twin.forecasts


@needs_broker
@pytest.mark.slow  # a 4 h log through a real broker and a twin process: 8 s (the default run is held to 4 min)
def test_a_replayed_log_gives_the_forecasts_of_the_offline_twin_retained_on_the_broker(broker, line, tmp_path):
    spec, log = line
    fc = tmp_path / "forecasts.jsonl"
    lines: list[str] = []
    proc = _live(spec, broker.url, "plant", "--every", "1h", "--horizon", "2h", "--replications", "5", "--seed", "3",
                 "--until-idle", "2s", "--forecasts", str(fc))
    try:
        _wait_for(proc, r"connected to 127\.0\.0\.1", lines)
        assert main(["replay", str(log), "--broker", broker.url, "--topic-prefix", "plant", "--speed", "max"]) == 0
        out, err = proc.communicate(timeout=GUARD)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines) + err
    logged = [json.loads(x) for x in fc.read_text().splitlines()]
    published = [x for x in logged if "as_of" in x]
    # the cadence counts in the line's time: the same forecasts as the twin fed the log directly
    assert published == _offline(spec, log, 3600.0, 7200.0, 5, 3)
    # beside them, what then happened to each forecast whose horizon the log covers, in its turn
    outcomes = {x["outcome_of"]: x for x in logged if "outcome_of" in x}
    ended = [f for f in published if f["as_of"] + 7200.0 < published[-1]["as_of"]]
    assert ended and set(outcomes) >= {f["as_of"] for f in ended}
    finished = read_log(log)  # (its clock starts at the log's first event, as the replay's does)
    last_leave = finished[(finished.event == "leave") & (finished.station == "test") & (finished.qty > 0)]
    for f in ended:
        made = last_leave[(last_leave.t > f["as_of"]) & (last_leave.t <= f["as_of"] + 7200.0)]
        o = outcomes[f["as_of"]]
        assert o["good_units"] == made.qty.sum()
        assert o["in_band"] == (f["output"]["p10"] <= o["good_units"] <= f["output"]["p90"])
    assert [f["as_of"] for f in published if f["as_of"] % 3600 == 0] == [3600.0 * k for k in range(1, 4)]
    last = _retained(broker.url, "plant/forecast")
    assert last == published[-1]
    assert set(last) >= {"as_of", "horizon", "output", "bottleneck", "orders", "stale", "spec"}
    assert last["output"]["p10"] <= last["output"]["p50"] <= last["output"]["p90"]


@needs_broker
@pytest.mark.slow  # a twin process that waits out its idle time: 7 s (the default run is held to 4 min)
def test_bad_messages_are_reported_and_the_twin_keeps_running(broker, line, tmp_path):
    spec, _ = line
    lines: list[str] = []
    proc = _live(spec, broker.url, "p2", "--every", "10min", "--horizon", "30min", "--replications", "3",
                 "--until-idle", "2s")
    good = [{"timestamp": 0.0, "station": "cut", "lot": 0, "product": "a", "qty": 1, "event": "arrive"},
            {"timestamp": 0.0, "station": "cut", "server": 0, "lot": 0, "product": "a", "qty": 1, "event": "start"},
            {"timestamp": 700.0, "station": "weld", "server": 1, "event": "fail"},
            {"timestamp": 900.0, "station": "cut", "lot": 1, "product": "b", "qty": 1, "event": "arrive"}]
    try:
        _wait_for(proc, "connected", lines)
        _publish(broker.url, "p2/events", [
            json.dumps(good[0]), json.dumps(good[1]),
            b"{not json", b"\xff\xfe", json.dumps([1, 2]),
            json.dumps({"timestamp": 5.0, "station": "paint", "server": 0, "event": "fail"}),
            json.dumps({"timestamp": 5.0, "station": "cut", "server": 0, "event": "fail", "colour": "red"}),
            json.dumps(good[2]),
            json.dumps({"timestamp": 100.0, "station": "cut", "server": 0, "event": "fail"}),  # out of order
            json.dumps(good[3])])
        _publish(broker.url, "p2/orders", [json.dumps({"id": "A1", "product": "zz", "qty": 5, "due": 5000}),
                                           json.dumps({"id": "A2", "product": "a", "qty": 3, "due": 4000})])
        out, err = proc.communicate(timeout=GUARD)
    finally:
        proc.kill()
    text = "".join(lines) + err
    assert proc.returncode == 0, text
    skipped = [ln for ln in text.splitlines() if "skipped a message" in ln]
    assert len(skipped) == 7, text
    for says in ("not a JSON object", "unknown station 'paint'", "unknown key 'colour'", "earlier than the last one",
                 "unknown product 'zz'"):
        assert says in text
    assert "Traceback" not in text
    # the failure and the order each made a forecast; the order's is about it
    assert "forecast as of 11.7 min" in text or "forecast as of 700 s" in text or re.search(r"forecast as of 1[12]", text), text
    last = _retained(broker.url, "p2/forecast")
    assert [o["id"] for o in last["orders"]] == ["A2"] and 0.0 <= last["orders"][0]["p_late"] <= 1.0


@needs_broker
@pytest.mark.slow  # waits out reconnection backoffs: about 8 s
def test_a_broker_that_is_down_then_comes_and_goes(tmp_path, line):
    spec, _ = line
    b = Broker(tmp_path)
    lines: list[str] = []
    proc = _live(spec, b.url, "p3", "--every", "10min", "--horizon", "20min", "--replications", "2", "--until-idle", "20s")
    try:
        _wait_for(proc, "cannot reach the broker", lines)
        b.start()
        _wait_for(proc, "connected", lines)
        ev = [{"timestamp": 60.0 * k, "station": "cut", "lot": k, "product": "a", "qty": 1, "event": "arrive"} for k in range(30)]
        _publish(b.url, "p3/events", [json.dumps(e) for e in ev[:15]])
        _wait_for(proc, "forecast as of", lines)
        b.stop()
        _wait_for(proc, "lost the broker", lines)
        b.start()
        _wait_for(proc, "connected", lines)
        _publish(b.url, "p3/events", [json.dumps(e) for e in ev[15:]])
        _wait_for(proc, "forecast as of 20 min", lines)
    finally:
        proc.kill()
        b.stop()
    assert "Traceback" not in "".join(lines)


@needs_broker
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_the_live_page_shows_a_failure(broker, line, tmp_path):
    spec, _ = line
    port = _free_port()
    lines: list[str] = []
    proc = _live(spec, broker.url, "p4", "--every", "1h", "--replications", "2", "--until-idle", "60s",
                 "--serve", f"127.0.0.1:{port}")
    try:
        _wait_for(proc, "connected", lines)
        _publish(broker.url, "p4/events", [json.dumps(e) for e in [
            {"timestamp": 10.0, "station": "weld", "lot": 4, "product": "b", "qty": 1, "event": "arrive"},
            {"timestamp": 10.0, "station": "weld", "server": 1, "lot": 4, "product": "b", "qty": 1, "event": "start"},
            {"timestamp": 1250.0, "station": "weld", "server": 1, "event": "fail"},
            {"timestamp": 1310.0, "station": "test", "lot": 2, "product": "a", "qty": 1, "event": "arrive"}]])
        end = time.monotonic() + GUARD
        while time.monotonic() < end:  # the twin has folded the failure
            state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/state", timeout=10).read())
            if state["down"]:
                break
            time.sleep(0.1)
        r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr",
                            "--v=0", "--window-size=1200,900", "--virtual-time-budget=5000", "--dump-dom",
                            f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=GUARD)
    finally:
        proc.kill()
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert re.search(r'data-station="weld".*?data-server="1" data-state="down"', dom, re.S), dom[:3000]
    down = re.search(r'<tr class="downrow"><td>weld</td><td>1</td><td>down</td><td>([^<]+)</td><td>([^<]+)</td>', dom)
    assert down and down.group(1) == "21 min" and down.group(2) == "60 s"  # down at 1250 s, 60 s before the last event
    assert re.search(r'data-station="test".*?data-level="1"', dom, re.S)
    floor = dom[dom.index('id="floor"'):dom.index('id="line"')]  # the same state on the floor plan
    assert 'data-server="weld/1" data-state="down"' in floor and 'data-server="weld/0" data-state="idle"' in floor
    assert 'class="fill" data-station="test" data-level="1"' in floor
    assert "line time 22 min (1310 s), 4 events" in dom
    assert not [ln for ln in r.stderr.splitlines() if "CONSOLE" in ln and "rror" in ln]
    # no external resources (the SVG namespace is a name, never fetched)
    assert "http://" not in re.sub(r"http://127\.0\.0\.1|http://www\.w3\.org/2000/svg", "", dom.split("<script>")[0])


# --------------------------------------------------------------------------- scores
def test_crps_and_pit_against_hand_computed_values():
    # CRPS of the ensemble {1, 3} for y = 2: E|X - 2| = 1, E|X - X'| = (0 + 2 + 2 + 0)/4 = 1 → 1 - 0.5
    assert crps([1.0, 3.0], 2.0) == pytest.approx(0.5)
    # a sure forecast: |x - y|
    assert crps([4.0, 4.0, 4.0], 1.0) == pytest.approx(3.0)
    # against the closed form for a normal (Gneiting & Raftery 2007): σ[z(2Φ(z) - 1) + 2φ(z) - 1/√π]
    from scipy.stats import norm

    x = np.random.default_rng(1).normal(10, 2, 20000)
    z = (11 - 10) / 2
    exact = 2 * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / math.sqrt(math.pi))
    assert crps(x, 11.0) == pytest.approx(exact, abs=0.02)
    assert pit([1, 2, 2, 3], 2, 0.0) == 0.25 and pit([1, 2, 2, 3], 2, 1.0) == 0.75 and pit([1, 2], 5, 0.3) == 1.0


def test_the_lean_forecast_reads_what_the_full_tables_say(line):
    spec = _spec(RICH)
    m = Model(spec, 5, 86400.0)
    m.run(30011.0)
    snap = m.snapshot()
    f = forecast(spec, snap, 3600.0, 8, 4)
    base = forecast_seed(4, snap.time)
    full = [run_once(spec, 3600.0, 0.0, replication_seed(base, r), state=snap).kpis.iloc[0] for r in range(8)]
    assert f["ensemble"] == [float(k.good_units) for k in full]
    votes = [str(k.bottleneck) for k in full]
    assert f["bottleneck"] == max(sorted(set(votes)), key=votes.count)
    assert {x["lot"] for x in f["lots"]} == {lot.id for lot in snap.lots()}


def test_backtest_scores_every_forecast_its_log_covers(line, tmp_path, capsys):
    spec, log = line
    assert main(["backtest", str(log), str(spec), "--every", "1h", "--horizon", "1h", "--horizon", "2h",
                 "--replications", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by_h = {s["horizon"]: s for s in out["scores"]}
    # a 4 h log, forecasts every hour from 1 h (and after each failure): a 2 h horizon is covered by fewer
    assert by_h[3600.0]["forecasts"] > by_h[7200.0]["forecasts"] >= 2
    for s in by_h.values():
        assert 0.0 <= s["coverage_p10_p90"] <= 1.0 and s["crps_mean"] >= 0.0
        assert s["below_p10"] + s["above_p90"] + s["coverage_p10_p90"] == pytest.approx(1.0)


@pytest.mark.slow  # about 300 forecasts of 20 runs each
def test_a_twin_of_the_same_spec_is_calibrated():
    # a 2-day log of the line itself, forecast every hour for the next hour (and after each failure):
    # the twin knows the true laws and the true state, so its forecasts are calibrated, and each
    # forecast has seeds of its own, so their misses are independent. By exchangeability of the
    # outcome with the 20 runs, the randomised PIT falls in [0.1, 0.9] with probability 17/21 = 0.81
    # (ranks 3..19 of 21); the band between numpy's interpolated P10 and P90 (order statistics 2.9
    # and 18.1 of 20) holds a continuous outcome with probability (18.1 - 2.9)/21 = 0.72, and
    # integer outcomes tied with its edges add to that. Both are judged within 3 binomial standard
    # errors for the number of forecasts (se = 0.029 at 189 forecasts)
    spec = _spec(RICH)
    log = log_frame(Model(spec, 7, 2 * 86400.0, trace=True).run(2 * 86400.0))
    twin = LiveTwin(spec, 3600.0, 3600.0, 20, 9)
    from twin.tracker import _plain

    for r in log.to_dict("records"):
        twin.event(_plain(r))
    done = [f for f in twin.forecasts if f["as_of"] + 3600.0 <= twin.tracker.now]
    s = score(done, [float(twin.actual_output(f["as_of"], f["as_of"] + 3600.0)) for f in done])
    se = math.sqrt(0.8 * 0.2 / s.n)
    assert s.n >= 60
    assert abs(s.pit_coverage - 0.81) < 3 * se, s
    assert 0.72 - 3 * se < s.coverage < 0.81 + 3 * se, s


def test_the_howto_commands_parse_and_its_offline_steps_run(tmp_path, monkeypatch, capsys):
    """Every twin command of the how-to is one the parser takes; the calibrate, backtest and
    state-start steps run as written on examples/line_log.csv."""
    import shlex

    from twin.cli import build_parser

    page = (ROOT / "docs" / "howto" / "11_a_live_twin.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", page, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("twin "):
                commands.append(shlex.split(line)[1:])
    assert {c[0] for c in commands} == {"calibrate", "live", "replay", "backtest", "run"}
    parser = build_parser()
    for c in commands:
        parser.parse_args(c)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "line_log.csv", tmp_path / "examples" / "line_log.csv")
    for c in commands:
        if c[0] in ("calibrate", "backtest", "run"):
            assert main(c + ["-q"] if c[0] == "run" else c) == 0, c
    out = capsys.readouterr().out
    assert "P10-P90 coverage" in out and Path("now.json").exists()
