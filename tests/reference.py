"""Test fixtures: analytic value functions for checking the simulator (MODEL.md section 4; docs/simulator.md).

Each is a plain set function ``fn(z, q, h, a, mask) -> [B]``; wrap it in
:class:`lotj.economy.value.SetFunctionValue` to get a :class:`~lotj.economy.value.ValueFunction`.
They are not equilibrium values: they fix the policies so that the simulator's mechanics can be
compared with closed forms (accept-all) or exercised with every kind of decision (crowding).

- :func:`accept_all_value`: ``V(S) = Σ_i (U(x_i) + c_i)`` with ``c_i = c·(1 + ε·log z)``. Every
  hire has ``Δ(S⊕x, x) = c_k > 0`` and no worker ever has ``Δ < 0``, so nobody quits; with
  ``ε > 0`` an employed worker moves exactly when it meets a firm with higher ``z`` (no ties).
  Employment then follows the two-state chain of MODEL.md section 3 with
  ``e = ψ^N / (ψ^N + δ_m + δ_r + δ_f)`` when the cap never binds.
- :func:`crowding_value`: ``V(S) = Σ_i U(x_i) + (F(S) − κ Σ_i h_i − c·n²)/r`` with
  ``r = ρ + δ_f + δ_r + δ_m``: the surplus of a worker is its marginal product net of ``κ h``
  and of a crowding cost, so low-``z`` firms refuse hires, workers move up the ``z`` ladder, and
  learning and coworker changes make some matches turn negative (quits at λ and ψ^E events).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from lotj.economy.params import EconomyParams
from lotj.economy.technology import production
from lotj.economy.value import SetFunctionValue

SetFunction = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def accept_all_value(p: EconomyParams, c: float = 1.0, eps: float = 0.0) -> SetFunction:
    """``V(S) = Σ_i (U(h_i) + c (1 + ε log z))`` (module docstring); needs ``c (1 + ε log z) > 0``
    on the support of z."""
    u = p.unemployment_coef

    def fn(z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        bonus = c * (1.0 + eps * torch.log(z))
        per_worker = u * h + bonus.unsqueeze(-1)
        return torch.where(mask, per_worker, torch.zeros_like(per_worker)).sum(-1)

    return fn


def crowding_value(p: EconomyParams, kappa: float = 0.3, crowding: float = 0.1) -> SetFunction:
    """``V(S) = Σ_i U(h_i) + (F(S) − κ Σ_i h_i − c n²)/r`` (module docstring)."""
    u = p.unemployment_coef
    r = p.outflow_rate
    eta = p.eta

    def fn(z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        hm = torch.where(mask, h, torch.zeros_like(h))
        n = mask.sum(-1).to(h.dtype)
        f = production(z, h, mask, eta)
        return u * hm.sum(-1) + (f - kappa * hm.sum(-1) - crowding * n * n) / r

    return fn


def lone_worker_value(p: EconomyParams, c: float) -> SetFunctionValue:
    """``(1 + c)`` times the exact value ``z h / (ρ + γ^E (1 − a q))`` of a firm with one worker in the closed
    learning economy (``conf=exact_learning``: no meetings, no separations, learning alone): the value
    whose error ``c V*`` the chain estimates of lotj.accuracy must recover."""

    def fn(z, q, h, a, mask):
        hm = torch.where(mask, h, torch.zeros_like(h)).sum(-1)
        am = torch.where(mask, a, torch.ones_like(a)).prod(-1)
        return (1.0 + c) * z * hm / (p.rho + p.gamma_e * (1.0 - am * q))

    return SetFunctionValue(fn)
