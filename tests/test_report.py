"""The generated reading of `twin compare` (report.reading): it names the winner from the
numbers it is given, whoever that is, says by how much, and declines to call a winner when
the 95 % confidence intervals overlap. Hand-made summaries, hand-computed sentences."""

from __future__ import annotations

from twin.report import reading

DAY = 86400.0


def cell(mean, ci=0.0, n=5, missing=0):
    return {"mean": mean, "ci95": ci, "n": n, "n_missing": missing}


def test_the_static_line_wins_when_its_numbers_are_better():
    summ = {"baseline": {
        "static-line": {"unit_cost": cell(450.0, 1.0), "lead_time_mean_s": cell(7200.0, 60.0)},
        "dark-factory": {"unit_cost": cell(460.0, 1.0), "lead_time_mean_s": cell(3600.0, 60.0)},
        "microfactory": {"unit_cost": cell(470.0, 1.0), "lead_time_mean_s": cell(5400.0, 60.0)},
    }}
    text = reading(summ, {"baseline": "no shift"})
    assert text[0] == "### baseline: no shift"
    # $10 on $460 is 2.2 %; 1 h on 1.5 h is 33 %
    assert "- unit cost: static-line wins ($450.00) — $10.00 (2.2 %) better than dark-factory ($460.00)." in text
    assert "- lead time mean: dark-factory wins (1.0 h) — 0.5 h (33 %) better than microfactory (1.5 h)." in text


def test_overlapping_confidence_intervals_are_no_significant_difference():
    summ = {"surge": {
        "static-line": {"fill_rate": cell(0.90, 0.02)},
        "dark-factory": {"fill_rate": cell(0.93, 0.02)},  # |0.93 - 0.90| = 0.03 <= 0.02 + 0.02
        "microfactory": {"fill_rate": cell(0.50, 0.01)},
    }}
    text = reading(summ, {"surge": "s"})
    assert ("- fill rate: no significant difference between dark-factory (93.0 %) and static-line (90.0 %); "
            "95 % CIs overlap.") in text
    summ["surge"]["dark-factory"]["fill_rate"] = cell(0.95, 0.02)  # 0.05 > 0.04: significant
    assert "- fill rate: dark-factory wins (95.0 %) — 5.0 percentage points better than static-line (90.0 %)." in \
        reading(summ, {"surge": "s"})


def test_a_factory_that_never_recovers_ranks_last():
    summ = {"surge": {
        "static-line": {"time_to_recover_s": cell(float("nan"), None, missing=5)},
        "dark-factory": {"time_to_recover_s": cell(10 * DAY, 1 * DAY)},
        "microfactory": {"time_to_recover_s": cell(float("nan"), None, missing=5)},
    }}
    text = reading(summ, {"surge": "s"})
    assert any(t.startswith("- time to recover: dark-factory wins (10.0 d)") and "does not" in t for t in text)
    summ["surge"]["dark-factory"]["time_to_recover_s"] = cell(float("nan"), None, missing=5)
    assert "- time to recover: none of static-line, dark-factory, microfactory recovered." in \
        reading(summ, {"surge": "s"})


def test_idle_capacity_is_a_win_only_after_a_drop():
    facs = {"static-line": {"idle_capacity_after": cell(0.40, 0.01)},
            "dark-factory": {"idle_capacity_after": cell(0.00, 0.0)},
            "microfactory": {"idle_capacity_after": cell(0.10, 0.01)}}
    summ = {"surge": facs, "slump": facs}
    text = reading(summ, {"surge": "up", "slump": "down"}, drops={"slump"})
    idle = [t for t in text if "idle capacity" in t]
    # after a surge, no idle capacity means the plant is short of capacity, not better
    assert idle == ["- idle capacity after shift: dark-factory wins (0.0 %) — 10.0 percentage points better "
                    "than microfactory (10.0 %)."]
    assert text.index("### slump: down") < text.index(idle[0])


def test_reading_in_the_html_page_has_no_markdown_left():
    from twin.report import html_page

    summ = {"surge": {"static-line": {"unit_cost": cell(450.0, 1.0)}, "dark-factory": {"unit_cost": cell(460.0, 1.0)}}}
    lines = reading(summ, {"surge": "+40 % <for> 8 weeks"})
    page = html_page(summ, {"surge": "+40 % <for> 8 weeks"}, {"description": "d"}, lines, [])
    assert "<h3>surge</h3><p>+40 % &lt;for&gt; 8 weeks</p>" in page
    assert "**" not in page[page.index("<h2>Reading</h2>"):] and "###" not in page
    assert "<li>unit cost: static-line wins ($450.00)" in page


