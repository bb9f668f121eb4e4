"""lines/SOURCES.md's derived figures are the specs' own: the capital table is recomputed here."""

from __future__ import annotations

from twin.builtins import sources_page
from twin.cost import capital_charge
from twin.policies.capacity import lane_rate_per_hour, open_share
from twin.spec import load, resolve


def test_the_capital_table_matches_the_specs():
    text = sources_page().read_text()
    for f in ("static-line", "dark-factory", "microfactory"):
        s = load(resolve(f))
        c = s.costs
        owned = s.capacity.owned_lanes or s.capacity.initial_lanes or s.planning.lanes
        lane = lane_rate_per_hour(s)
        total = c.capex + c.capex_per_lane * owned
        # the capital charge a year: the annuity at the cost of capital, less the salvage's (checked by
        # hand against interest tables in test_reprice)
        yearly = (capital_charge(c.capex, c.plant_depreciation_years or c.depreciation_years, c.cost_of_capital)
                  + owned * capital_charge(c.capex_per_lane, c.depreciation_years, c.cost_of_capital, c.salvage_share))
        row = (f"| {f} | {owned} | {lane:,.1f} | {c.capex_per_lane / lane / 1e3:,.1f} k | {total / 1e6:,.1f} M | "
               f"{total / (lane * owned) / 1e3:,.1f} k | {total / (lane * owned * open_share(s)) / 1e3:,.1f} k | "
               f"{yearly / 1e6:,.2f} M |")
        assert row in text, f"SOURCES.md's capital row of {f} is stale; it should read:\n{row}"


def test_every_factory_writes_off_its_asset_classes_alike():
    costs = [load(resolve(f)).costs for f in ("static-line", "dark-factory", "microfactory")]
    assert len({(c.depreciation_years, c.plant_depreciation_years, c.cost_of_capital, c.salvage_share)
                for c in costs}) == 1
