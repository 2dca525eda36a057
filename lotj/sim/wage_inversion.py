"""Wage inversion: the wage that delivers a target value, ``W_i(S'; w) = T`` (MODEL.md section 5).

Every event that resets a worker's value to a target ``T`` (a hire, a poach, a counter-offer, a
renegotiation) sets its wage to the solution of ``W_i(S'; w) = T`` at the post-event state ``S'``.
``W`` is increasing in ``w`` in the model (a higher wage is paid until the next reset, and every
reset target is independent of the wage), and :class:`lotj.nets.WorkerValueNet` is increasing by
construction; for any other W the inversion checks it.

:func:`solve_monotone` is a vectorised bracketed root finder for many independent scalar equations:
the bracket is widened until it holds a sign change, W is checked for monotonicity on a grid of the
bracket (the share of states where it is not is reported), and the root is found by the Illinois
variant of regula falsi with a bisection step every third iteration (guaranteed convergence, and
superlinear when W is close to linear in w, as it is between kinks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.worker_value import WorkerValueFunction, wage_curves


@dataclass
class WageInversion:
    """The result of an inversion, per state: ``wage`` and ``value = W(wage)``; ``converged`` where
    ``|W − T| ≤ rtol·max{|T|, scale}``; ``bracketed`` where a sign change was found; ``non_monotone``
    where W decreased between two grid points of the bracket."""

    wage: Tensor
    value: Tensor
    converged: Tensor
    bracketed: Tensor
    non_monotone: Tensor

    @property
    def share_non_monotone(self) -> float:
        """The share of states where W was not monotone in w on the bracket (0 when there are none)."""
        n = self.non_monotone.numel()
        return float(self.non_monotone.sum()) / n if n else 0.0


def solve_monotone(
    fn: Callable[[Tensor], Tensor],
    target: Tensor,
    lo: Tensor,
    hi: Tensor,
    rtol: float = 1e-10,
    scale: Tensor | float = 1.0,
    max_iter: int = 200,
    max_expand: int = 60,
    grid: int = 9,
) -> WageInversion:
    """Solve ``fn(x) = target`` elementwise for an increasing ``fn`` (``[N] → [N]``) from the initial
    brackets ``lo ≤ hi``. ``scale``: the absolute floor of the tolerance (``rtol·max{|T|, scale}``)."""
    dt = target.dtype
    lo, hi = lo.to(dt).clone(), torch.maximum(hi.to(dt), lo.to(dt) + 1e-12).clone()
    tol = rtol * torch.maximum(target.abs(), torch.as_tensor(scale, dtype=dt, device=target.device))
    f_lo, f_hi = fn(lo) - target, fn(hi) - target
    # widen: move the bound on the wrong side outward by twice the current width
    for _ in range(max_expand):
        low_bad, high_bad = f_lo > 0, f_hi < 0
        if not bool((low_bad | high_bad).any()):
            break
        width = hi - lo
        new_lo = torch.where(low_bad, lo - 2.0 * width, lo)
        new_hi = torch.where(high_bad, hi + 2.0 * width, hi)
        # the old bound is still a valid bound on the other side
        hi = torch.where(low_bad & ~high_bad, lo, new_hi)
        f_hi = torch.where(low_bad & ~high_bad, f_lo, f_hi)
        lo = new_lo
        if bool(low_bad.any()):
            f_lo = torch.where(low_bad, fn(lo) - target, f_lo)
        if bool(high_bad.any()):
            f_hi = torch.where(high_bad, fn(hi) - target, f_hi)
    bracketed = (f_lo <= 0) & (f_hi >= 0)

    # monotonicity on the bracket
    if grid > 0:
        frac = torch.linspace(0.0, 1.0, grid + 2, dtype=dt, device=target.device)
        pts = lo.unsqueeze(0) + frac.unsqueeze(-1) * (hi - lo).unsqueeze(0)  # [G, N]
        vals = torch.stack([fn(x) for x in pts])
        slack = 1e-12 * torch.maximum(vals.abs().amax(0), torch.as_tensor(1.0, dtype=dt))
        non_monotone = ((vals[1:] - vals[:-1]) < -slack).any(0)
    else:
        non_monotone = torch.zeros_like(bracketed)

    x = torch.where(f_lo.abs() <= f_hi.abs(), lo, hi)
    fx = torch.where(f_lo.abs() <= f_hi.abs(), f_lo, f_hi)
    side = torch.zeros_like(target)  # +1 the last update moved hi, −1 lo (Illinois bookkeeping)
    done = ~bracketed | (fx.abs() <= tol)
    for it in range(max_iter):
        if bool(done.all()):
            break
        denom = f_hi - f_lo
        secant = lo - f_lo * (hi - lo) / torch.where(denom > 0, denom, torch.ones_like(denom))
        mid = 0.5 * (lo + hi)
        use_mid = (it % 3 == 2) | (denom <= 0) | ~torch.isfinite(secant) | (secant <= lo) | (secant >= hi)
        cand = torch.where(use_mid, mid, secant)
        fc = fn(cand) - target
        active = ~done
        x = torch.where(active, cand, x)
        fx = torch.where(active, fc, fx)
        up = active & (fc > 0)  # root below cand: cand is the new hi
        down = active & (fc <= 0)
        # Illinois: halve the stale end's residual when the same end moves twice in a row
        f_lo = torch.where(up & (side > 0), 0.5 * f_lo, f_lo)
        f_hi = torch.where(down & (side < 0), 0.5 * f_hi, f_hi)
        hi, f_hi = torch.where(up, cand, hi), torch.where(up, fc, f_hi)
        lo, f_lo = torch.where(down, cand, lo), torch.where(down, fc, f_lo)
        side = torch.where(up, 1.0, torch.where(down, -1.0, side))
        tiny = (hi - lo) <= 4 * torch.finfo(dt).eps * torch.maximum(lo.abs(), hi.abs()).clamp_min(1.0)
        done = done | (fc.abs() <= tol) | tiny
    value = fn(x)
    converged = bracketed & ((value - target).abs() <= tol)
    return WageInversion(x, value, converged, bracketed, non_monotone)


def initial_wage_bracket(p: EconomyParams, h: Tensor, target: Tensor, width: float = 0.5) -> tuple[Tensor, Tensor]:
    """A first bracket around the wage of the no-reset guess ``W = U + (w − b h)/r̄`` (the value of a wage
    paid until the match ends; docs/wages.md): ``w₀ = b h + r̄ (T − U)``, ± ``width·(|w₀| + b h) + 0.05 h``."""
    u = p.unemployment_coef * h
    w0 = p.b * h + p.outflow_rate * (target - u)
    half = width * (w0.abs() + p.b * h) + 0.05 * h
    return w0 - half, w0 + half


def invert_wage(
    wf: WorkerValueFunction,
    p: EconomyParams,
    s: FirmBatch,
    w: Tensor,
    target: Tensor,
    active: Tensor,
    rtol: float = 1e-10,
    grid: int = 9,
) -> tuple[Tensor, WageInversion]:
    """Wages that solve ``W_i(S; w_i) = T_i`` for the slots ``active`` ``[B, n_max]`` of the firms ``s``
    (the post-event states); ``w`` holds the other workers' wages (W_i ignores them, so every active
    slot of a firm is solved at once). Returns the new wage tensor (``w`` with the active slots replaced)
    and the :class:`WageInversion` of the active slots (in ``active.nonzero()`` order)."""
    out = w.clone()
    has = active.any(-1)
    firms, sub_active, sub_w = s.index(has), active[has], w[has]
    b, i = sub_active.nonzero(as_tuple=True)
    if b.numel() == 0:
        empty = w[active]
        flag = torch.zeros_like(empty, dtype=torch.bool)
        return out, WageInversion(empty, empty, flag, flag, flag)

    with torch.no_grad():
        fn = wage_curves(wf, firms, sub_w, sub_active)

    h = firms.h[b, i]
    t = target[has][b, i]
    lo, hi = initial_wage_bracket(p, h, t)
    with torch.no_grad():
        res = solve_monotone(fn, t, lo, hi, rtol=rtol, scale=p.unemployment_coef * h, grid=grid)
    out[active] = res.wage.to(out.dtype)
    return out, res