def test_report_md_renders_every_scenario_as_a_heading_under_commonmark():
    from markdown_it import MarkdownIt

    from twin.report import markdown

    summ = {sc: {"static-line": {"unit_cost": {"mean": 450.0, "ci95": 1.0}},
                 "dark-factory": {"unit_cost": {"mean": 460.0, "ci95": 1.0}}} for sc in ("baseline", "surge")}
    scen = {"baseline": "no shift", "surge": "+40 %"}
    meta = {"grid": {"replications": 5, "factories": ["static-line", "dark-factory"], "scenarios": list(summ),
                     "weeks": 26, "warmup": 1209600, "seed": 1}, "twin_version": "x"}
    md = markdown(summ, scen, meta, reading(summ, scen))
    tokens = MarkdownIt("commonmark").parse(md)
    heads = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    # the tables' headings and the reading's: each scenario twice, none swallowed by a bullet
    assert heads.count("baseline") == 1 and heads.count("surge") == 1
    assert "baseline: no shift" in heads and "surge: +40 %" in heads
    items = [tokens[i + 2].content for i, t in enumerate(tokens) if t.type == "list_item_open"]
    assert not any("surge" in it and "###" in it for it in items)


FLOW_SPEC = """name = "loops"
[source]
kind = "poisson"
rate_per_hour = 30
[[products]]
name = "p"
route = ["make", "test", "pack"]
[[stations]]
name = "make"
process_time = { dist = "exponential", mean = "60s" }
quality = { defect_rate = 0.05, inspect = "inline", rework = 1.0, rework_at = "fix" }
[[stations]]
name = "fix"
process_time = "30s"
[[stations]]
name = "test"
process_time = "40s"
routing = { test = 0.1, bench = 0.05, make = 0.02 }
[[stations]]
name = "bench"
process_time = "5min"
[[stations]]
name = "pack"
process_time = "20s"
"""


def test_the_flow_view_draws_every_station_and_every_loop(tmp_path):
    """Off-route stations (a rework station, a repair bench) appear beside their senders, each
    retest, detour, loop back and rework as an arc with its probability; the bottleneck ring is
    black on a blue scale (a red ring on a red scale vanished)."""
    import json

    import twin
    from twin.cli import main
    from twin.report import FLOW_ARCS, fig_flow, flow_edges

    f = tmp_path / "loops.toml"
    f.write_text(FLOW_SPEC)
    spec = twin.load(f)
    edges = flow_edges(spec)
    assert sorted(edges, key=str) == sorted([("test", "test", "retest", 0.1), ("test", "bench", "detour", 0.05),
                                             ("test", "make", "back", 0.02), ("make", "fix", "rework", None)], key=str)
    out = tmp_path / "out"
    assert main(["run", str(f), "--horizon", "1d", "--warmup", "1h", "--replications", "2", "--out", str(out), "-q"]) == 0
    summary = json.loads((out / "kpis.json").read_text())
    fig = fig_flow(summary, [p.route for p in spec.products], None, edges)
    nodes = fig.data[-1]
    assert set(nodes.text) == {"make", "fix", "test", "bench", "pack"}
    x = dict(zip(nodes.text, nodes.x))
    assert x["make"] < x["fix"] < x["test"] < x["bench"] < x["pack"]  # beside their senders
    arcs = {t.name: t for t in fig.data if t.name in FLOW_ARCS}
    assert set(arcs) == {"retest", "detour", "back", "rework"}
    assert "10.0% of passes" in arcs["retest"].hovertext[0] and "the found defects" in arcs["rework"].hovertext[0]
    bn = summary["bottleneck"]
    ring = dict(zip(nodes.text, nodes.marker.line.color))
    # plotly's Blues ends in dark blue; the ring is black, every other station's grey
    assert ring[bn] == "#000" and nodes.marker.colorscale[-1][1] == "rgb(8,48,107)"
    assert all(c == "#555" for n, c in ring.items() if n != bn)
    # and the page carries it: every station's name in the flow figure of report.html
    page = (out / "report.html").read_text()
    assert all(f'"{n}"' in page for n in ("fix", "bench")) and "dotted: retests, detours and rework" in page
