"""The HTML reports as a person sees them: opened in a real headless Chromium (Debian's
`chromium`; `.ci/run` installs it), with plotly's JavaScript run. Skipped, with the reason
shown, only where no Chromium can be had."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from twin.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def render(page: Path, tmp: Path, width: int = 1400) -> tuple[str, str]:
    """The DOM after scripts ran, and Chromium's log (console messages included)."""
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
                        f"--window-size={width},1600", "--virtual-time-budget=15000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, r.stderr


def visible_text(dom: str) -> str:
    body = re.sub(r"(?s)<script.*?</script>|<style.*?</style>", " ", dom)
    return re.sub(r"<[^>]+>", " ", body)


def console_errors(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "CONSOLE" in ln and ("ERROR" in ln.split("CONSOLE")[0]
                                                                   or "Uncaught" in ln or "Error" in ln)]


def check_plots(dom: str, expected: int, axes: int | None = None) -> None:
    """``expected`` plots drawn, ``axes`` of them (default all) with both axis titles."""
    axes = expected if axes is None else axes
    dom = re.sub(r"(?s)<script.*?</script>", " ", dom)
    plots = re.findall(r'<div[^>]*class="[^"]*js-plotly-plot', dom)
    assert len(plots) == expected
    ytitles = re.findall(r'class="ytitle[^"]*"[^>]*>([^<]*)<', dom)
    xtitles = re.findall(r'class="xtitle[^"]*"[^>]*>([^<]*)<', dom)
    assert len([t for t in ytitles if t.strip()]) >= axes, ytitles
    assert len([t for t in xtitles if t.strip()]) >= axes, xtitles


@pytest.fixture(scope="module")
def compare_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "out"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["compare", "--scenarios", "baseline", "surge", "--replications", "2", "--weeks", "4",
                     "--warmup", "1w", "--jobs", "2", "--out", str(out), "-q"]) == 0
    return out / "report.html"


@pytest.mark.slow
@pytest.mark.parametrize("width", [900, 1600])
def test_the_compare_report_renders_with_the_verdict_first(compare_page, tmp_path, width):
    dom, log = render(compare_page, tmp_path, width)
    assert not console_errors(log), console_errors(log)
    body = re.sub(r"(?s)<script.*?</script>", " ", dom)  # plotly.js itself names its classes
    verdict = body.index('id="verdict"')
    assert verdict < body.index("<table") and verdict < body.index("js-plotly-plot")
    # the iso-cost map of the two most decisive prices, then output, backlog, cost, states, OEE, and a Sankey per factory
    check_plots(dom, 9, axes=6)
    assert dom.count("class=\"replay-pick\"") == 6  # a replay per factory and scenario, one shown at a time
    assert "id=\"replay-0-floor\"" in dom and "data-frame=\"0\"" in dom
    text = visible_text(dom)
    assert not re.search(r"(?i)\bnan\b|undefined", text)
    assert "2 replications separate nothing smaller than" in text
    assert "Where the cost ranking flips" in text and "is cheapest unless" in text
    assert "Cheapest conversion cost in 'baseline'" in text
    dom, _ = render(_fits(compare_page, tmp_path), tmp_path, width)
    assert 'data-fits="true"' in dom, width


def test_the_run_report_renders(tmp_path):
    out = tmp_path / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(ROOT / "examples" / "two_machine.toml"), "--horizon", "1d", "--warmup", "2h",
                     "--replications", "2", "--out", str(out), "-q"]) == 0
    dom, log = render(out / "report.html", tmp_path)
    assert not console_errors(log), console_errors(log)
    check_plots(dom, 5, axes=4)  # states, output, flow, Gantt, and the Sankey (no axes)
    text = visible_text(dom)
    assert not re.search(r"(?i)\bnan\b|undefined", text)


@pytest.mark.slow
def test_the_ablation_report_renders(tmp_path):
    from test_orchestration import _ablate_spec

    spec = _ablate_spec(tmp_path)
    out = tmp_path / "abl"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["ablate", str(spec), "--scenarios", "baseline", "surge", "--replications", "2", "--weeks", "4",
                     "--warmup", "2d", "--jobs", "1", "--out", str(out), "-q"]) == 0
    dom, log = render(out / "report.html", tmp_path)
    assert not console_errors(log), console_errors(log)
    check_plots(dom, 1)
    text = visible_text(dom)
    assert not re.search(r"(?i)\bnan\b|undefined", text)
    for name in ("pdm", "nothing", "all", "baseline", "surge", "conversion cost"):
        assert name in text


