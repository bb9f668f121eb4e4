"""Durations and probability distributions.

Model time is seconds. A duration in a spec is a number (seconds) or a string
with a unit: ``"500ms"``, ``"90s"``, ``"20min"``, ``"2.5h"``, ``"3d"``, ``"1w"``.

A distribution in a spec is either a bare duration (a constant) or a table
``{dist = "...", ...}``.  Each spec class knows its mean and variance and
compiles to a :class:`Sampler` bound to one named random stream.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from .limits import MAX_DURATION
from .units import UNITS, parse_duration  # noqa: F401  (parse_duration: twin.dists is where users found it)



def _check_duration(v: Any) -> float:
    d = parse_duration(v)
    if not math.isfinite(d):
        raise ValueError("duration must be finite")
    if d > MAX_DURATION:
        raise ValueError(f"{d:g} s is longer than {MAX_DURATION:g} s (about 317 years)")
    return d


def _positive(v: Any) -> float:
    d = _check_duration(v)
    if d <= 0:
        raise ValueError(f"must be > 0, got {d:g} s")
    return d


def _non_negative(v: Any) -> float:
    d = _check_duration(v)
    if d < 0:
        raise ValueError(f"must be >= 0, got {d:g} s")
    return d


DurationText = Annotated[str, StringConstraints(
    pattern=r"^\s*[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*(" + "|".join(sorted(UNITS, key=len, reverse=True)) + r")?\s*$")]
"""How a duration may be written as text (for the JSON Schema): a number and a unit."""
Duration = Annotated[float, BeforeValidator(_non_negative, json_schema_input_type=Union[float, DurationText])]
"""A duration >= 0 in seconds (number or string with unit)."""
PositiveDuration = Annotated[float, BeforeValidator(_positive, json_schema_input_type=Union[float, DurationText])]
"""A duration > 0 in seconds (number or string with unit)."""


class _DistBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _finite_moments(self) -> "_DistBase":
        # every draw feeds a clock and a lot's time is drawn from the mean and variance:
        # both must exist as finite numbers (a Weibull of shape 0.001 has neither)
        try:
            m, v = float(self.mean), float(self.var)
        except (OverflowError, ZeroDivisionError, ValueError):
            m = v = math.inf
        if not (math.isfinite(m) and math.isfinite(v)):
            raise ValueError("its mean or variance is not a finite number of seconds "
                             "(for a weibull, use a shape of at least 0.05)")
        if m > MAX_DURATION:
            raise ValueError(f"its mean ({m:g} s) is longer than {MAX_DURATION:g} s")
        return self

    @property
    def mean(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def var(self) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    def to_toml_value(self) -> dict[str, Any] | float:
        return {k: v for k, v in self.model_dump().items()}


class Constant(_DistBase):
    """Always ``value`` seconds."""

    dist: Literal["constant"] = "constant"
    """`constant`."""
    value: Duration
    """The duration, s."""

    @property
    def mean(self) -> float:
        return self.value

    @property
    def var(self) -> float:
        return 0.0

    def to_toml_value(self) -> float:
        return self.value


class _Mean(_DistBase):
    mean_: PositiveDuration = Field(alias="mean")
    """Mean, s."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True,
                              allow_inf_nan=False)

    @property
    def mean(self) -> float:
        return self.mean_


class Exponential(_Mean):
    """Exponential with the given mean (s)."""

    dist: Literal["exponential"] = "exponential"
    """`exponential`."""

    @property
    def var(self) -> float:
        return self.mean_**2

    def to_toml_value(self) -> dict[str, Any]:
        return {"dist": "exponential", "mean": self.mean_}


class _MeanCv(_Mean):
    cv: float = Field(ge=0.0, le=10.0)
    """Coefficient of variation (standard deviation / mean)."""

    @property
    def var(self) -> float:
        return (self.cv * self.mean_) ** 2

    def to_toml_value(self) -> dict[str, Any]:
        return {"dist": self.dist, "mean": self.mean_, "cv": self.cv}  # type: ignore[attr-defined]


class Normal(_MeanCv):
    """Normal truncated at 0 whose own mean (s) and cv (sd/mean) are the given ones.

    A time cannot be negative, so the draws are those of an underlying normal above 0; its
    parameters are solved so that the *truncated* distribution has exactly ``mean`` and
    ``cv`` (see :func:`truncated_normal`). A normal truncated at 0 has cv < 1; ``cv = 1``
    is its limit, the exponential, and a larger cv is refused."""

    dist: Literal["normal"] = "normal"
    """`normal` (truncated at 0; cv at most 1)."""

    @model_validator(mode="after")
    def _reachable(self) -> "Normal":
        if self.cv > 1.0:
            raise ValueError(f"cv = {self.cv:g}: a normal truncated at 0 has a cv of at most 1 "
                             "(use gamma or lognormal for more variable times)")
        return self


