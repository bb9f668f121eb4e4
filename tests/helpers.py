"""Small spec builders shared by the tests."""

from __future__ import annotations

from typing import Any

import twin


def line(stations: list[dict[str, Any]], source: dict[str, Any] | None = None,
         products: list[dict[str, Any]] | None = None, **extra: Any) -> twin.Spec:
    data: dict[str, Any] = {"name": "test", "stations": stations, "source": source or {"kind": "saturated"}}
    if products is not None:
        data["products"] = products
    data.update(extra)
    return twin.validate(data)


def expo(mean: float) -> dict[str, Any]:
    return {"dist": "exponential", "mean": mean}
