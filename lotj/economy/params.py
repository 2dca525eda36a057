"""Model parameters (MODEL.md section 7) and the quantities derived from them.

`EconomyParams` is both the `economy` group of the typed configuration and the object the
economics functions read. Every name is the one MODEL.md section 7 uses. Covariance
matrices follow MODEL.md section 7's reading of the source table: standard deviations on
the diagonal (``sd_log_*``) and covariances off the diagonal (``cov_log_*``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from lotj.errors import ConfigError

#: Draws from G_w and G_f are truncated at this many standard deviations (MODEL.md section 10).
TRUNCATION_SD = 4.0

_RATES = ("rho", "delta_r", "delta_f", "delta_m", "lam", "gamma_e", "psi_e", "psi_n")
_SDS = ("sd_log_h", "sd_log_a", "sd_log_z", "sd_log_q")


@dataclass
class EconomyParams:
    """Parameters of the economy. Defaults are the source calibration (MODEL.md section 7).

    ``n_max`` is the firm size cap, a numerical device (MODEL.md section 10).
    ``worker_types`` / ``firm_types`` replace G_w / G_f by discrete distributions when set
    (validation economies): rows ``[h, a, prob]`` and ``[z, q, prob]``.
    """

    # external
    rho: float = 0.05
    delta_r: float = 0.05
    lam: float = 1.0
    gamma_e: float = 1.0
    mu_h: float = 0.0
    mu_a: float = 0.0
    mu_z: float = 0.0
    # internally calibrated (source values)
    n_w: float = 5.371
    b: float = 0.141
    eta: float = 0.939
    mu_q: float = -0.016
    sd_log_z: float = 0.342
    sd_log_q: float = 0.013
    cov_log_zq: float = 1.69e-4
    delta_m: float = 0.127
    sd_log_h: float = 0.157
    sd_log_a: float = 0.008
    cov_log_ha: float = 4.2315e-7
    theta_plus: float = 0.165
    theta_minus: float = 0.034
    delta_f: float = 0.001
    psi_e: float = 1.048
    psi_n: float = 0.314
    # numerical device
    n_max: int = 32
    # discrete validation economies (None: the log-normal G_w, G_f)
    worker_types: list[list[float]] | None = None
    firm_types: list[list[float]] | None = None

    # ------------------------------------------------------------------ derived
    @property
    def sigma_w(self) -> np.ndarray:
        """Σ_w for (log h, log a) (MODEL.md section 1)."""
        return np.array([[self.sd_log_h**2, self.cov_log_ha], [self.cov_log_ha, self.sd_log_a**2]])

    @property
    def sigma_f(self) -> np.ndarray:
        """Σ_f for (log z, log q) (MODEL.md section 1)."""
        return np.array([[self.sd_log_z**2, self.cov_log_zq], [self.cov_log_zq, self.sd_log_q**2]])

    @property
    def unemployment_coef(self) -> float:
        """U(h) = b h / (ρ + δ_r) (MODEL.md section 2): the coefficient on h."""
        return self.b / (self.rho + self.delta_r)

    @property
    def outflow_rate(self) -> float:
        """ρ + δ_f + δ_r + δ_m: the rate that bounds value growth (MODEL.md section 10)."""
        return self.rho + self.delta_f + self.delta_r + self.delta_m

    def learning_probability(self, dt: float) -> float:
        """The chance of a learning event in one simulated step of ``dt`` years, ``γ^E·dt``: learning
        events compound, so the expected number per step must be exact (docs/simulator.md, "Accuracy
        in dt"). Raises ConfigError when it exceeds 1 (a step would need more than one event)."""
        prob = self.gamma_e * dt
        if prob > 1.0:
            raise ConfigError(
                f"sim.dt = {dt}: γ^E·dt = {prob:.3g} > 1, a step would need more than one learning event "
                f"(docs/simulator.md); use sim.dt <= {1.0 / self.gamma_e:.3g}"
            )
        return prob

    def max_log_aq(self) -> float:
        """Largest log a + log q on the truncated support of G_w and G_f (or the discrete types)."""
        if self.worker_types is not None:
            log_a = max(math.log(row[1]) for row in self.worker_types)
        else:
            log_a = self.mu_a + TRUNCATION_SD * self.sd_log_a
        if self.firm_types is not None:
            log_q = max(math.log(row[1]) for row in self.firm_types)
        else:
            log_q = self.mu_q + TRUNCATION_SD * self.sd_log_q
        return log_a + log_q

    # --------------------------------------------------------------- validation
    def validate(self) -> EconomyParams:
        """Refuse parameters the model cannot use; each message names the key and what is allowed."""
        for name in _RATES:
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"economy.{name} = {v}: a rate must be finite and >= 0")
        if self.rho <= 0:
            raise ConfigError(f"economy.rho = {self.rho}: the discount rate must be > 0")
        for name in _SDS:
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"economy.{name} = {v}: a standard deviation must be finite and >= 0")
        if self.b < 0:
            raise ConfigError(f"economy.b = {self.b}: the benefit rate must be >= 0")
        if not self.eta > 0:
            raise ConfigError(f"economy.eta = {self.eta}: the CES exponent must be > 0")
        if not self.n_w > 0:
            raise ConfigError(f"economy.n_w = {self.n_w}: workers per firm must be > 0")
        if self.n_max < 1:
            raise ConfigError(f"economy.n_max = {self.n_max}: the firm size cap must be >= 1")
        for name in ("theta_plus", "theta_minus"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"economy.{name} must be finite")
        for sd_1, sd_2, cov_name in (
            ("sd_log_h", "sd_log_a", "cov_log_ha"),
            ("sd_log_z", "sd_log_q", "cov_log_zq"),
        ):
            zero = [name for name in (sd_1, sd_2) if getattr(self, name) == 0]
            if zero and getattr(self, cov_name) != 0:  # MODEL.md section 10: a zero variance takes its covariance
                raise ConfigError(
                    f"economy.{cov_name} = {getattr(self, cov_name)}: must be 0 when economy.{zero[0]} = 0 "
                    f"(a variable without variance has no covariance; set {cov_name}=0 with it)"
                )
        for name, cov in (
            ("sigma_w (sd_log_h, sd_log_a, cov_log_ha)", self.sigma_w),
            ("sigma_f (sd_log_z, sd_log_q, cov_log_zq)", self.sigma_f),
        ):
            eig = np.linalg.eigvalsh(cov)
            if eig.min() < -1e-12 * max(1.0, float(np.abs(cov).max())):
                raise ConfigError(
                    f"economy.{name}: the covariance matrix {cov.tolist()} is not positive semi-definite "
                    f"(eigenvalues {eig.tolist()}); need cov^2 <= sd_1^2 * sd_2^2"
                )
        self._validate_types("worker_types", "h", "a")
        self._validate_types("firm_types", "z", "q")
        growth = self.gamma_e * (math.exp(self.max_log_aq()) - 1.0)
        if growth >= self.outflow_rate:
            raise ConfigError(
                "economy: values would be infinite: the largest gamma_e*(a*q - 1) on the support "
                f"is {growth:.4g}, not below rho + delta_f + delta_r + delta_m = {self.outflow_rate:.4g} "
                "(lower mu_a, mu_q, sd_log_a, sd_log_q or gamma_e)"
            )
        return self

    def _validate_types(self, name: str, first: str, second: str) -> None:
        rows = getattr(self, name)
        if rows is None:
            return
        if len(rows) == 0:
            raise ConfigError(f"economy.{name}: give at least one row [{first}, {second}, prob]")
        for row in rows:
            if len(row) != 3 or not (row[0] > 0 and row[1] > 0 and row[2] >= 0):
                raise ConfigError(f"economy.{name}: row {list(row)} must be [{first} > 0, {second} > 0, prob >= 0]")
        total = sum(row[2] for row in rows)
        if abs(total - 1.0) > 1e-9:
            raise ConfigError(f"economy.{name}: probabilities sum to {total}, not 1")