_ALPHA_MAX = 100.0  # beyond this truncation point the solved cv is within 1.1e-4 of 1: the exponential limit


def _truncated_cv(alpha: float) -> tuple[float, float]:
    """(cv, inverse Mills ratio) of a standard normal truncated below at ``alpha``."""
    from scipy import special  # loaded when first needed: it costs more than `import twin` may
    lam = math.exp(-0.5 * alpha * alpha - 0.5 * math.log(2 * math.pi) - float(special.log_ndtr(-alpha)))
    return math.sqrt(max(1.0 + alpha * lam - lam * lam, 0.0)) / (lam - alpha), lam


def truncated_normal(mean: float, cv: float) -> tuple[float, float, float] | None:
    """``(mu, sigma, alpha)`` of the normal N(mu, sigma) whose part above 0 has mean ``mean`` (s)
    and coefficient of variation ``cv``; ``alpha = -mu/sigma`` is the truncation point in
    standard units. None when ``cv`` is so close to 1 that only the limit (exponential) is left.

    With the inverse Mills ratio ``lam(alpha)``, the truncated mean is ``sigma (lam - alpha)``
    and its variance ``sigma^2 (1 + alpha lam - lam^2)``: the cv depends on ``alpha`` alone and
    rises from 0 to 1, so ``alpha`` is found by bisection and ``sigma`` from the mean."""
    if cv <= 0.0:
        return mean, 0.0, -math.inf
    if cv >= _truncated_cv(_ALPHA_MAX)[0]:
        return None
    lo = -1.0 / cv - 10.0  # practically untruncated there: its cv is about 1 / (1/cv + 10) < cv
    from scipy import optimize
    alpha = optimize.brentq(lambda a: _truncated_cv(a)[0] - cv, lo, _ALPHA_MAX, xtol=1e-12, rtol=1e-14)
    lam = _truncated_cv(alpha)[1]
    sigma = mean / (lam - alpha)
    return -alpha * sigma, sigma, alpha


class Lognormal(_MeanCv):
    """Lognormal parametrised by its own mean (s) and cv."""

    dist: Literal["lognormal"] = "lognormal"
    """`lognormal`."""


class Gamma(_MeanCv):
    """Gamma parametrised by mean (s) and cv (shape = 1/cv^2)."""

    dist: Literal["gamma"] = "gamma"
    """`gamma`."""


class Weibull(_DistBase):
    """Weibull with ``shape`` k and ``scale`` (s); shape > 1 means wear-out (rising hazard)."""

    dist: Literal["weibull"] = "weibull"
    """`weibull`."""
    shape: float = Field(gt=0.0)
    """Shape k (> 1: wear-out, the hazard rises with age)."""
    scale: PositiveDuration
    """Scale λ, s."""

    @property
    def mean(self) -> float:
        return self.scale * math.gamma(1 + 1 / self.shape)

    @property
    def var(self) -> float:
        return self.scale**2 * (math.gamma(1 + 2 / self.shape) - math.gamma(1 + 1 / self.shape) ** 2)


class Triangular(_DistBase):
    """Triangular on [low, high] with the given mode (s)."""

    dist: Literal["triangular"] = "triangular"
    """`triangular`."""
    low: Duration
    """Minimum, s."""
    mode: Duration
    """Most likely value, s."""
    high: PositiveDuration
    """Maximum, s."""

    @model_validator(mode="after")
    def _order(self) -> "Triangular":
        if not (self.low <= self.mode <= self.high) or self.low == self.high:
            raise ValueError("triangular needs low <= mode <= high and low < high")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.mode + self.high) / 3

    @property
    def var(self) -> float:
        a, c, b = self.low, self.mode, self.high
        return (a * a + b * b + c * c - a * b - a * c - b * c) / 18


class Uniform(_DistBase):
    """Uniform on [low, high] (s)."""

    dist: Literal["uniform"] = "uniform"
    """`uniform`."""
    low: Duration
    """Minimum, s."""
    high: PositiveDuration
    """Maximum, s."""

    @model_validator(mode="after")
    def _order(self) -> "Uniform":
        if self.low >= self.high:
            raise ValueError("uniform needs low < high")
        return self

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    @property
    def var(self) -> float:
        return (self.high - self.low) ** 2 / 12


