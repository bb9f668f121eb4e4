"""The field layouts of a run's record: what each position of a recorded tuple means.

Kept apart from :mod:`twin.record` so that the policies, which read the order list while a run
goes on, can name fields without importing the record (which imports the spec)."""

from __future__ import annotations

# field layouts of the record lists, in tuple order; units: times and durations in s
LAYOUTS: dict[str, list[tuple[str, str]]] = {
    "states": [("t", "f8"), ("server", "i8"), ("state", "i8")],
    "releases": [("lot", "i8"), ("product", "i8"), ("qty", "i8"), ("t", "f8")],
    "finishes": [("lot", "i8"), ("t", "f8"), ("units", "i8"), ("escaped", "i8"), ("fate", "i8")],
    "scraps": [("lot", "i8"), ("t", "f8"), ("station", "i8"), ("units", "i8"), ("work_s", "f8")],
    "reworks": [("lot", "i8"), ("t", "f8"), ("station", "i8"), ("units", "i8")],
    "maint": [("t", "f8"), ("server", "i8"), ("kind", "i8"), ("duration", "f8"), ("remaining", "f8")],
    "orders": [("order", "i8"), ("product", "i8"), ("qty", "i8"), ("t", "f8"), ("due", "f8")],
    "deliveries": [("order", "i8"), ("t", "f8")],
    "events": [("t", "f8"), ("kind", "O"), ("detail", "O")],
    "minor": [("t", "f8"), ("server", "i8"), ("duration", "f8")],
    "stock": [("t", "f8"), ("component", "i8"), ("level", "i8"), ("backorders", "i8")],
    "demands": [("t", "f8"), ("component", "i8"), ("units", "i8"), ("filled", "i8")],
    "purchases": [("t", "f8"), ("component", "i8"), ("units", "i8"), ("due", "f8")],
    "forecasts": [("t", "f8"), ("span", "f8"), ("units", "f8")],
    "trace": [("t", "f8"), ("server", "i8"), ("lot", "i8"), ("product", "i8"), ("qty", "i8"), ("event", "i8")],
    # a watched run's (twin.watch): levels of lanes' buffers, vehicle trips (load from ``t_load``,
    # leave ``t_leave``, arrive ``t_arrive``, unloaded ``t_unloaded``, back ``t_back``; stations by
    # index), units that moved between stations (``source``/``target`` -1 released, -2 good, -3 scrapped)
    "levels": [("t", "f8"), ("buffer", "i8"), ("level", "i8")],
    "legs": [("t_load", "f8"), ("t_leave", "f8"), ("t_arrive", "f8"), ("t_unloaded", "f8"), ("t_back", "f8"),
             ("server", "i8"), ("source", "i8"), ("target", "i8")],
    "flows": [("source", "i8"), ("target", "i8"), ("units", "i8")],
    "ends": [("source", "i8"), ("target", "i8"), ("units", "i8")],
}


RELEASED = -1
"""A watched run's ``flows`` source for a lot's first station: it came from the release."""
GOOD = -2
"""A watched run's ``ends`` target: finished good."""
SCRAPPED = -3
"""A watched run's ``ends`` target: scrapped (found defective)."""

FIELD: dict[str, dict[str, int]] = {name: {f: i for i, (f, _) in enumerate(layout)} for name, layout in LAYOUTS.items()}
"""Position of each named field in its list's tuples, for code that reads a list during the run
(``rec.orders[-1][FIELD["orders"]["t"]]``); after the run, read :meth:`Record.array` by name."""
ORDER_PRODUCT, ORDER_QTY, ORDER_T = (FIELD["orders"][f] for f in ("product", "qty", "t"))