def param_names() -> list[str]:
    """The names of the model's parameters (without the numerical device and discrete types)."""
    skip = {"n_max", "worker_types", "firm_types"}
    return [f.name for f in fields(EconomyParams) if f.name not in skip]


@dataclass(frozen=True)
class MeetingRates:
    """ω, s^N and s^E from the market-clearing identity (MODEL.md section 3)."""

    omega: float
    s_n: float
    s_e: float


def meeting_rates(p: EconomyParams, employment_rate: float, mean_n_plus_one: float) -> MeetingRates:
    """Market clearing for meetings (MODEL.md section 3):

    ``ω ∫(1 + n) dχ = N_w [e ψ^E + (1 − e) ψ^N]``, ``s^N = (1−e)ψ^N / (eψ^E + (1−e)ψ^N)``.
    With no meetings (ψ^N = ψ^E = 0, or no meeting-generating workers) ω = s^N = s^E = 0
    (MODEL.md section 10).
    """
    e = float(employment_rate)
    flow_n = (1.0 - e) * p.psi_n
    flow_e = e * p.psi_e
    total = flow_n + flow_e
    if total <= 0.0:
        return MeetingRates(0.0, 0.0, 0.0)
    omega = p.n_w * total / float(mean_n_plus_one)
    return MeetingRates(omega, flow_n / total, flow_e / total)
