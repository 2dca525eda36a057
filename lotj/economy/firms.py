"""The firm-state batch and the draws from G_w and G_f (MODEL.md sections 1 and 10).

A batch of firm states ``S_k = (z_k, q_k, X_k)`` is stored as padded tensors: ``h, a`` of
shape ``[B, n_max]``, a boolean ``mask`` marking real workers, and ``z, q`` of shape ``[B]``.
Padding slots hold ``h = a = 1`` (log 0) so that logs and powers stay finite; every
function masks them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lotj.economy.params import TRUNCATION_SD, EconomyParams
from lotj.errors import ConfigError


@dataclass
class FirmBatch:
    """A batch of firm states on padded tensors (see module docstring)."""

    z: Tensor
    q: Tensor
    h: Tensor
    a: Tensor
    mask: Tensor

    @property
    def n_max(self) -> int:
        return self.h.shape[-1]

    @property
    def batch_size(self) -> int:
        return self.z.shape[0]

    def size(self) -> Tensor:
        """n(S): the number of workers (the manager is not counted; MODEL.md section 10)."""
        return self.mask.sum(-1)

    @classmethod
    def empty(cls, z: Tensor, q: Tensor, n_max: int) -> FirmBatch:
        """Firms with no workers (newborn firms: they still receive meetings via the manager)."""
        shape = (z.shape[0], n_max)
        ones = torch.ones(shape, dtype=z.dtype, device=z.device)
        return cls(z, q, ones, ones.clone(), torch.zeros(shape, dtype=torch.bool, device=z.device))

    @classmethod
    def cat(cls, batches: list[FirmBatch]) -> FirmBatch:
        """The firms of ``batches`` one after another (same ``n_max``, dtype and device)."""
        return cls(*(torch.cat([getattr(b, k) for b in batches]) for k in ("z", "q", "h", "a", "mask")))

    def clone(self) -> FirmBatch:
        return FirmBatch(self.z.clone(), self.q.clone(), self.h.clone(), self.a.clone(), self.mask.clone())

    def index(self, idx: Tensor) -> FirmBatch:
        """Select firms (rows) by index or boolean mask."""
        return FirmBatch(self.z[idx], self.q[idx], self.h[idx], self.a[idx], self.mask[idx])

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> FirmBatch:
        """On ``device``; with ``dtype``, the floating-point fields in it too (the mask stays boolean)."""
        parts = (self.z, self.q, self.h, self.a, self.mask)
        if dtype is None:
            return FirmBatch(*(t.to(device) for t in parts))
        return FirmBatch(*(t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in parts))

    def first_free_slot(self) -> tuple[Tensor, Tensor]:
        """(slot, has_room): the first empty slot of each firm, and whether one exists."""
        free = ~self.mask
        has_room = free.any(-1)
        slot = torch.argmax(free.to(torch.int8), dim=-1)
        return slot, has_room

    def add(self, h_new: Tensor, a_new: Tensor, active: Tensor | None = None) -> tuple[FirmBatch, Tensor]:
        """S ⊕ x: put worker ``(h_new[k], a_new[k])`` into the first free slot of firm ``k``.

        Firms at the cap refuse (MODEL.md section 10). Returns the new batch and a boolean
        ``[B]`` saying where the worker was added. ``active`` restricts the addition to some firms.
        """
        slot, room = self.first_free_slot()
        accepted = room if active is None else room & active
        rows = torch.arange(self.batch_size, device=self.z.device)
        out = self.clone()
        cur_h = out.h[rows, slot]
        cur_a = out.a[rows, slot]
        out.h[rows, slot] = torch.where(accepted, h_new.to(out.h.dtype), cur_h)
        out.a[rows, slot] = torch.where(accepted, a_new.to(out.a.dtype), cur_a)
        out.mask[rows, slot] = out.mask[rows, slot] | accepted
        return out, accepted

    def remove(self, slot: Tensor, active: Tensor | None = None) -> FirmBatch:
        """S ⊖ x_i: remove the worker in slot ``slot[k]`` of firm ``k`` (where ``active``)."""
        rows = torch.arange(self.batch_size, device=self.z.device)
        act = self.mask[rows, slot]
        if active is not None:
            act = act & active
        out = self.clone()
        out.mask[rows, slot] = out.mask[rows, slot] & ~act
        out.h[rows, slot] = torch.where(act, torch.ones_like(out.h[rows, slot]), out.h[rows, slot])
        out.a[rows, slot] = torch.where(act, torch.ones_like(out.a[rows, slot]), out.a[rows, slot])
        return out


# ---------------------------------------------------------------------------- draws


def truncated_normal_draws(
    mean: np.ndarray | Tensor,
    cov: np.ndarray | Tensor,
    count: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    truncation: float = TRUNCATION_SD,
) -> Tensor:
    """Draws of ``N(mean, cov)`` truncated at ``±truncation`` standard deviations per coordinate.

    Sampled through the eigen-decomposition ``cov = Q Λ Qᵀ`` (x = μ + Q Λ^½ ε), so a singular
    (positive semi-definite) covariance works, as the counterfactuals need (MODEL.md section 10).
    Draws outside the box are redrawn (rejection), which leaves the truncated law exact.
    """
    mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float64), dtype=torch.float64)
    cov_t = torch.as_tensor(np.asarray(cov, dtype=np.float64), dtype=torch.float64)
    evals, evecs = torch.linalg.eigh(cov_t)
    if evals.min() < -1e-12 * max(1.0, float(cov_t.abs().max())):
        raise ConfigError(f"covariance {cov_t.tolist()} is not positive semi-definite")
    root = evecs * evals.clamp_min(0.0).sqrt()  # Q Λ^½
    sd = cov_t.diagonal().clamp_min(0.0).sqrt()
    dim = mean_t.shape[0]
    out = torch.empty(count, dim, dtype=torch.float64)
    todo = torch.arange(count)
    for _ in range(100):
        if todo.numel() == 0:
            break
        eps = torch.randn(todo.numel(), dim, generator=generator, dtype=torch.float64)
        x = mean_t + eps @ root.T
        ok = ((x - mean_t).abs() <= truncation * sd + 1e-12).all(-1)
        out[todo[ok]] = x[ok]
        todo = todo[~ok]
    if todo.numel():
        raise RuntimeError("truncated normal sampling did not finish; the truncation box is too narrow")
    return out.to(dtype=dtype, device=device)


def _discrete_draws(
    rows: list[list[float]],
    count: int,
    generator: torch.Generator | None,
    dtype: torch.dtype,
    device,
    stratified: bool = False,
) -> tuple[Tensor, Tensor]:
    """``count`` draws of the types ``rows`` (``[value, value, probability]``). With ``stratified``, a
    systematic sample in random order: each type appears ``count × probability`` times to within one
    (every draw still has the type's probability), so the sample's type mix carries no sampling noise."""
    table = torch.tensor(rows, dtype=torch.float64)
    if stratified and count > 0:
        cdf = torch.cumsum(table[:, 2] / table[:, 2].sum(), 0)
        u = torch.rand(1, generator=generator, dtype=torch.float64)
        positions = (torch.arange(count, dtype=torch.float64) + u) / count
        idx = torch.searchsorted(cdf, positions).clamp(max=len(rows) - 1)
        idx = idx[torch.randperm(count, generator=generator)]
    else:
        idx = torch.multinomial(table[:, 2], count, replacement=True, generator=generator)
    return table[idx, 0].to(dtype=dtype, device=device), table[idx, 1].to(dtype=dtype, device=device)


def sample_workers(
    p: EconomyParams,
    count: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Draw ``count`` new workers ``(h⁰, a)`` from G_w (MODEL.md section 1), or from
    ``p.worker_types`` when the economy is discrete. Returns ``(h, a)``, each ``[count]``."""
    if p.worker_types is not None:
        return _discrete_draws(p.worker_types, count, generator, dtype, device)
    x = truncated_normal_draws([p.mu_h, p.mu_a], p.sigma_w, count, generator, dtype, device)
    return torch.exp(x[:, 0]), torch.exp(x[:, 1])


def sample_firm_types(
    p: EconomyParams,
    count: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    stratified: bool = False,
) -> tuple[Tensor, Tensor]:
    """Draw ``count`` firms ``(z, q)`` from G_f (MODEL.md section 1), or from ``p.firm_types`` (with
    ``stratified``, in the types' exact proportions to within one firm: :func:`_discrete_draws`).
    Returns ``(z, q)``, each ``[count]``."""
    if p.firm_types is not None:
        return _discrete_draws(p.firm_types, count, generator, dtype, device, stratified)
    x = truncated_normal_draws([p.mu_z, p.mu_q], p.sigma_f, count, generator, dtype, device)
    return torch.exp(x[:, 0]), torch.exp(x[:, 1])


def sample_initial_firms(
    p: EconomyParams,
    count: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
    mean_size: float | None = None,
) -> FirmBatch:
    """The documented initial economy: firms from G_f with Poisson(``mean_size``) workers from G_w
    (capped at ``n_max``); ``mean_size`` defaults to ``n_w``. It is a starting distribution that the
    simulator moves to the stationary χ. Discrete firm types come in their exact proportions (to within
    one firm): firms die at δ_f, slowly at calibrated rates, so the initial type mix is the economy's for
    a long time, and a random mix would shift every statistic by its sampling error for the whole run."""
    z, q = sample_firm_types(p, count, generator, dtype, device, stratified=True)
    lam = float(p.n_w if mean_size is None else mean_size)
    n = torch.poisson(torch.full((count,), lam, dtype=torch.float64), generator=generator).long()
    n = n.clamp(max=p.n_max)
    h, a = sample_workers(p, count * p.n_max, generator, dtype, device)
    h = h.view(count, p.n_max)
    a = a.view(count, p.n_max)
    mask = torch.arange(p.n_max).unsqueeze(0) < n.unsqueeze(1)
    mask = mask.to(device)
    ones = torch.ones_like(h)
    return FirmBatch(z, q, torch.where(mask, h, ones), torch.where(mask, a, ones), mask)
