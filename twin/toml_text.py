"""TOML text in the one style twin writes and documents (the starter template's): top-level keys,
then ``[tables]``, then ``[[arrays of tables]]`` (stations, products), each key on one line with
distributions and other small tables inline: ``process_time = { dist = "gamma", mean = 60.0 }``.

tomli_w alone decides per value between inline and block forms by length, so one calibrated
spec would hold both; here tomli_w writes only the scalars, and the layout is fixed."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import tomli_w

_BARE = re.compile(r"[A-Za-z0-9_-]+")

Notes = Callable[[str, int], list[str]]
"""``notes(array, i)``: comment lines (without ``#``) to write before the ``i``-th ``[[array]]``."""


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _value(k)


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return tomli_w.dumps({"v": v})[len("v = "):].rstrip("\n")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _body(d: dict[str, Any]) -> list[str]:
    return [f"{_key(k)} = {_value(v)}" for k, v in d.items() if v is not None]


def dumps(data: dict[str, Any], notes: Notes | None = None) -> str:
    """``data`` (plain dicts, lists and scalars; ``None`` values left out) as TOML text."""
    top = {k: v for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)}
    out = _body(top)
    for k, v in data.items():
        if isinstance(v, dict):
            out += ["", f"[{_key(k)}]", *_body(v)]
    for k, v in data.items():
        if _is_table_array(v):
            for i, item in enumerate(v):
                out.append("")
                out += [f"# {c}" if c else "#" for c in (notes(k, i) if notes else [])]
                out += [f"[[{_key(k)}]]", *_body(item)]
    return "\n".join(out).lstrip("\n") + "\n"
