"""The spec: a validated, serialisable description of a factory (no SimPy here).

Load one from TOML with :func:`load` (every problem reported at once as
``file: field.path: what is wrong``) or build it in Python from the classes below.
All durations are seconds (strings with units are accepted, see :mod:`twin.dists`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .dists import DIST_CLASSES, Dist, Duration, PositiveDuration

MAX_SPEC_BYTES = 2_000_000  # a real line spec is a few kB; refuse anything absurd before parsing


class SpecError(Exception):
    """A spec (or other input file) is invalid; ``problems`` lists every ``file: path: message``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Failures(_M):
    """Unplanned failures of each server: time to failure and time to repair (s)."""

    ttf: Dist
    ttr: Dist
    basis: Literal["operating", "calendar"] = "operating"
    """``operating``: only busy time ages the machine; ``calendar``: wall-clock time does."""


class Setup(_M):
    """Changeover time when a server switches product: ``matrix[from][to]`` else ``default``."""

    default: Dist = 0.0  # type: ignore[assignment]
    matrix: dict[str, dict[str, Dist]] = Field(default_factory=dict)


class Station(_M):
    """A work centre: ``servers`` identical machines sharing one input buffer."""

    name: str = Field(min_length=1)
    servers: int = Field(default=1, ge=1)
    process_time: Dist | None = None
    """Unit processing time (s); per-product overrides in ``process_time_by_product``."""
    process_time_by_product: dict[str, Dist] = Field(default_factory=dict)
    buffer: int | None = Field(default=None, ge=0)
    """Waiting places in front of the station; 0 = direct hand-off; omitted = unlimited."""
    setup: Setup | None = None
    failures: Failures | None = None


class Product(_M):
    """A product: its route (station names in order), lot size and share of released lots."""

    name: str = Field(min_length=1)
    route: list[str] = Field(min_length=1)
    lot_size: int = Field(default=1, ge=1)
    """Units per lot (a tray or panel); processing time scales with it."""
    share: float = Field(default=1.0, ge=0.0)
    """Relative share of lots released by the source."""


class Source(_M):
    """How lots enter: ``saturated`` (never starves), ``poisson`` or ``renewal`` arrivals of lots."""

    kind: Literal["saturated", "poisson", "renewal"] = "saturated"
    rate_per_hour: float | None = Field(default=None, gt=0.0)
    """Poisson arrival rate of lots per hour."""
    interarrival: Dist | None = None

    @model_validator(mode="after")
    def _needs(self) -> "Source":
        if self.kind == "poisson" and self.rate_per_hour is None:
            raise ValueError("kind 'poisson' needs rate_per_hour")
        if self.kind == "renewal" and self.interarrival is None:
            raise ValueError("kind 'renewal' needs interarrival")
        return self


class Run(_M):
    """Default run settings; the CLI and :func:`twin.simulate` may override them."""

    horizon: PositiveDuration = 604800.0
    warmup: Duration = 0.0
    replications: int = Field(default=5, ge=1)
    seed: int = Field(default=1, ge=0)


