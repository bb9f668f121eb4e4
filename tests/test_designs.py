"""Candidate designs: the Pareto front of a toy with a known answer, the design protocol's rule,
the protocol's pick per world and price draw by hand, and the reference candidates end to end."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from twin import designs
from twin.cli import main
from twin.compare import FACTORIES, designed, nominal_labels
from twin.spec import load, resolve


def test_pareto_front_of_a_two_design_toy_and_a_dominated_third():
    # A is cheaper and serves worse, B dearer and serves better: both on the front; C is dearer
    # than A and serves no better, so A dominates it
    pts = {"A": (4.0, 0.85), "B": (6.0, 1.0), "C": (5.0, 0.85)}
    assert sorted(designs.pareto(pts, "low", "high")) == ["A", "B"]
    # against a time (lower is better) the same points: B's 1.0 is now the worst
    assert designs.pareto({"A": (4.0, 10.0), "B": (6.0, 20.0)}, "low", "low") == ["A"]
    assert designs.pareto({"A": (4.0, float("nan")), "B": (6.0, 1.0)}) == ["B"]  # unknown is never on it


def test_the_protocol_rule_takes_the_cheapest_design_that_serves_and_else_the_best_served():
    assert designs.choose({"a": 5.0, "b": 4.0, "c": 3.0}, {"a": 0.99, "b": 0.985, "c": 0.90}) == "b"
    assert designs.choose({"a": 5.0, "b": 4.0}, {"a": 0.95, "b": 0.90}) == "a"
    assert designs.choose({}, {}) is None


def test_every_reference_spec_is_one_of_its_candidates():
    dfile, src = designs.load()
    cands = designs.candidates(dfile, src, FACTORIES)
    assert set(cands) == set(FACTORIES)
    own = nominal_labels({f: load(resolve(f)) for f in FACTORIES}, cands)
    assert own == {"static-line": "10 lines", "dark-factory": "11 owned lines", "microfactory": "34 owned slots"}


def test_each_world_and_price_draw_takes_its_own_best_design_by_hand():
    # one factory, two designs, two price draws of one world: in draw 0 design "small" is cheaper
    # (both serve), in draw 1 "big" is; design "small" misses the floor in world 1, so "big" there
    rows = []
    for world, small_fill in ((0, 0.99), (1, 0.90)):
        for m, (c_small, c_big) in enumerate(((4.0, 5.0), (6.0, 5.5))):
            for design, cost, fill in (("small", c_small, small_fill), ("big", c_big, 1.0)):
                for sc in ("baseline", "surge"):
                    rows.append({"world": world, "price_draw": m, "scenario": sc, "factory": "f", "design": design,
                                 "conversion_cost": cost, "fill_rate": fill if sc == "baseline" else 0.5})
    combos = pd.DataFrame(rows)
    nom, chosen, shares = designed(combos, {"f": "small"}, "baseline")
    assert set(nom["design"]) == {"small"} and len(nom) == 8
    picks = chosen.groupby(["world", "price_draw"])["design"].first().to_dict()
    assert picks == {(0, 0): "small", (0, 1): "big", (1, 0): "big", (1, 1): "big"}
    assert shares == {"f": {"big": 0.75, "small": 0.25}}


@pytest.mark.slow
def test_compare_with_designs_writes_the_fronts(tmp_path):
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["compare", "--factories", "dark-factory", "--scenarios", "baseline", "surge", "--replications", "1",
                   "--weeks", "4", "--warmup", "1d", "--jobs", "2", "--designs", "--out", str(out), "-q"])
    assert rc == 0
    k = json.loads((out / "kpis.json").read_text())
    rows = {r["design"]: r for r in k["pareto"]["factories"]["dark-factory"]}
    assert set(rows) == {"11 owned lines", "12 owned lines"}
    # the nominal design's point is the compare's own baseline cost (the same jobs, reused)
    assert rows["11 owned lines"]["cost"] == pytest.approx(k["summary"]["baseline"]["dark-factory"]["conversion_cost"]["mean"])
    # at least one candidate is on each front, and the front is the non-dominated set of the points
    pts = {d: (r["cost"], r["fill"]) for d, r in rows.items()}
    assert {d for d, r in rows.items() if r["on_fill_front"]} == set(designs.pareto(pts))
    assert "Designs: the Pareto fronts" in (out / "report.md").read_text()


def test_designs_that_name_a_path_the_spec_lacks_are_refused_before_running(tmp_path, capsys):
    bad = tmp_path / "d.toml"
    bad.write_text('[[factory]]\nname = "dark-factory"\nvariable = "x"\n[[factory.candidate]]\nlabel = "a"\n'
                   'set = {"capacity.no_such_field" = 1}\n')
    rc = main(["compare", "--factories", "dark-factory", "--scenarios", "baseline", "--designs", str(bad),
               "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "no_such_field" in err and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_uncertainty_with_designs_reads_the_answer_on_each_worlds_designs(tmp_path):
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["compare", "--factories", "dark-factory", "microfactory", "--scenarios", "baseline", "surge",
                   "--replications", "1", "--weeks", "4", "--warmup", "1d", "--jobs", "2", "--designs",
                   "--uncertainty", "2", "--price-draws", "10", "--out", str(out), "-q"])
    assert rc == 0
    k = json.loads((out / "kpis.json").read_text())
    des = k["uncertainty_designed"]
    for sc, measures in des["probabilities"].items():
        for key, probs in measures.items():
            assert sum(probs.values()) == pytest.approx(1.0), (sc, key)
    for f, shares in des["chosen"].items():
        assert sum(shares.values()) == pytest.approx(1.0), f
    assert set(des["chosen"]["microfactory"]) <= {"34 owned slots", "36 owned slots", "40 owned slots",
                                                  "44 owned slots", "48 owned slots"}
    assert "designed per world" in (out / "report.md").read_text()
