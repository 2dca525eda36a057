"""The searched parameters: bounds, the correlation-searched covariances, candidates as config overrides.

A parameter of MODEL.md section 7 is searched in ``[lower, upper]`` (uniformly, or log-uniformly with
``log: true``). A covariance (``cov_log_zq``, ``cov_log_ha``) is searched as the correlation
``corr_log_zq = cov_log_zq / (sd_log_z sd_log_q)`` in bounds inside ``[-1, 1]``: with ``|corr| ≤ 1`` every
candidate's 2×2 covariance matrix is positive semi-definite (MODEL.md section 10), whatever standard
deviations the same candidate has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lotj.errors import ConfigError

#: covariance -> (its correlation's searched name, the two standard deviations it couples), MODEL.md section 1
COVARIANCES: dict[str, tuple[str, str, str]] = {
    "cov_log_zq": ("corr_log_zq", "sd_log_z", "sd_log_q"),
    "cov_log_ha": ("corr_log_ha", "sd_log_h", "sd_log_a"),
}
#: MODEL.md section 7: the internally calibrated parameters (the only ones a calibration may search)
INTERNAL = (
    "n_w", "b", "eta", "mu_q", "sd_log_z", "sd_log_q", "cov_log_zq", "delta_m",
    "sd_log_h", "sd_log_a", "cov_log_ha", "theta_plus", "theta_minus", "delta_f", "psi_e", "psi_n",
)  # fmt: skip


@dataclass(frozen=True)
class Parameter:
    """One searched coordinate: ``name`` is the economy's parameter, or ``corr_log_*`` for a covariance."""

    name: str
    lower: float
    upper: float
    log: bool = False
    covariance: str = ""  #: the economy parameter a correlation sets ("" for a plain parameter)

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def unit(self, value: float) -> float:
        """The value on [0, 1] (log scale for ``log``): distances between candidates are measured there."""
        if self.log:
            return (math.log(value) - math.log(self.lower)) / (math.log(self.upper) - math.log(self.lower))
        return (value - self.lower) / self.width

    def value(self, unit: float) -> float:
        """The inverse of :meth:`unit`: the value at ``unit`` ∈ [0, 1] of the range (log scale for ``log``)."""
        if self.log:
            return math.exp(math.log(self.lower) + unit * (math.log(self.upper) - math.log(self.lower)))
        return self.lower + unit * self.width


def parse_parameter(name: str, spec: Any) -> Parameter:
    """``name: [lo, hi]``, ``name: {bounds: [lo, hi], log: true}`` or, for a covariance, ``name: {corr: [lo, hi]}``."""
    if name not in INTERNAL:
        raise ConfigError(f"calibrate parameter {name!r}: not an internally calibrated parameter; allowed {INTERNAL}")
    if isinstance(spec, dict) and "corr" in spec:
        if name not in COVARIANCES:
            raise ConfigError(f"calibrate parameter {name}: only a covariance {list(COVARIANCES)} takes corr bounds")
        lo, hi = _bounds(name, spec["corr"])
        if not -1.0 <= lo < hi <= 1.0:
            raise ConfigError(f"calibrate parameter {name}: corr bounds {[lo, hi]} must lie in [-1, 1]")
        return Parameter(COVARIANCES[name][0], lo, hi, covariance=name)
    if name in COVARIANCES:
        raise ConfigError(f"calibrate parameter {name}: a covariance is searched as a correlation: {{corr: [lo, hi]}}")
    log = False
    if isinstance(spec, dict):
        unknown = set(spec) - {"bounds", "log"}
        if unknown:
            raise ConfigError(f"calibrate parameter {name}: unknown keys {sorted(unknown)} (bounds, log)")
        log, spec = bool(spec.get("log", False)), spec.get("bounds")
    lo, hi = _bounds(name, spec)
    if log and lo <= 0:
        raise ConfigError(f"calibrate parameter {name}: log bounds need a lower bound > 0, got {lo}")
    return Parameter(name, lo, hi, log=log)