class Spec(_M):
    """A whole factory."""

    name: str = Field(min_length=1)
    description: str = ""
    source: Source = Field(default_factory=Source)
    products: list[Product] = Field(default_factory=list)
    stations: list[Station] = Field(min_length=1)
    run: Run = Field(default_factory=Run)

    @model_validator(mode="after")
    def _default_product(self) -> "Spec":
        if not self.products:
            self.products = [Product(name="unit", route=[s.name for s in self.stations])]
        return self

    # ------------------------------------------------------------------ helpers
    def station(self, name: str) -> Station:
        for s in self.stations:
            if s.name == name:
                return s
        raise KeyError(name)

    def problems(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Semantic checks beyond the schema: ``(errors, warnings)`` as (path, message)."""
        errors: list[tuple[str, str]] = []
        warnings: list[tuple[str, str]] = []
        if self.run.warmup >= self.run.horizon:
            errors.append(("run.warmup", f"warm-up ({self.run.warmup:g} s) must be shorter than the horizon "
                                         f"({self.run.horizon:g} s)"))
        _dupes(errors, "stations", [s.name for s in self.stations])
        _dupes(errors, "products", [p.name for p in self.products])
        names = {s.name for s in self.stations}
        products = {p.name for p in self.products}
        visited: set[str] = set()
        for p in self.products:
            for i, st in enumerate(p.route):
                if st not in names:
                    errors.append((f"products.{p.name}.route.{i}", f"unknown station {st!r}{_hint(st, names)}"))
                    continue
                visited.add(st)
                s = self.station(st)
                if s.process_time is None and p.name not in s.process_time_by_product:
                    errors.append((f"stations.{st}.process_time",
                                   f"no processing time for product {p.name!r} (set process_time or "
                                   f"process_time_by_product.{p.name})"))
        if sum(p.share for p in self.products) <= 0:
            errors.append(("products", "the shares of all products sum to 0"))
        for s in self.stations:
            if s.name not in visited:
                warnings.append((f"stations.{s.name}", "no product visits this station"))
            for prod in s.process_time_by_product:
                if prod not in products:
                    errors.append((f"stations.{s.name}.process_time_by_product.{prod}",
                                   f"unknown product {prod!r}{_hint(prod, products)}"))
            if s.setup is not None:
                for a, row in s.setup.matrix.items():
                    if a not in products:
                        errors.append((f"stations.{s.name}.setup.matrix.{a}", f"unknown product {a!r}{_hint(a, products)}"))
                    for b in row:
                        if b not in products:
                            errors.append((f"stations.{s.name}.setup.matrix.{a}.{b}",
                                           f"unknown product {b!r}{_hint(b, products)}"))
        return errors, warnings


def _dupes(errors: list[tuple[str, str]], path: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            errors.append((path, f"duplicate name {n!r}"))
        seen.add(n)


def _hint(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- loading

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "lines"


def resolve(path_or_name: str | os.PathLike[str]) -> Path:
    """A spec path, or the file of a built-in factory given by name (``dark-factory``)."""
    p = Path(path_or_name)
    if p.exists() or p.suffix == ".toml" or os.sep in str(path_or_name):
        return p
    builtin = BUILTIN_DIR / f"{str(path_or_name).replace('-', '_')}.toml"
    if builtin.exists():
        return builtin
    return p


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file with clear, single-line errors (raises :class:`SpecError`)."""
    f = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SpecError([f"{f}: file not found"]) from None
    except OSError as e:
        raise SpecError([f"{f}: cannot read file ({e.strerror})"]) from None
    if path.is_dir():
        raise SpecError([f"{f}: is a directory, not a spec file"])
    if size > MAX_SPEC_BYTES:
        raise SpecError([f"{f}: file is {size} bytes; specs larger than {MAX_SPEC_BYTES} bytes are refused"])
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecError([f"{f}: cannot read file ({e.strerror})"]) from None
    if not raw.strip():
        raise SpecError([f"{f}: file is empty"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([f"{f}: not a text file (invalid UTF-8); a spec is TOML"]) from None
    if "\x00" in text:
        raise SpecError([f"{f}: not a text file (contains NUL bytes); a spec is TOML"])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([f"{f}: invalid TOML: {e}"]) from None


def load(path_or_name: str | os.PathLike[str]) -> Spec:
    """Load and validate a spec from a TOML file or a built-in factory name."""
    path = resolve(path_or_name)
    data = read_toml(path)
    return validate(data, source=str(path))


def validate(data: dict[str, Any], source: str = "<spec>", model: type[BaseModel] | None = None) -> Spec:
    """Validate a raw dict into a :class:`Spec`; raise :class:`SpecError` listing every problem."""
    model = model or Spec
    try:
        spec = model.model_validate(data)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, data, source, model)) from None
    errors, _ = spec.problems()  # type: ignore[attr-defined]
    if errors:
        raise SpecError([f"{source}: {p}: {m}" for p, m in errors])
    return spec  # type: ignore[return-value]


def format_validation_error(e: ValidationError, data: Any, source: str, model: type[BaseModel]) -> list[str]:
    out: list[str] = []
    for err in e.errors(include_url=False):
        path, parent_model = _readable_path(err["loc"], data, model)
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            fields = list(parent_model.model_fields) if parent_model is not None else []
            aliases = [f.alias for f in parent_model.model_fields.values() if f.alias] if parent_model else []
            known = [k for k in fields + aliases if not k.endswith("_")]
            msg = f"unknown key{_hint(key, known)}"
            if known:
                msg += f"; allowed here: {', '.join(sorted(set(known)))}"
        elif err["type"] == "missing":
            msg = "required field is missing"
        line = f"{source}: {path or '(top level)'}: {msg}"
        if line not in out:
            out.append(line)
    return out


def _readable_path(loc: tuple[Any, ...], data: Any, model: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic loc into ``stations.smt.process_time`` and find the model that owns the last key."""
    parts: list[str] = []
    raw = data
    ann: Any = model
    owner: type[BaseModel] | None = model
    for i, item in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(item, str) and item in DIST_CLASSES and not (isinstance(raw, dict) and item in raw):
            ann = DIST_CLASSES[item]
            owner = ann
            continue  # a union tag, not a key the user wrote
        if isinstance(item, str) and (item.startswith("function-") or item in {"constrained-str", "int", "float"}):
            continue
        if i > 0 and isinstance(item, str) and not isinstance(raw, (dict, list)) and raw is not None:
            continue  # a key of a value we coerced (a bare number became {value = ...})
        if isinstance(raw, list) and isinstance(item, int):
            el = raw[item] if 0 <= item < len(raw) else None
            parts.append(str(el["name"]) if isinstance(el, dict) and isinstance(el.get("name"), str) else str(item))
            raw = el
            ann = _inner(ann)
            continue
        parts.append(str(item))
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            owner = ann
            field = _field(ann, str(item))
            ann = _strip_optional(field.annotation) if field is not None else None
        elif _origin(ann) is dict:
            ann = _inner(ann)
        else:
            ann = None
        if not last:
            raw = raw.get(item) if isinstance(raw, dict) else None
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                owner = ann
    return ".".join(parts), owner if isinstance(owner, type) else None


def _field(m: type[BaseModel], key: str):
    f = m.model_fields.get(key)
    if f is not None:
        return f
    for f in m.model_fields.values():
        if f.alias == key:
            return f
    return None


def _origin(a: Any) -> Any:
    return typing.get_origin(a)


def _strip_optional(a: Any) -> Any:
    if _origin(a) in (typing.Union, types.UnionType):
        args = [x for x in typing.get_args(a) if x is not type(None)]
        if len(args) == 1:
            return _strip_optional(args[0])
    if _origin(a) is typing.Annotated:
        return _strip_optional(typing.get_args(a)[0])
    return a


def _inner(a: Any) -> Any:
    a = _strip_optional(a)
    args = typing.get_args(a)
    if _origin(a) is list and args:
        return _strip_optional(args[0])
    if _origin(a) is dict and len(args) == 2:
        return _strip_optional(args[1])
    return None