@pytest.mark.slow
def test_the_optimize_report_renders(tmp_path):
    spec = tmp_path / "t.toml"
    spec.write_text((ROOT / "examples" / "two_machine.toml").read_text())
    out = tmp_path / "opt"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["optimize", str(spec), "--vary", "stations.assembly.buffer=0..3", "--vary",
                     "stations.smt.servers=1..2", "--maximize", "throughput_per_hour", "--minimize", "wip_mean",
                     "--trials", "6", "--replications", "2", "--horizon", "4h", "--warmup", "10min", "--jobs", "1",
                     "--out", str(out), "-q"]) == 0
    dom, log = render(out / "report.html", tmp_path)
    assert not console_errors(log), console_errors(log)
    check_plots(dom, 3)  # history, importance, Pareto front
    text = visible_text(dom)
    assert not re.search(r"(?i)\bnan\b|undefined", text)
    assert "Best design" in text and "Runners-up" in text


@pytest.mark.slow
def test_compare_on_a_terminal_shows_progress_with_an_eta_and_ends_with_the_verdict(tmp_path):
    import os
    import pty
    import select
    import sys
    import time

    argv = [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main(sys.argv[1:]))", "compare",
            "--factories", "dark-factory", "microfactory", "--scenarios", "baseline", "--replications", "2",
            "--weeks", "3", "--warmup", "1w", "--jobs", "2", "--out", str(tmp_path / "out")]
    import fcntl
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a pseudo-terminal
        os.execv(sys.executable, argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal of 120 x 40
    chunks, deadline = [], time.time() + 600
    while time.time() < deadline:
        r, _, _ = select.select([fd], [], [], 1.0)
        if r:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert os.WEXITSTATUS(status) == 0, text[-2000:]
    assert re.search(r"compare \(jobs\):.*\d+/4.*\[\d\d:\d\d<\d\d:\d\d", text), text[:2000]  # tqdm: elapsed<ETA
    assert text.rstrip().splitlines()[-1].startswith("open file://")
    assert "Verdict (paired differences, Holm-corrected):" in text


def test_the_sweep_report_renders_a_band_per_measure_and_the_best_points(tmp_path):
    out = tmp_path / "sweep"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["sweep", str(ROOT / "examples" / "two_machine.toml"), "--vary", "stations.smt.servers=1,2",
                     "--vary", "stations.assembly.buffer=0,2,5", "--horizon", "1d", "--warmup", "2h",
                     "--replications", "2", "--out", str(out), "-q"]) == 0
    import pandas as pd

    tab = pd.read_csv(out / "sweep_summary.csv")
    measures = [k for k in ("throughput_per_hour", "lead_time_mean_s", "wip_mean", "oee", "unit_cost", "fill_rate")
                if k in tab and tab[k].notna().any()]
    dom, log = render(out / "report.html", tmp_path, 900)
    assert not console_errors(log), console_errors(log)
    check_plots(dom, len(measures))
    text = visible_text(dom)
    assert not re.search(r"(?i)\bnan\b|undefined", text)
    assert "Best point per measure" in text and "6 points × 2 replications" in text
    for b in ("0", "2", "5"):  # one line per value of the second axis, named in the legend
        assert re.search(rf'class="legendtext"[^>]*>{b}<', dom), b


@pytest.mark.slow
def test_the_compare_report_has_one_scenario_selector_set_to_a_scenario_with_a_shift(compare_page, tmp_path):
    dom, log = render(compare_page, tmp_path, 1400)
    assert not console_errors(log), console_errors(log)
    body = re.sub(r"(?s)<script.*?</script>", " ", dom)
    # one scenario selector for the page (the replays follow it too, beside their factory selector);
    # no per-chart dropdowns left
    assert body.count("<select") == 2 and 'id="replay-factory"' in body and "replay-scenario" not in body
    assert "updatemenu" not in body
    assert re.search(r"<option value=\"surge\" selected", body.replace("'", '"'))
    # the output chart shows the surge after load: its shift line is a legend entry only there
    assert re.search(r'class="legendtext"[^>]*>the shift<', dom)
    shown = re.findall(r"<div class=\"replay-pick\" data-factory=\"([^\"]+)\" data-scenario=\"([^\"]+)\"(?: style=\"\")?>",
                       body)
    assert shown == [("static-line", "surge")], shown  # the first factory, in the scenario the charts show


def _replay_page(tmp_path: Path, spec: Path, *args: str) -> Path:
    out = tmp_path / "replay"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(spec), *args, "--out", str(out), "-q"]) == 0
    return out