def _bounds(name: str, spec: Any) -> tuple[float, float]:
    ok = isinstance(spec, (list, tuple)) and len(spec) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in spec)
    if not ok or not spec[0] < spec[1]:
        raise ConfigError(f"calibrate parameter {name}: bounds must be [lower, upper] with lower < upper, got {spec!r}")
    return float(spec[0]), float(spec[1])


def economy_values(candidate: dict[str, float], params: list[Parameter], economy: Any) -> dict[str, float]:
    """The economy parameters a candidate sets: plain values as they are, each correlation as its covariance
    ``corr × sd × sd'`` with the candidate's standard deviations (or the economy's own where not searched)."""
    out = {p.name: float(candidate[p.name]) for p in params if not p.covariance}
    for p in params:
        if p.covariance:
            _, sd1, sd2 = COVARIANCES[p.covariance]
            s1 = out.get(sd1, getattr(economy, sd1))
            s2 = out.get(sd2, getattr(economy, sd2))
            out[p.covariance] = float(candidate[p.name]) * s1 * s2
    return out


def overrides(candidate: dict[str, float], params: list[Parameter], economy: Any) -> list[str]:
    """A candidate as config overrides ``economy.NAME=value``."""
    return [f"economy.{k}={v!r}" for k, v in sorted(economy_values(candidate, params, economy).items())]


def start_point(params: list[Parameter], economy: Any) -> dict[str, float]:
    """The economy's own values in the searched coordinates (a covariance as its correlation), each clipped
    into its bounds (a clipped start is reported by :func:`clipped`)."""
    out = {}
    for p in params:
        value = _own_value(p, economy)
        out[p.name] = min(max(value, p.lower), p.upper)
    return out


def clipped(params: list[Parameter], economy: Any) -> list[str]:
    """Parameters whose config value lies outside their bounds (the start point moves them inside)."""
    return [p.name for p in params if not p.lower <= _own_value(p, economy) <= p.upper]


def _own_value(p: Parameter, economy: Any) -> float:
    if not p.covariance:
        return float(getattr(economy, p.name))
    _, sd1, sd2 = COVARIANCES[p.covariance]
    scale = getattr(economy, sd1) * getattr(economy, sd2)
    return float(getattr(economy, p.covariance)) / scale if scale > 0 else 0.0


def unit_vector(candidate: dict[str, float], params: list[Parameter]) -> np.ndarray:
    """The candidate on the unit cube of the bounds."""
    return np.array([p.unit(float(candidate[p.name])) for p in params])


def from_unit(u: np.ndarray, params: list[Parameter]) -> dict[str, float]:
    """The candidate at the unit-cube point ``u`` (the inverse of :func:`unit_vector`), each value inside its
    bounds."""
    return {p.name: min(max(p.value(float(x)), p.lower), p.upper) for p, x in zip(params, u)}


def nearest(candidate: dict[str, float], others: list[dict[str, float]], params: list[Parameter]) -> int | None:
    """Index of the candidate among ``others`` nearest to ``candidate`` on the unit cube (None if none)."""
    if not others:
        return None
    x = unit_vector(candidate, params)
    distances = [float(np.linalg.norm(unit_vector(o, params) - x)) for o in others]
    return int(np.argmin(distances))


def at_bounds(candidate: dict[str, float], params: list[Parameter], share: float = 0.01) -> list[str]:
    """A line for each parameter of ``candidate`` within ``share`` of its range (on the searched scale, log for
    a log parameter) of a bound: there the targets pull it beyond the box, the best point is a corner of the
    bounds rather than a minimum, and the bound is worth widening where the economics allow."""
    lines = []
    for p in params:
        u = p.unit(float(candidate[p.name]))
        side = "lower" if u <= share else "upper" if u >= 1.0 - share else ""
        if side:
            bound = p.lower if side == "lower" else p.upper
            lines.append(f"{p.name} = {candidate[p.name]:.6g} is at its {side} bound {bound:g} (within "
                         f"{share:.0%} of its range): the targets pull it beyond; widen the bound if the "
                         "economics allow")  # fmt: skip
    return lines
