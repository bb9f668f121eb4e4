"""The line drawn on its floor plan, for the replay in ``report.html`` and the live page.

One script (:data:`FLOOR_JS`) draws a plan (:class:`twin.floorplan.Plan`) as an SVG: each station
a box with one square per server (a row per lane), its buffer a bar that fills with its level,
route legs as grey lines, retests, detours and rework as dotted arcs (the flow view's colours),
each fleet's path dashed and its vehicles as dots. ``floorPaint`` then colours the squares by
state (the colours of every chart, :data:`twin.state.COLOURS`), sets the bars and moves the
vehicles: the replay calls it per frame, the live page per poll. Every drawn server carries
``data-server`` and ``data-state``, every bar ``data-station`` and ``data-level``, so a browser
test can read what is shown. Nothing is fetched: the page works offline.
"""

from __future__ import annotations

import html
import json
from typing import Any

from .floorplan import Plan
from .report import FLOW_ARCS, flow_edges
from .state import COLOURS, LABELS, LETTERS, STATE_KEYS
from .units import HOUR, MINUTE


def floor_model(spec: Any, plan: Plan, bufmax: dict[str, int] | None = None) -> dict[str, Any]:
    """What the script draws: the plan, the stations (lanes, servers, buffer capacity), the
    routes and loops, the fleets, the state colours and letters. ``bufmax``: the highest level of
    each unlimited buffer (its bar's full scale)."""
    bufmax = bufmax or {}
    stations = [{"name": s.name, "lanes": s.lanes, "servers": s.servers,
                 "capacity": None if s.buffer is None else s.buffer * s.lanes,
                 "scale": (s.buffer * s.lanes if s.buffer is not None else max(1, int(bufmax.get(s.name, 1))))}
                for s in spec.stations]
    legs = sorted({(a, b) for p in spec.products for a, b in zip(p.route, p.route[1:]) if a != b})
    loops = [[a, b, kind] for a, b, kind, _ in flow_edges(spec)]
    return {"plan": plan.to_json(), "stations": stations, "legs": [list(x) for x in legs], "loops": loops,
            "arcs": FLOW_ARCS, "fleets": [{"name": t.name, "vehicles": t.vehicles} for t in spec.transport],
            "colours": {k: COLOURS[k] for k in STATE_KEYS}, "labels": {k: LABELS[k] for k in STATE_KEYS},
            "codes": {c: k for k, c in LETTERS.items()}}


def legend() -> str:
    """The state colours as an HTML legend."""
    return "".join(f'<span class="key"><i style="background:{COLOURS[k]}"></i>{html.escape(LABELS[k])}</span>'
                   for k in STATE_KEYS)