class Empirical(_DistBase):
    """Resamples the observed ``values`` (s) with equal probability."""

    dist: Literal["empirical"] = "empirical"
    """`empirical`."""
    values: list[Duration] = Field(min_length=1)
    """Observed durations, s, resampled with equal weight."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def var(self) -> float:
        return float(np.var(self.values))


DIST_CLASSES = {
    c.model_fields["dist"].annotation.__args__[0]: c  # type: ignore[union-attr]
    for c in (Constant, Exponential, Normal, Lognormal, Gamma, Weibull, Triangular, Uniform, Empirical)
}


def _coerce_dist(v: Any) -> Any:
    if isinstance(v, (int, float, str)) and not isinstance(v, bool):
        return {"dist": "constant", "value": v}
    if isinstance(v, dict):
        name = v.get("dist")
        if name is None:
            raise ValueError(f"a distribution table needs a 'dist' key (one of: {', '.join(DIST_CLASSES)})")
        if not isinstance(name, str):
            raise ValueError(f"'dist' must be a name (one of: {', '.join(DIST_CLASSES)}), got {type(name).__name__}")
        if name not in DIST_CLASSES:
            close = difflib.get_close_matches(str(name), list(DIST_CLASSES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown distribution {name!r}{hint}; known: {', '.join(DIST_CLASSES)}")
    return v


_DistUnion = Annotated[
    Union[Constant, Exponential, Normal, Lognormal, Gamma, Weibull, Triangular, Uniform, Empirical],
    Field(discriminator="dist"),
]
Dist = Annotated[
    _DistUnion,
    # a bare number or duration string is a constant: say so in the JSON Schema too
    BeforeValidator(_coerce_dist, json_schema_input_type=Union[float, DurationText, _DistUnion]),
]
"""Any distribution of durations (seconds)."""

# distributions whose support can be bounded below by 1: a factor >= 1 needs one of them
# (exponential, normal, lognormal, gamma and weibull all reach down to 0)
_BOUNDED_BELOW = ("constant", "uniform", "triangular", "empirical")


def _factor_number(v: Any, where: str = "") -> float:
    where = f"{where}: " if where else ""
    if isinstance(v, str):
        raise ValueError(f"{where}a factor is a plain number (1.1 = 10 % slower), not a duration; got {v!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"{where}a factor is a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or f < 1.0:
        raise ValueError(f"{where}a factor must be at least 1 (1.1 = 10 % slower), got {f:g}")
    return f


def _coerce_factor(v: Any) -> Any:
    """A factor >= 1 (dimensionless) written as a number or a bounded distribution table: every
    value the table names must be a plain number of at least 1, so that no draw is below 1."""
    if isinstance(v, _DistBase):
        v = v.model_dump(by_alias=True)
    if not isinstance(v, dict):
        return {"dist": "constant", "value": _factor_number(v)}
    v = _coerce_dist(v)
    name = v["dist"]
    if name not in _BOUNDED_BELOW:
        raise ValueError(f"the {name} distribution can draw factors below 1; use one of {', '.join(_BOUNDED_BELOW)} "
                         "with values of at least 1")
    for key in ("value", "low", "mode", "high"):
        if key in v:
            _factor_number(v[key], key)
    if "values" in v:
        if not isinstance(v["values"], list):
            raise ValueError(f"values: a list of factors, got {type(v['values']).__name__}")
        for i, x in enumerate(v["values"]):
            _factor_number(x, f"values[{i}]")
    return v


Factor = Annotated[
    _DistUnion,
    BeforeValidator(_coerce_factor, json_schema_input_type=Union[float, _DistUnion]),
]
"""A dimensionless factor >= 1: a number, or a constant, uniform, triangular or empirical table
whose values are all at least 1 (no draw falls below 1)."""

# --------------------------------------------------------------------------- samplers


class Sampler:
    """Draws durations (s) from one distribution using one random stream.

    ``one()`` draws a unit time; ``lot(qty)`` draws the time for ``qty`` units in one
    step from a gamma with mean ``qty*m`` and variance ``qty*var`` (exact for
    exponential and gamma units; constants scale exactly), per DESIGN §6.
    Unit draws come from the stream in blocks of :data:`BLOCK` (one numpy call
    per block instead of per draw); the sequence is still fixed by the seed.
    """

    __slots__ = ("mean", "var", "_rng", "_constant", "_draw", "_buf")

    def __init__(self, dist: _DistBase, rng: np.random.Generator):
        self._rng = rng
        self.mean = dist.mean
        self.var = dist.var
        self._constant = isinstance(dist, Constant) or self.var == 0.0
        self._draw = _make_block(dist, rng)
        self._buf: list[float] = []

    def one(self) -> float:
        buf = self._buf
        if not buf:
            buf.extend(self._draw(BLOCK).tolist())
        return buf.pop()

    def lot(self, qty: int) -> float:
        if qty == 1:
            return self.one()
        if self._constant:
            return self.mean * qty
        m, v = self.mean * qty, self.var * qty
        shape = m * m / v
        return float(self._rng.gamma(shape, v / m))

    def lots(self, qty: int, n: int) -> np.ndarray:
        """``n`` lot times (s): exactly what ``n`` calls of :meth:`lot` would return, in order,
        leaving the stream and the block buffer where those calls would (the serial-line fast
        path draws a station's times this way)."""
        out = np.empty(n)
        if qty != 1:
            if self._constant:
                out.fill(self.mean * qty)
            else:
                m, v = self.mean * qty, self.var * qty
                out[:] = self._rng.gamma(m * m / v, v / m, n)
            return out
        # one() pops a block from its end: the rest of the buffer first, then whole blocks
        # reversed in numpy, and what the last block leaves goes back to the buffer as a list
        buf = self._buf
        i = min(len(buf), n)
        if i:
            out[:i] = buf[:len(buf) - i - 1:-1] if i < len(buf) else buf[::-1]
            del buf[len(buf) - i:]
        while i < n:
            block = self._draw(BLOCK)
            take = min(BLOCK, n - i)
            out[i:i + take] = block[::-1][:take]
            if take < BLOCK:
                buf.extend(block[:BLOCK - take].tolist())
            i += take
        return out

    def lot_by_units(self, qty: int) -> float:
        """The exact lot time: the sum of ``qty`` unit draws (for validating :meth:`lot`)."""
        one = self.one
        return float(sum(one() for _ in range(qty)))


BLOCK = 512


def _make_block(d: _DistBase, rng: np.random.Generator):
    """A function ``n -> ndarray`` of ``n`` independent draws."""
    if isinstance(d, Constant):
        c = d.value
        return lambda n: np.full(n, c)
    if isinstance(d, Exponential):
        m = d.mean
        return lambda n: rng.exponential(m, n)
    if isinstance(d, Normal):
        params = truncated_normal(d.mean, d.cv)
        if params is None:  # cv within 1.1e-4 of 1: the truncated normal's limit
            m = d.mean
            return lambda n: rng.exponential(m, n)
        mu, sd, alpha = params
        if sd == 0.0:
            return lambda n: np.full(n, mu)
        from scipy import special

        log_tail = float(special.log_ndtr(-alpha))

        def normal(n: int) -> np.ndarray:
            # inverse CDF of the part above 0, in log space so that any truncation point works:
            # P(Z > z | Z > alpha) = Phi(-z) / Phi(-alpha) = V, with V uniform on (0, 1]
            v = np.log1p(-rng.random(n)) + log_tail
            return mu - sd * special.ndtri_exp(v)

        return normal
    if isinstance(d, Lognormal):
        s2 = math.log(1 + d.cv**2)
        mu_l, s = math.log(d.mean) - s2 / 2, math.sqrt(s2)
        return lambda n: rng.lognormal(mu_l, s, n)
    if isinstance(d, Gamma):
        if d.cv == 0:
            c = d.mean
            return lambda n: np.full(n, c)
        k = 1 / d.cv**2
        theta = d.mean / k
        return lambda n: rng.gamma(k, theta, n)
    if isinstance(d, Weibull):
        k, lam = d.shape, d.scale
        return lambda n: lam * rng.weibull(k, n)
    if isinstance(d, Triangular):
        a, c, b = d.low, d.mode, d.high
        return lambda n: rng.triangular(a, c, b, n)
    if isinstance(d, Uniform):
        a, b = d.low, d.high
        return lambda n: rng.uniform(a, b, n)
    if isinstance(d, Empirical):
        vals = np.asarray(d.values, dtype=float)
        return lambda n: vals[rng.integers(len(vals), size=n)]
    raise TypeError(f"no sampler for {type(d).__name__}")  # pragma: no cover


def constant(seconds: float) -> Constant:
    """A constant distribution of ``seconds``."""
    return Constant(value=seconds)


# --------------------------------------------------------------------------- residual lives
def residual(dist: _DistBase, elapsed: float, rng: np.random.Generator, qty: int = 1) -> float:
    """A draw of the time left (s) of a duration that has already lasted ``elapsed`` s: from the
    law of ``X - elapsed`` given ``X > elapsed``, where ``X`` is ``dist`` (``qty`` = 1) or the
    engine's law of a lot of ``qty`` units (:meth:`Sampler.lot`: ``qty`` times a constant, else a
    gamma with the lot's mean and variance). Exact for every distribution: inverse survival,
    ``X = S⁻¹(V S(elapsed))`` with ``V`` uniform on (0, 1], in closed form or on scipy's
    special functions (log space where tails are thin). One draw from ``rng`` (none for a
    constant). A duration that has outlasted its law's whole support is done: 0.

    The exponential is memoryless: its residual is a fresh draw, whatever ``elapsed``."""
    e = max(float(elapsed), 0.0)
    if qty != 1 and not (isinstance(dist, Constant) or dist.var == 0.0):
        m, v = dist.mean * qty, dist.var * qty
        return _residual_gamma(m * m / v, v / m, e, rng)
    if isinstance(dist, Constant) or dist.var == 0.0:
        return max(dist.mean * qty - e, 0.0)
    if isinstance(dist, Exponential):
        return float(rng.exponential(dist.mean))
    log_v = math.log1p(-float(rng.random()))  # log V, V = 1 - U in (0, 1]
    from scipy import special  # loaded when first needed, as the normal sampler does

    if isinstance(dist, Normal):
        params = truncated_normal(dist.mean, dist.cv)
        if params is None:  # the exponential limit
            return -dist.mean * log_v
        mu, sd, _ = params
        z = float(special.ndtri_exp(log_v + float(special.log_ndtr(-(e - mu) / sd))))
        return max(mu - sd * z - e, 0.0)
    if isinstance(dist, Lognormal):
        s2 = math.log(1 + dist.cv ** 2)
        mu_l, s = math.log(dist.mean) - s2 / 2, math.sqrt(s2)
        log_s = float(special.log_ndtr(-(math.log(e) - mu_l) / s)) if e > 0 else 0.0
        z = -float(special.ndtri_exp(log_v + log_s))
        return max(math.exp(mu_l + s * z) - e, 0.0)
    if isinstance(dist, Gamma):
        k = 1 / dist.cv ** 2
        return _residual_gamma(k, dist.mean / k, e, rng, log_v)
    if isinstance(dist, Weibull):
        k, lam = dist.shape, dist.scale
        return max(lam * ((e / lam) ** k - log_v) ** (1 / k) - e, 0.0)
    if isinstance(dist, Uniform):
        lo = max(e, dist.low)
        return max(dist.high - math.exp(log_v) * (dist.high - lo), e) - e if e < dist.high else 0.0
    if isinstance(dist, Triangular):
        a, c, b = dist.low, dist.mode, dist.high
        if e >= b:
            return 0.0
        surv = 1.0 if e <= a else (1 - (e - a) ** 2 / ((b - a) * (c - a)) if e < c else (b - e) ** 2 / ((b - a) * (b - c)))
        p = 1.0 - math.exp(log_v) * surv  # the CDF value the draw lands on, F(x) = p
        x = a + math.sqrt(p * (b - a) * (c - a)) if p < (c - a) / (b - a) else b - math.sqrt((1 - p) * (b - a) * (b - c))
        return max(x - e, 0.0)
    if isinstance(dist, Empirical):
        later = [x for x in dist.values if x > e]
        if not later:
            return 0.0
        return later[min(int(-math.expm1(log_v) * len(later)), len(later) - 1)] - e
    raise TypeError(f"no residual law for {type(dist).__name__}")  # pragma: no cover


def _residual_gamma(k: float, theta: float, e: float, rng: np.random.Generator, log_v: float | None = None) -> float:
    """Residual of a gamma(shape ``k``, scale ``theta``) that has lasted ``e`` s (see :func:`residual`)."""
    from scipy import special

    if log_v is None:
        log_v = math.log1p(-float(rng.random()))
    tail = float(special.gammaincc(k, e / theta))
    if tail <= 1e-300:  # far beyond the bulk the gamma's hazard is 1/theta: an exponential residual
        return -theta * log_v
    return max(theta * float(special.gammainccinv(k, math.exp(log_v) * tail)) - e, 0.0)
