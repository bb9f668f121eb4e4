"""The live twin's page (``twin live --serve HOST:PORT``): the line's current state and its
latest forecast, updated as they change.

One self-contained HTML page (no external resources: it works on a plant network with no
internet) polls ``/state`` once a second. The line is drawn on its floor plan
(:mod:`twin.floorview`, the replay's drawing) and, below it, station by station in route order, each server a
square in its state's colour (the colours of every chart, :data:`twin.state.COLOURS`) with what
it holds and since when, each buffer a bar with its level; what is down is listed with the line
time it went down; the latest forecast's output band, bottleneck, orders and stale stations sit
beside it.
"""

from __future__ import annotations

import html
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .floorplan import plan
from .floorview import FLOOR_CSS, FLOOR_JS, floor_model, legend, model_json
from .spec import Spec, SpecError
from .state import COLOURS, LABELS, STATE_KEYS


class LivePage:
    """A page server in a background thread; :meth:`update` gives it the twin's state."""

    def __init__(self, host: str, port: int, spec: Spec):
        self.spec = spec
        self._lock = threading.Lock()
        self._state = json.dumps({"as_of": None, "events": 0, "stations": [], "forecast": None, "down": []})
        self._html = page(spec).encode("utf-8")
        self.requests = 0  # /state requests served (the page polls once a second)
        page_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server name
                if self.path.split("?")[0] == "/state":
                    page_self.requests += 1
                    with page_self._lock:
                        body, kind = page_self._state.encode("utf-8"), "application/json"
                elif self.path in ("/", "/index.html"):
                    body, kind = page_self._html, "text/html; charset=utf-8"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the twin's own lines on stderr stay readable

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as e:
            raise SpecError([f"--serve: cannot listen on {host}:{port} ({e.strerror or e})"]) from None
        self.address = self.server.server_address
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def update(self, twin: Any) -> None:
        """Take the twin's current state and latest forecast (called after every message)."""
        state = state_view(twin)
        with self._lock:
            self._state = json.dumps(state, allow_nan=False)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(where: str, spec: Spec) -> LivePage:
    """Start the page on ``HOST:PORT`` (``--serve``)."""
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError([f"--serve: {where!r} is not HOST:PORT (e.g. 127.0.0.1:8050)"])
    page = LivePage(host, int(port), spec)
    return page


def state_view(twin: Any) -> dict[str, Any]:
    """What the page shows: per station its servers (state, since, lot) and buffers (level of
    capacity), the servers down or in maintenance and since when, and the latest forecast."""
    tr = twin.tracker
    snap = tr.snapshot()
    by_station: dict[str, list[dict[str, Any]]] = {}
    down = []
    for s in snap.servers:
        by_station.setdefault(s.station, []).append(
            {"server": s.server, "state": s.state, "since": s.since, "lot": s.lot.id if s.lot else None})
        if s.state in ("down", "maintenance"):
            down.append({"station": s.station, "server": s.server, "state": s.state,
                         "from": snap.time - s.since, "for": s.since})
    levels = {(b.station, b.lane): len(b.lots) for b in snap.buffers}
    stations = []
    for st in twin.spec.stations:
        stations.append({"name": st.name, "servers": by_station.get(st.name, []),
                         "buffers": [{"lane": j, "level": levels.get((st.name, j), 0), "capacity": st.buffer}
                                     for j in range(st.lanes)]})
    f = twin.forecasts[-1] if twin.forecasts else None
    if f is not None:
        f = {k: v for k, v in f.items() if k != "ensemble"}
    return {"as_of": snap.time, "events": tr.events, "stations": stations, "down": down, "forecast": f,
            "stale": twin.stale(snap.time) if tr.events else []}


def page(spec: Spec) -> str:
    """The page's HTML: self-contained, its script draws ``/state`` on the line's floor plan (the
    spec's ``[layout]`` or the automatic one, as the replay draws it) and as cards per station."""
    colours = {k: COLOURS[k] for k in STATE_KEYS}
    labels = {k: LABELS[k] for k in STATE_KEYS}
    return _PAGE.replace("__TITLE__", html.escape(spec.name)).replace("__LEGEND__", legend()).replace(
        "__COLOURS__", json.dumps(colours)).replace("__LABELS__", json.dumps(labels)).replace(
        "__FLOOR_CSS__", FLOOR_CSS).replace("__FLOOR_JS__", FLOOR_JS).replace(
        "__FLOOR__", model_json(floor_model(spec, plan(spec))))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>twin live: __TITLE__</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.2rem;color:#222;max-width:1400px}