def _shown(dom: str) -> tuple[dict[str, str], dict[str, int], int]:
    """What the replay shows: each server's state, each station's buffer level, the frame."""
    svg = dom[dom.index('id="replay-floor"'):]
    servers = dict(re.findall(r'data-server="([^"]+)" data-state="([^"]+)"', svg))
    levels = {n: int(v) for n, v in re.findall(r'class="fill" data-station="([^"]+)" data-level="(\d+)"', svg)}
    frame = int(re.search(r'data-frame="(\d+)"', dom).group(1))
    return servers, levels, frame


def _fits(page: Path, tmp: Path) -> Path:
    """A copy of ``page`` that says on its body whether it is wider than the window."""
    copy = tmp / f"fit-{page.parent.name}.html"
    copy.write_text(page.read_text().replace("</body>", "<script>addEventListener('load', () => "
                    "document.body.setAttribute('data-fits', document.documentElement.scrollWidth <= innerWidth));"
                    "</script></body>"))
    return copy


@pytest.mark.slow  # six page loads (~25 s); the default run renders a replay in test_the_run_report_renders
def test_the_replay_plays_and_shows_exactly_the_runs_state_tables(tmp_path):
    """At three frame times, every server's colour on the page is its state in states.csv and
    every buffer's bar its level in buffers.csv (lanes summed); playing advances the frames;
    no console errors, and the page fits from 900 to 1,600 px."""
    import pandas as pd
    from test_replay import LINE

    spec = tmp_path / "cell.toml"
    spec.write_text(LINE + '[layout]\nstations = {cut = [0, 0], weld = [12, 0], pack = [30, 8], '
                           'bench = [12, -10], fix = [20, -10]}\n')
    out = _replay_page(tmp_path, spec, "--horizon", "1d", "--warmup", "2h", "--replications", "2",
                       "--animate", "3h..9h")
    page = out / "report.html"
    states = pd.read_csv(out / "states.csv")
    states = states[states["replication"] == 0]
    buffers = pd.read_csv(out / "buffers.csv")
    seen = set()
    for t in (3 * 3600 + 17 * 60, 5 * 3600 + 42 * 60, 8 * 3600 + 59 * 60):  # frame times (one a minute)
        dom, log = render_at(page, tmp_path, f"#t={t}")
        servers, levels, frame = _shown(dom)
        assert frame == (t - 3 * 3600) // 60
        for key, shown in servers.items():
            name, k = key.rsplit("/", 1)
            row = states[(states["station"] == name) & (states["server"] == int(k)) & (states["start"] <= t)
                         & (states["end"] > t)]
            assert shown == (row["state"].iloc[0] if len(row) else "idle"), (t, key)
            seen.add(shown)
        for name, shown in levels.items():
            b = buffers[(buffers["station"] == name) & (buffers["start"] <= t) & (buffers["end"] > t)]
            assert shown == int(b["level"].sum()), (t, name)
        assert len(servers) == 1 + 2 + 1 + 1 + 1 and set(levels) == {"cut", "weld", "bench", "fix", "pack"}
        assert not console_errors(log), console_errors(log)
    assert {"busy", "idle"} <= seen
    dom, log = render_at(page, tmp_path, "#play")
    assert _shown(dom)[2] > 5, "the frames did not advance"
    assert not console_errors(log)
    for width in (900, 1600):
        dom, _ = render(_fits(page, tmp_path), tmp_path, width)
        assert 'data-fits="true"' in dom, width


def render_at(page: Path, tmp: Path, fragment: str) -> tuple[str, str]:
    """:func:`render` of ``page`` opened at ``fragment`` (``#t=...``, ``#play``)."""
    r = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
                        "--window-size=1400,1600", "--virtual-time-budget=15000", "--dump-dom",
                        page.as_uri() + fragment], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, r.stderr


@pytest.mark.slow  # a 3-day run of each reference factory (~10 s each) and its page
@pytest.mark.parametrize("factory", ["static-line", "dark-factory", "microfactory"])
def test_a_reference_factorys_replay_stays_small_and_renders(tmp_path, factory):
    import twin

    spec = twin.load(twin.builtins.factories()[factory])
    out = _replay_page(tmp_path, Path(factory), "--horizon", "3d", "--warmup", "1d", "--replications", "1")
    page = (out / "report.html").read_text()
    section = page[page.index("<section id='replay'"):page.index("</section>")]
    assert len(section.encode()) < 400_000  # the replay's own data and script (plotly.js is the page's 4.6 MB)
    dom, log = render(out / "report.html", tmp_path, 900)
    assert not console_errors(log), console_errors(log)
    servers, levels, frame = _shown(dom)
    assert frame == 0 and set(levels) == {s.name for s in spec.stations}
    assert len(servers) == sum(s.servers * s.lanes for s in spec.stations)
