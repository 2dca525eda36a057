"""The auxiliary regression (6) of MODEL.md section 8, as MEASUREMENT.md defines it.

Sample: stayers at t whose firm had n ≥ 2 workers at t − 1. For stayer i of firm k, with all ranks
at t − 1 and the coworkers all other workers of k at t − 1 (stayers or not):

    Δr_i = α_k + θ1⁺ Σ_{r_j>r_i} (r_j − r_i)/(n−1) + θ1⁻ Σ_{r_j<r_i} (r_j − r_i)/(n−1)
               + θ2⁺ Σ_{r_j>r_i} (r_j − r_i)²/(n−1) + θ2⁻ Σ_{r_j<r_i} (r_j − r_i)²/(n−1) + ε,

one α_k per firm over all years, OLS. Firms with a single observation are dropped first (fixest's
default). The regressors come from :func:`lotj.measure.coworkers.coworker_sums` (no pair of workers is
formed). The fit is pyfixest's ``feols`` with standard errors clustered by firm (CRV1), checked against least
squares on the demeaned regressors (used where the two differ by more than 1e-6, relative); the firm effects
are ``α_k = mean_k(Δr − x'θ)``, the exact OLS fixed effects (pyfixest's ``fixef()`` agrees to its solver's
tolerance; a test checks both against a dummy-variable OLS).

Identification (MEASUREMENT.md rule 6): the regressors demeaned within firm, each divided by the norm of
its raw column, must have a smallest singular value above 1e-9; otherwise the θ's and the variance of the
firm effects are null, while the RMSE (of the projection, which is unique) and n are still reported.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lotj.measure.coworkers import coworker_sums

#: the regressors of (6), in the order of the coefficients θ1⁺, θ1⁻, θ2⁺, θ2⁻
COEFFICIENTS = ("theta1_plus", "theta1_minus", "theta2_plus", "theta2_minus")
#: smallest singular value of the scaled demeaned regressors below which (6) is not identified
SINGULAR_TOL = 1e-9


@dataclass
class RegressionSample:
    """The sample of (6) after the singleton drop: ``y`` = Δr, ``X`` [N, 4] (columns of
    :data:`COEFFICIENTS`), ``firm`` (firm codes 0..K−1), ``firm_id`` [K]; ``dropped``: singleton rows."""

    y: np.ndarray
    X: np.ndarray
    firm: np.ndarray
    firm_id: np.ndarray
    dropped: int = 0


@dataclass
class RegressionResult:
    """Regression (6): the coefficients and their firm-clustered standard errors (None when not identified),
    the firm effects, their population variance, the RMSE (no degrees-of-freedom correction) and n."""

    coef: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(COEFFICIENTS))
    se: dict[str, float | None] = field(default_factory=lambda: dict.fromkeys(COEFFICIENTS))
    firm_effects: pd.Series | None = None
    var_firm_effects: float | None = None
    rmse: float | None = None
    n: int = 0
    n_firms: int = 0
    identified: bool = False
    smallest_singular_value: float | None = None
    dropped_singletons: int = 0
    note: str = ""

    def moments(self) -> dict[str, float | int | None]:
        """The moments.json keys of (6)."""
        return {
            **self.coef,
            "var_firm_effects": self.var_firm_effects,
            "regression_rmse": self.rmse,
            "regression_n": self.n,
        }


def regression_sample(emp: pd.DataFrame, r: np.ndarray, prev: np.ndarray, cur: np.ndarray) -> RegressionSample:
    """The sample of (6) from the employed rows ``emp`` (with ``fy``, ``n``), their ranks ``r`` and the
    stayers' row positions ``prev`` (t − 1) and ``cur`` (t)."""
    fy = emp["fy"].to_numpy()
    sums = coworker_sums(fy, r)
    n0 = sums.n[prev]
    keep = n0 >= 2
    prev, cur = prev[keep], cur[keep]
    d = (sums.n[prev] - 1).astype(float)
    X = np.column_stack([sums.plus1[prev], sums.minus1[prev], sums.plus2[prev], sums.minus2[prev]]) / d[:, None]
    y = r[cur] - r[prev]
    firm_ids = emp["firm_id"].to_numpy()[cur]
    uniq, code = np.unique(firm_ids, return_inverse=True)
    count = np.bincount(code, minlength=len(uniq))
    single = count[code] == 1
    keep_firm = count > 1
    new_code = np.cumsum(keep_firm) - 1
    return RegressionSample(
        y=y[~single],
        X=X[~single],
        firm=new_code[code[~single]],
        firm_id=uniq[keep_firm],
        dropped=int(single.sum()),
    )


def _demean(v: np.ndarray, firm: np.ndarray, count: np.ndarray) -> np.ndarray:
    if v.ndim == 1:
        return v - (np.bincount(firm, weights=v) / count)[firm]
    return np.column_stack([_demean(v[:, j], firm, count) for j in range(v.shape[1])])