h1{font-size:1.3rem;margin:0 0 .3rem}
#clock{color:#555;margin-bottom:.8rem}
#line{display:flex;flex-wrap:wrap;gap:.6rem;align-items:flex-start}
.station{border:1px solid #bbb;border-radius:6px;padding:.5rem;min-width:9rem}
.station h2{font-size:1rem;margin:0 0 .3rem}
.srv{display:flex;align-items:center;gap:.35rem;margin:.15rem 0;font-size:.85rem}
.srv i{display:inline-block;width:1.1rem;height:1.1rem;border-radius:3px;border:1px solid #888}
.buf{font-size:.8rem;color:#444;margin-top:.3rem}
.bar{height:.5rem;background:#eee;border-radius:3px;overflow:hidden;margin-top:.1rem}
.bar b{display:block;height:100%;background:#1f77b4}
.arrow{align-self:center;color:#888}
#side{display:grid;grid-template-columns:repeat(auto-fit,minmax(18rem,1fr));gap:1rem;margin-top:1rem}
.panel{border:1px solid #ddd;border-radius:6px;padding:.6rem}
.panel h3{margin:0 0 .4rem;font-size:1rem}
.key{margin-right:.8rem;font-size:.8rem;white-space:nowrap}.key i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;border:1px solid #888}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:.15rem .5rem;text-align:left}
.stale{color:#b00}
__FLOOR_CSS__
</style></head><body>
<h1>twin live: __TITLE__</h1>
<div id="clock">waiting for the line's first event…</div>
<svg id="floor" class="floor" xmlns="http://www.w3.org/2000/svg"></svg>
<div id="line"></div>
<div id="side">
<div class="panel"><h3>Down now</h3><div id="down">nothing is down</div></div>
<div class="panel"><h3>Latest forecast</h3><div id="forecast">no forecast yet</div></div>
</div>
<p>__LEGEND__</p>
<script>
__FLOOR_JS__
const COLOURS = __COLOURS__, LABELS = __LABELS__;
const FLOOR = floorBuild(document.getElementById('floor'), __FLOOR__);
function dur(s) { if (s < 120) return s.toFixed(0) + ' s'; if (s < 7200) return (s / 60).toFixed(0) + ' min';
  return (s / 3600).toFixed(1) + ' h'; }
function esc(t) { return String(t).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c])); }
function draw(s) {
  if (s.as_of === null) return;
  document.getElementById('clock').textContent = 'line time ' + dur(s.as_of) + ' (' + s.as_of.toFixed(0) + ' s), '
    + s.events + ' events';
  const st = {}, lv = {};
  for (const x of s.stations) { lv[x.name] = x.buffers.reduce((a, b) => a + b.level, 0);
    for (const v of x.servers) st[x.name + '/' + v.server] = v.state; }
  floorPaint(FLOOR, st, lv, []);
  const line = document.getElementById('line');
  line.innerHTML = s.stations.map((st, i) => (i ? '<span class="arrow">→</span>' : '') +
    '<div class="station" data-station="' + esc(st.name) + '"><h2>' + esc(st.name) + '</h2>' +
    st.servers.map(v => '<div class="srv" data-server="' + v.server + '" data-state="' + v.state + '"><i style="background:' +
      COLOURS[v.state] + '"></i>' + v.server + ': ' + esc(LABELS[v.state]) + ' for ' + dur(v.since) +
      (v.lot !== null ? ', lot ' + v.lot : '') + '</div>').join('') +
    st.buffers.map(b => '<div class="buf" data-level="' + b.level + '">buffer' + (st.buffers.length > 1 ? ' ' + b.lane : '') +
      ': ' + b.level + (b.capacity !== null ? ' / ' + b.capacity : '') + '<div class="bar"><b style="width:' +
      (b.capacity ? Math.min(100, 100 * b.level / b.capacity) : Math.min(100, 10 * b.level)) + '%"></b></div></div>').join('') +
    '</div>').join('');
  document.getElementById('down').innerHTML = s.down.length ? '<table><tr><th>station</th><th>server</th><th>state</th><th>since</th><th>for</th></tr>' +
    s.down.map(d => '<tr class="downrow"><td>' + esc(d.station) + '</td><td>' + d.server + '</td><td>' + esc(LABELS[d.state]) +
      '</td><td>' + dur(d.from) + '</td><td>' + dur(d['for']) + '</td></tr>').join('') + '</table>' : 'nothing is down';
  const f = s.forecast;
  if (f) {
    document.getElementById('forecast').innerHTML = '<div>as of ' + dur(f.as_of) + ', the next ' + dur(f.horizon) + ':</div>' +
      '<div id="output"><b>' + f.output.p50.toFixed(0) + '</b> good units (P10 ' + f.output.p10.toFixed(0) + ', P90 ' +
      f.output.p90.toFixed(0) + ')</div><div>bottleneck: <b>' + esc(f.bottleneck) + '</b> (' + (100 * f.bottleneck_share).toFixed(0) +
      ' % of runs)</div>' + (f.orders.length ? '<table><tr><th>order</th><th>due</th><th>ETA (P50)</th><th>P(late)</th></tr>' +
      f.orders.map(o => '<tr><td>' + esc(o.id) + '</td><td>' + dur(o.due) + '</td><td>' + (o.eta_p50 === null ? 'after the horizon' :
      dur(o.eta_p50)) + '</td><td>' + (o.p_late === null ? '?' : (100 * o.p_late).toFixed(0) + ' %') + '</td></tr>').join('') +
      '</table>' : '') + (f.stale.length ? '<div class="stale">stale (last state assumed): ' + f.stale.map(esc).join(', ') + '</div>' : '');
  }
}
async function poll() {
  try { const r = await fetch('/state', {cache: 'no-store'}); if (r.ok) draw(await r.json()); } catch (e) {}
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
"""
