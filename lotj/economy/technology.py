"""Technology: production F, the learning step H, and the unemployment value U (MODEL.md section 2).

All functions take padded tensors: worker arrays of shape ``[..., n_max]`` with a boolean
``mask`` (True for a real worker). Padding slots never affect real workers or firm totals.
"""

from __future__ import annotations

import torch
from torch import Tensor


def production_from_pool(z: Tensor, sum_h_eta: Tensor, eta: float) -> Tensor:
    """F = z (Σ_i h_i^η)^(1/η) given the pooled sum Σ_i h_i^η (MODEL.md section 2); F = 0 when empty.

    The pooled form lets removal/addition neighbours reuse the firm's sum
    (Σ h^η of S⊖x_i is Σ h^η of S minus h_i^η).
    """
    positive = sum_h_eta > 0
    safe = torch.where(positive, sum_h_eta, torch.ones_like(sum_h_eta))
    return torch.where(positive, z * safe.pow(1.0 / eta), torch.zeros_like(safe))


def production(z: Tensor, h: Tensor, mask: Tensor, eta: float) -> Tensor:
    """CES production F(S) = z (Σ_i h_i^η)^(1/η), F = 0 for an empty firm (MODEL.md section 2).

    ``z``: ``[B]``; ``h``, ``mask``: ``[B, n_max]``. Returns ``[B]``.
    """
    h_eta = torch.where(mask, h.clamp_min(1e-30).pow(eta), torch.zeros_like(h))
    return production_from_pool(z, h_eta.sum(-1), eta)


def learning_step(h: Tensor, a: Tensor, q: Tensor, mask: Tensor, theta_plus: float, theta_minus: float) -> Tensor:
    """The learning event S → H(S) (MODEL.md section 2), for every worker at once:

    ``log(h_i'/h_i) = log a_i + log q + θ⁺/(n−1) Σ_{h_j > h_i} log(h_j/h_i)
                                    + θ⁻/(n−1) Σ_{h_j < h_i} log(h_j/h_i)``.

    Simultaneous update from the pre-event ``h``; ties (``h_j = h_i``) enter neither sum;
    for ``n = 1`` both coworker sums are empty. Padding slots keep their ``h``.
    ``h, a, mask``: ``[B, n_max]``; ``q``: ``[B]``. Returns the new ``h``.
    """
    log_h = torch.log(torch.where(mask, h, torch.ones_like(h)))
    diff = log_h.unsqueeze(-2) - log_h.unsqueeze(-1)  # [B, i, j] = log h_j - log h_i
    pair = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    up = torch.where(pair & (diff > 0), diff, torch.zeros_like(diff)).sum(-1)
    down = torch.where(pair & (diff < 0), diff, torch.zeros_like(diff)).sum(-1)
    n = mask.sum(-1, keepdim=True).to(h.dtype)
    inv = torch.where(n > 1, 1.0 / (n - 1.0).clamp_min(1.0), torch.zeros_like(n))
    growth = torch.log(a) + torch.log(q).unsqueeze(-1) + inv * (theta_plus * up + theta_minus * down)
    return torch.where(mask, h * torch.exp(growth), h)


def unemployment_value(h: Tensor, b: float, rho: float, delta_r: float) -> Tensor:
    """U(h) = b h / (ρ + δ_r) (MODEL.md section 2): with take-it-or-leave-it offers an unmatched
    worker never gains from a meeting, so U depends on h alone."""
    return b * h / (rho + delta_r)