def smallest_singular_value(Xd: np.ndarray, X: np.ndarray) -> float:
    """Smallest singular value of the demeaned regressors ``Xd``, each column divided by the norm of its raw
    column in ``X`` (a zero raw column gives a zero column); 0 when there are fewer rows than regressors."""
    if Xd.shape[0] < Xd.shape[1]:
        return 0.0
    norm = np.linalg.norm(X, axis=0)
    scaled = np.where(norm > 0, Xd / np.where(norm > 0, norm, 1.0), 0.0)
    return float(np.linalg.svd(scaled, compute_uv=False).min())


def fit_regression(sample: RegressionSample, *, standard_errors: bool = True) -> RegressionResult:
    """Fit (6) on ``sample`` (module docstring)."""
    res = RegressionResult(n=len(sample.y), dropped_singletons=sample.dropped, n_firms=len(sample.firm_id))
    if res.n == 0:
        res.note = "empty sample: no stayer of a firm with n >= 2 at t-1 in a firm with two or more such stayers"
        return res
    count = np.bincount(sample.firm).astype(float)
    yd = _demean(sample.y, sample.firm, count)
    Xd = _demean(sample.X, sample.firm, count)
    res.smallest_singular_value = smallest_singular_value(Xd, sample.X)
    res.identified = res.smallest_singular_value > SINGULAR_TOL
    if not res.identified:
        beta = np.linalg.lstsq(Xd, yd, rcond=None)[0]  # the residual of the projection is unique
        res.rmse = math.sqrt(float(np.mean((yd - Xd @ beta) ** 2)))
        res.note = (
            f"not identified: the smallest singular value of the scaled demeaned regressors is "
            f"{res.smallest_singular_value:.3g} <= {SINGULAR_TOL:g}"
        )
        return res
    # the within-firm OLS by least squares on the scaled demeaned regressors (no normal equations)
    norm = np.linalg.norm(sample.X, axis=0)
    beta_ls = np.linalg.lstsq(Xd / norm, yd, rcond=None)[0] / norm
    if not standard_errors:
        beta, se = beta_ls, None
    elif len(sample.firm_id) < 2:  # one cluster: no firm-clustered standard error exists
        beta, se = beta_ls, None
        res.note = "coefficients from the numpy within-firm OLS; clustered standard errors need two or more firms"
    else:
        beta, se = _feols(sample)
        if beta is None:  # pyfixest dropped a regressor it found collinear
            beta = beta_ls
            res.note = "coefficients from the numpy within-firm OLS (pyfixest dropped a regressor)"
        elif not np.allclose(beta, beta_ls, rtol=1e-6, atol=1e-12 * np.abs(beta_ls).max()):
            # pyfixest solves the normal equations: on ill-conditioned regressors least squares is the accurate one
            beta = beta_ls
            res.note = "coefficients from the numpy within-firm OLS (pyfixest's normal equations lost precision)"
    resid = yd - Xd @ beta
    res.rmse = math.sqrt(float(np.mean(resid**2)))
    alpha = np.bincount(sample.firm, weights=sample.y - sample.X @ beta) / count
    res.firm_effects = pd.Series(alpha, index=pd.Index(sample.firm_id, name="firm_id"), name="alpha")
    res.var_firm_effects = float(np.var(alpha))
    res.coef = {k: float(b) for k, b in zip(COEFFICIENTS, beta)}
    if se is not None:
        res.se = {k: float(s) for k, s in zip(COEFFICIENTS, se)}
    return res


def _feols(sample: RegressionSample) -> tuple[np.ndarray | None, np.ndarray | None]:
    """pyfixest's ``feols`` of (6) with firm fixed effects and CRV1 standard errors clustered by firm (which
    need two or more firms: the caller checks). Returns (None, None) when it drops a regressor."""
    import pyfixest as pf

    data = pd.DataFrame(sample.X, columns=list(COEFFICIENTS))
    data["dr"] = sample.y
    data["firm"] = sample.firm
    fml = "dr ~ " + " + ".join(COEFFICIENTS) + " | firm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.feols(fml, data=data, vcov={"CRV1": "firm"}, fixef_rm="singleton", copy_data=False, lean=False)
    coef = fit.coef()
    if list(coef.index) != list(COEFFICIENTS):
        return None, None
    se = fit.se()
    return coef.to_numpy(dtype=float), se.to_numpy(dtype=float)


def regression6(emp: pd.DataFrame, r: np.ndarray, prev: np.ndarray, cur: np.ndarray) -> RegressionResult:
    """Regression (6) on a panel's employed rows (module docstring)."""
    return fit_regression(regression_sample(emp, r, prev, cur))