def model_json(model: dict[str, Any]) -> str:
    """``model`` as JSON safe inside a ``<script>`` (no ``</`` can end it early)."""
    return json.dumps(model, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


FLOOR_CSS = """
.floor{width:100%;height:auto;max-height:75vh;border:1px solid #ddd;border-radius:6px;background:#fcfcfc}
.floor text{font-family:system-ui,sans-serif;fill:#333}
.floor *{vector-effect:non-scaling-stroke}
.floor .box{fill:#fff;stroke:#888;stroke-width:1}
.floor .srv{stroke:#666;stroke-width:.5}
.floor .bar{fill:#eee;stroke:#999;stroke-width:1}
.floor .fill{fill:#1f77b4}
.floor .leg{stroke:#bbb;stroke-width:3;fill:none}
.floor .loop{stroke-width:1.5;fill:none;stroke-dasharray:4 3}
.floor .path{stroke:#f0a;stroke-width:1;fill:none;stroke-dasharray:6 4;opacity:.6}
.floor .veh{fill:#f0a;stroke:#fff;stroke-width:1}
.key{margin-right:.8rem;font-size:.8rem;white-space:nowrap}
.key i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;border:1px solid #888;vertical-align:middle}
"""

FLOOR_JS = r"""
function floorBuild(svg, M) {
  const NS = 'http://www.w3.org/2000/svg', P = M.plan;
  const el = (tag, attrs, parent) => { const e = document.createElementNS(NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]); (parent || svg).appendChild(e); return e; };
  const pts = Object.values(P.stations);
  let gap = Infinity;  // the box fits between the closest two stations
  for (let i = 0; i < pts.length; i++) for (let j = i + 1; j < pts.length; j++)
    gap = Math.min(gap, Math.max(Math.abs(pts[i][0] - pts[j][0]), Math.abs(pts[i][1] - pts[j][1])));
  const box = Math.min(isFinite(gap) ? gap * 0.55 : 6, 12), pad = box * 1.6;
  const all = pts.concat(Object.values(P.buffers), ...Object.values(P.paths));
  const xs = all.map(p => p[0]), ys = all.map(p => -p[1]);
  const x0 = Math.min(...xs) - pad, y0 = Math.min(...ys) - pad, w = Math.max(...xs) - x0 + pad, h = Math.max(...ys) - y0 + pad * 1.3;
  svg.setAttribute('viewBox', [x0, y0, w, h].join(' '));
  svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
  const font = box * 0.28, at = n => [P.stations[n][0], -P.stations[n][1]];
  const F = {servers: {}, bars: {}, vehicles: [], M: M, box: box};
  for (const [a, b] of M.legs) { const p = at(a), q = at(b);
    el('line', {x1: p[0], y1: p[1], x2: q[0], y2: q[1], class: 'leg'}); }
  for (const [a, b, kind] of M.loops) { const p = at(a), q = at(b); let d;
    if (a === b) d = `M${p[0] - box * .2},${p[1] - box / 2} C${p[0] - box * .6},${p[1] - box * 1.4} ${p[0] + box * .6},${p[1] - box * 1.4} ${p[0] + box * .2},${p[1] - box / 2}`;
    else { const mx = (p[0] + q[0]) / 2, my = Math.min(p[1], q[1]) - box * (kind === 'back' ? 1.4 : 0.9);
      d = `M${p[0]},${p[1] - box / 2} Q${mx},${my} ${q[0]},${q[1] - box / 2}`; }
    const e = el('path', {d: d, class: 'loop', stroke: M.arcs[kind] || '#888'});
    el('title', {}, e).textContent = kind + ' ' + a + ' → ' + b; }
  for (const f of M.fleets) { const path = P.paths[f.name] || [];
    if (path.length > 1) el('polyline', {points: path.map(p => p[0] + ',' + (-p[1])).join(' '), class: 'path'}); }
  for (const s of M.stations) {
    const [cx, cy] = at(s.name), g = el('g', {'data-station': s.name});
    el('rect', {x: cx - box / 2, y: cy - box / 2, width: box, height: box, rx: box * .08, class: 'box'}, g);
    // a row of servers per lane; lanes of one server each (lines, cells) fill a near-square grid
    const one = s.servers === 1 && s.lanes > 1, n = s.lanes * s.servers;
    const cols = one ? Math.ceil(Math.sqrt(n)) : s.servers, rows = one ? Math.ceil(n / cols) : s.lanes;
    const cell = Math.min((box * .86) / cols, (box * .86) / rows);
    const gx = cx - cell * cols / 2, gy = cy - cell * rows / 2;
    for (let j = 0; j < rows; j++) for (let k = 0; k < cols; k++) {
      if (j * cols + k >= n) break;
      const key = s.name + '/' + (j * cols + k);
      const r = el('rect', {x: gx + k * cell + cell * .06, y: gy + j * cell + cell * .06, width: cell * .88, height: cell * .88,
        class: 'srv', 'data-server': key, 'data-state': 'idle', fill: M.colours.idle}, g);
      el('title', {}, r).textContent = key;
      F.servers[key] = r; }
    const t = el('text', {x: cx, y: cy + box / 2 + font * 1.2, 'text-anchor': 'middle', 'font-size': font}, g);
    t.textContent = s.name;
    const [bx, by] = [P.buffers[s.name][0], -P.buffers[s.name][1]], bw = box * .16, bh = box * .8;
    el('rect', {x: bx - bw / 2, y: by - bh / 2, width: bw, height: bh, class: 'bar'}, g);
    const fill = el('rect', {x: bx - bw / 2, y: by + bh / 2, width: bw, height: 0, class: 'fill', 'data-station': s.name,
      'data-level': 0}, g);
    const lab = el('text', {x: bx, y: by - bh / 2 - font * .3, 'text-anchor': 'middle', 'font-size': font * .8}, g);
    F.bars[s.name] = {fill: fill, label: lab, y: by + bh / 2, h: bh, scale: s.scale, capacity: s.capacity};
  }
  for (const f of M.fleets) for (let k = 0; k < f.vehicles; k++) {
    const c = el('circle', {r: box * .1, class: 'veh', cx: 0, cy: 0, 'data-vehicle': f.name + '/' + k});
    el('title', {}, c).textContent = f.name + '/' + k;
    F.vehicles.push(c); }
  return F;
}
function floorPaint(F, states, levels, vehicles) {
  // states: {server key: state key}; levels: {station: lots waiting}; vehicles: [[x, y], ...] m
  const M = F.M;
  for (const key in states) { const r = F.servers[key]; if (!r) continue;
    const s = states[key]; if (r.getAttribute('data-state') !== s) { r.setAttribute('data-state', s);
      r.setAttribute('fill', M.colours[s]); r.firstChild.textContent = key + ': ' + M.labels[s]; } }
  for (const name in levels) { const b = F.bars[name]; if (!b) continue; const n = levels[name];
    const h = b.h * Math.min(1, n / b.scale);
    b.fill.setAttribute('height', h); b.fill.setAttribute('y', b.y - h); b.fill.setAttribute('data-level', n);
    b.label.textContent = n + (b.capacity !== null ? '/' + b.capacity : ''); }
  (vehicles || []).forEach((p, i) => { const c = F.vehicles[i]; if (c) { c.setAttribute('cx', p[0]); c.setAttribute('cy', -p[1]); } });
}
"""


def replay_section(data: dict[str, Any], model: dict[str, Any], key: str = "", heading: str = "Replay") -> str:
    """The animated replay as a ``<section>``: the floor drawing, play/pause, a time slider, the
    clock and the output and WIP counters, over the frames of :func:`twin.frames.frames`. Its
    elements' ids begin ``replay`` (``replay-KEY`` with a ``key``: several on one page), and
    ``window.twinReplays[key].show(i)`` shows frame ``i`` (what the slider does)."""
    step = data["step"]
    p = "replay" + (f"-{key}" if key else "")
    return (f"<section id='{p}' class='replay'>" + (f"<h2>{html.escape(heading)}</h2>" if heading else "")
            + f"<p>The line as the first replication ran it, {len(data['t'])} frames, one every {_dur(step)}: each "
            "server in its state at the frame's time (as in <code>states.csv</code>), each buffer's bar its lots "
            "waiting then, vehicles on their trips. "
            + ("Places: the spec's <code>[layout]</code>." if not model["plan"]["auto"] else
               "Places: laid out automatically along the routes (no <code>[layout]</code>).")
            + f"</p><div class='controls'><button id='{p}-play' type='button'>play</button> "
            f"<input id='{p}-slider' type='range' min='0' max='" + str(len(data["t"]) - 1) + "' value='0' "
            f"style='width:50%;vertical-align:middle'> <span id='{p}-clock'></span> · good units out "
            f"<b id='{p}-out'>0</b> · WIP <b id='{p}-wip'>0</b></div>"
            f"<svg id='{p}-floor' class='floor' xmlns='http://www.w3.org/2000/svg'></svg>"
            f"<p>{legend()}</p>"
            f"<script>(function() {{\nconst P = {json.dumps(p)}, KEY = {json.dumps(key)}, M = {model_json(model)}, "
            f"D = {model_json(data)};\n" + _REPLAY_JS + "})();</script></section>")


def replay_script() -> str:
    """What a page with replay sections loads once, before them: the styles and the drawing."""
    return f"<style>{FLOOR_CSS}</style><script>{FLOOR_JS}</script>"


def replays_section(replays: dict[tuple[str, str], dict[str, Any]], follow: str | None = None) -> str:
    """``twin compare``'s replays: one per factory and scenario (``{(factory, scenario): payload}``
    of :func:`twin.compare.replay_payload`), one shown at a time: the factory by a selector of its
    own, the scenario by the page's scenario selector (the ``<select>`` whose id is ``follow``; without
    one, a selector here)."""
    factories = list(dict.fromkeys(f for f, _ in replays))
    scenarios = list(dict.fromkeys(s for _, s in replays))
    opts = lambda xs: "".join(f"<option>{html.escape(x)}</option>" for x in xs)  # noqa: E731
    pick = (f"the scenario chosen above ({html.escape(follow)})" if follow else
            "scenario <select id='replay-scenario'>" + opts(scenarios) + "</select>")
    parts = [replay_script(), "<section id='replays'><h2>Replays</h2><p>Each factory's first replication under "
             "each scenario, over the hours around its shift (6 h before to 18 h after; the first day after the "
             "warm-up without one). Factory <select id='replay-factory'>" + opts(factories) + "</select>, "
             + pick + ".</p>"]
    for i, ((f, sc), r) in enumerate(replays.items()):
        parts.append(f"<div class='replay-pick' data-factory='{html.escape(f)}' data-scenario='{html.escape(sc)}'"
                     + ("" if i == 0 else " style='display:none'") + ">"
                     + replay_section(r["data"], r["model"], key=str(i), heading="") + "</div>")
    parts.append("<script>(function() { const f = document.getElementById('replay-factory'), "
                 f"s = document.getElementById({json.dumps(follow or 'replay-scenario')});\n"
                 "function pick() { document.querySelectorAll('.replay-pick').forEach(d => { d.style.display = "
                 "d.dataset.factory === f.value && (!s || d.dataset.scenario === s.value) ? '' : 'none'; }); }\n"
                 "f.addEventListener('change', pick); if (s) s.addEventListener('change', pick); pick(); })();</script>"
                 "</section>")
    return "".join(parts)


def _dur(s: float) -> str:
    return f"{s / HOUR:g} h" if s >= HOUR else (f"{s / MINUTE:g} min" if s >= MINUTE else f"{s:g} s")


_REPLAY_JS = r"""
const $ = id => document.getElementById(P + '-' + id);
const svg = $('floor'), F = floorBuild(svg, M), slider = $('slider'), btn = $('play');
function clock(t) { const d = Math.floor(t / 86400), r = t - 86400 * d, h = Math.floor(r / 3600), m = Math.floor((r - 3600 * h) / 60);
  return 'day ' + (d + 1) + ' ' + String(h).padStart(2, '0') + ':' + String(m).padStart(2, '0') + ' (t = ' + Math.round(t) + ' s)'; }
function show(i) {
  const codes = D.states[i], st = {}, lv = {};
  D.servers.forEach((key, k) => { st[key] = M.codes[codes[k]]; });
  D.stations.forEach((name, k) => { lv[name] = D.levels[i][k]; });
  floorPaint(F, st, lv, D.vehicles[i]);
  slider.value = i; svg.setAttribute('data-frame', i); svg.setAttribute('data-t', D.t[i]);
  $('clock').textContent = clock(D.t[i]);
  $('out').textContent = D.out[i].toLocaleString('en');
  $('wip').textContent = D.wip[i].toLocaleString('en');
}
let timer = null;
function stop() { clearInterval(timer); timer = null; btn.textContent = 'play'; }
btn.addEventListener('click', () => {
  if (timer) { stop(); return; }
  btn.textContent = 'pause';
  if (+slider.value >= D.t.length - 1) show(0);
  timer = setInterval(() => { const i = +slider.value + 1; if (i >= D.t.length) stop(); else show(i); }, 120);
});
slider.addEventListener('input', () => show(+slider.value));
(window.twinReplays = window.twinReplays || {})[KEY] = {show: show, frames: D.t.length, t: D.t, step: D.step};
// a link to a moment: #t=SECONDS shows the last frame at or before it, #play starts playing
const want = /[#&]t=([0-9.]+)/.exec(location.hash);
let first = 0;
if (want && !KEY) { const t = +want[1]; while (first + 1 < D.t.length && D.t[first + 1] <= t) first++; }
show(first);
if (!KEY && /[#&]play\b/.test(location.hash)) btn.click();
"""
