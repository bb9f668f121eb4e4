"""Generate the spec reference and the JSON Schema from the pydantic models, so the
documentation cannot drift from the code: ``python -m twin.docs [DIR]`` (default ``docs``)
writes ``DIR/reference.md`` and ``DIR/spec.schema.json``, and the snapshot format's
``DIR/snapshot.md`` and ``DIR/snapshot.schema.json``; a test checks the committed files equal a
fresh generation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

import twin

from . import spec as spec_mod
from .calendar import CalendarSpec, Window
from .io import atomic_write_text
from .snapshot import BufferState, LotState, ServerState, Snapshot
from .spec import Spec

SECTIONS = ["Spec", "Source", "Product", "Station", "Setup", "Failures", "Degradation", "MinorStops", "Maintenance", "Quality",
            "Batch", "Component", "Supplier", "Transport", "Layout", "CalendarSpec", "Window", "WorkerPool", "Demand", "Shift",
            "Planning", "Capacity", "Capability", "Costs", "Run", "Constant",
            "Exponential", "Normal", "Lognormal", "Gamma", "Weibull", "Triangular", "Uniform", "Empirical"]
"""Every section of the reference, in reading order: each table the schema defines (a test checks none is left out)."""
WHERE = {"Spec": "the top level of a spec file", "Source": "`[source]`", "Product": "`[[products]]`",
         "Station": "`[[stations]]`", "Setup": "`stations[].setup`", "Failures": "`stations[].failures`",
         "Degradation": "`stations[].failures.degradation`",
         "Maintenance": "`stations[].maintenance`", "Quality": "`stations[].quality`",
         "MinorStops": "`stations[].minor_stops`", "Batch": "`stations[].batch`", "Component": "`[[components]]`",
         "Supplier": "`components[].supplier`", "Transport": "`[[transport]]`", "Layout": "`[layout]`", "Capability": "`[[capabilities]]`",
         "CalendarSpec": "`[[calendars]]`", "Window": "an item of `calendars[].shifts`, `breaks`, `overtime`, "
         "`extra_shift`", "WorkerPool": "`[[workers]]`", "Demand": "`[demand]`",
         "Shift": "`[[demand.shifts]]` (and a scenario's `[[shifts]]`)", "Planning": "`[planning]`",
         "Capacity": "`[capacity]`", "Costs": "`[costs]`", "Run": "`[run]`"}


def schema() -> dict[str, Any]:
    s = Spec.model_json_schema(by_alias=True)
    # the distribution classes default ``dist`` for Python users (``Exponential(mean=60)``),
    # but a table in a spec file must name its distribution
    for d in s.get("$defs", {}).values():
        dist = d.get("properties", {}).get("dist")
        if dist is not None and "const" in dist:
            dist.pop("default", None)
            d["required"] = ["dist"] + [r for r in d.get("required", []) if r != "dist"]
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "twin factory spec"
    return s


def _type(p: dict[str, Any] | bool) -> str:
    if isinstance(p, bool):  # JSON Schema's "anything" (a table of any values)
        return "any"
    if "$ref" in p:
        name = p["$ref"].split("/")[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in p:
        kinds = p["anyOf"]
        has_num = any(k.get("type") == "number" for k in kinds)
        has_text = any(k.get("type") == "string" and "pattern" in k for k in kinds)
        has_dist = any("oneOf" in k or "discriminator" in k for k in kinds)
        if has_dist:
            return "distribution (a duration = constant, or a table with `dist`)"
        if has_num and has_text:
            return "duration (s, or text like `\"90s\"`, `\"8h\"`)"
        parts = [_type(k) for k in kinds if k.get("type") != "null"]
        return " or ".join(parts)
    t = p.get("type")
    if t == "array":
        return f"list of {_type(p.get('items', {}))}"
    if t == "object":
        return f"table of {_type(p.get('additionalProperties', {}))}"
    if "enum" in p:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in p["enum"])
    if "const" in p:
        return f"`{json.dumps(p['const'])}`"
    bounds = []
    for k, sym in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if k in p:
            bounds.append(f"{sym} {p[k]:g}")
    if "minLength" in p:
        bounds.append("non-empty")
    base = {"number": "number", "integer": "integer", "string": "text", "boolean": "true/false"}.get(t or "", "any")
    return base + (f" ({', '.join(bounds)})" if bounds else "")


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    d = field.default
    if d is PydanticUndefined:
        return "(see text)" if field.default_factory is None else _factory(field)
    if isinstance(d, BaseModel):
        return "(see text)"
    return f"`{json.dumps(d)}`" if d is not None else "none"


def _factory(field: Any) -> str:
    try:
        v = field.default_factory()
    except TypeError:
        return "(see text)"
    if isinstance(v, BaseModel):
        return "its defaults"
    return f"`{json.dumps(v)}`"


def reference() -> str:
    sch = schema()
    defs = sch["$defs"]
    lines = [
        "# Spec reference",
        "",
        "Generated from the pydantic schema by `python -m twin.docs`; do not edit by hand. Every duration is in",
        "seconds, or text with a unit (`ms`, `s`, `min`, `h`, `d`, `w`). Unknown keys are errors. An editor can",
        "validate and complete spec files with [`spec.schema.json`](spec.schema.json) (JSON Schema; for TOML, e.g.",
        "the *Even Better TOML* extension with `#:schema ./docs/spec.schema.json` on a spec's first line).",
        "",
    ]
    classes: dict[str, Any] = {c: getattr(twin, c, None) or getattr(spec_mod, c, None) for c in SECTIONS}
    classes["CalendarSpec"], classes["Window"] = CalendarSpec, Window
    for name in SECTIONS:
        props = (sch if name == "Spec" else defs.get(name, {})).get("properties", {})
        lines += _section(name, classes[name], props, WHERE.get(name))
    return "\n".join(lines)


def _section(name: str, cls: Any, props: dict[str, Any], where: str | None) -> list[str]:
    """One class's section of a reference page: where it goes, its doc, a table of its keys."""
    lines = [f"## {name}", ""]
    if where:
        lines += [f"Where: {where}.", ""]
    doc = (cls.__doc__ or "").strip()
    if doc:
        lines += [" ".join(doc.split("\n\n")[0].split()), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    for fname, f in cls.model_fields.items():
        key = f.alias or fname
        p = props.get(key, {})
        desc = " ".join((f.description or "").split()).replace("|", "\\|")
        default = "required" if key == "dist" and "const" in p else _default(f)
        lines.append(f"| `{key}` | {_type(p)} | {default} | {desc} |")
    lines.append("")
    return lines


SNAPSHOT_SECTIONS: list[type[BaseModel]] = [Snapshot, ServerState, LotState, BufferState]
SNAPSHOT_WHERE = {"Snapshot": "the top level of a snapshot file", "ServerState": "an item of `servers`",
                  "LotState": "`servers[].lot` and an item of `buffers[].lots`",
                  "BufferState": "an item of `buffers`"}


def snapshot_schema() -> dict[str, Any]:
    s = Snapshot.model_json_schema(by_alias=True)
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "twin line snapshot"
    return s


def snapshot_reference() -> str:
    """docs/snapshot.md: the snapshot format, from the same models that read it."""
    sch = snapshot_schema()
    lines = [
        "# Snapshot reference",
        "",
        "Generated from the pydantic schema by `python -m twin.docs`; do not edit by hand. A snapshot is the",
        "state of a line at one instant, as JSON: what `twin run --from-state` and `twin.simulate(..., state=...)`",
        "start from, what `twin run --write-state` and `Model.snapshot()` write, and what `twin live` keeps current",
        "from the line's events. Times are seconds of the line's clock. Unknown keys are errors. The JSON Schema",
        "is [`snapshot.schema.json`](snapshot.schema.json).",
        "",
        "The job, changeover, repair and maintenance under way, and the machine's life, go on from their elapsed",
        "time: what is left is drawn from each law given that it has lasted so long (exact for every distribution",
        "twin has; the exponential is memoryless, so its draw does not depend on the elapsed time).",
        "",
    ]
    for cls in SNAPSHOT_SECTIONS:
        name = cls.__name__
        props = (sch if cls is Snapshot else sch["$defs"].get(name, {})).get("properties", {})
        lines += _section(name, cls, props, SNAPSHOT_WHERE[name])
    return "\n".join(lines)


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ref, js = folder / "reference.md", folder / "spec.schema.json"
    sref, sjs = folder / "snapshot.md", folder / "snapshot.schema.json"
    atomic_write_text(ref, reference())
    atomic_write_text(js, json.dumps(schema(), indent=2, sort_keys=True) + "\n")
    atomic_write_text(sref, snapshot_reference())
    atomic_write_text(sjs, json.dumps(snapshot_schema(), indent=2, sort_keys=True) + "\n")
    return [ref, js, sref, sjs]


if __name__ == "__main__":
    for p in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")):
        print(f"wrote {p}")
