"""Permutation-invariant value network for firm states (MODEL.md section 6; docs/solver.md).

``ValueNet`` approximates V(S) for ``S = (z, q, X)``:

- per-worker encoders on the worker's features ``(log h, log a)`` (standardised by G_w's moments;
  never the wage: V does not depend on wages, MODEL.md section 4): the embedding φ(x) and a scalar
  worker value j(x);
- sum pooling. The pool of a firm is ``(Σ_i φ(x_i), n, Σ_i h_i, Σ_i h_i^η, Σ_i j(x_i))``: every entry
  is a sum over workers, so the pool of ``S⊖x_i`` is the pool of ``S`` minus worker i's contribution
  and the pool of ``S⊕x`` is plus x's (ARCHITECTURE.md, "The performance idea"). ``Σ h`` and ``Σ h^η``
  are exactly-poolable economics: ``Σ U(x_i) = b Σ h_i/(ρ+δ_r)`` and ``F = z (Σ h_i^η)^(1/η)``;
- a head ρ on ``(log z, log q, n/n_max, log(F/z), Σφ/max(n, 1))`` (the mean embedding together with
  ``n``; every head input is a function of the pool, so neighbours stay exact), and two firm-type
  heads ``k(z, q)``, ``g(z, q)`` on ``(log z, log q)`` alone, evaluated once per firm;
- the output

      V(S) = Σ_i U(x_i) + [F (1 + k(z,q)) + c z (1 + g(z,q))] / r + (F + c z)/r · ρ(...) + z Σ_i j(x_i) / r

  with ``r = ρ + δ_f + δ_r + δ_m`` and ``c = exp(log_c) > 0`` learnable. The last layers of ρ, k, g
  and j start at zero, so training starts from the separable guess ``V₀ = ΣU + (F + c₀ z)/r``: the
  workers' outside options, plus the output of the workforce discounted at the rate at which matches
  end, plus a franchise value of an empty firm proportional to ``z`` (:func:`franchise_guess`). The
  corrections are O(1) relative numbers for every firm size, and an empty firm (``n = 0``) is an
  ordinary input with ``F = 0``.

Why the separate channels (docs/solver.md): z and q never change during a firm's life, so an error
in V that depends on (z, q) only cancels in every neighbour difference and the HJB residual
penalises it at rate ρ + δ_f only, against the total event rate (several per year) for other
errors; a per-worker additive error is penalised at about ρ + δ_r + δ_m. Gradient descent on the
squared residual is slow in those directions. Giving them their own parameters (k, g, j) lets
Adam's per-parameter scaling move them at their own pace; this cut the smoke residual about
threefold at equal steps.

``ValueNet`` implements the :class:`lotj.economy.value.ValueFunction` protocol and, for the HJB
residual, :meth:`ValueNet.values_and_neighbours` (one encoding for V, its removals and additions).
Removal and addition neighbours cost one head evaluation each (no pass over a set); the learning
neighbour H(S) is an ordinary :meth:`ValueNet.value` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.technology import production_from_pool
from lotj.nets.layers import mlp, register_standardisation, standardised_logs


def franchise_guess(firms: FirmBatch, eta: float) -> float:
    """c₀ for the separable guess: the mean ``F/z`` of the firms given (the output of a typical
    workforce at unit productivity). An empty firm's value is the option to build such a workforce,
    so ``c₀ z / r`` puts it at the value of a typical firm's output; 1 when no firm has workers."""
    h_eta = torch.where(firms.mask, firms.h.clamp_min(1e-30).pow(eta), torch.zeros_like(firms.h)).sum(-1)
    f_over_z = production_from_pool(torch.ones_like(h_eta), h_eta, eta)
    value = float(f_over_z.mean()) if f_over_z.numel() else 0.0
    return value if value > 0 else 1.0


@dataclass
class Pool:
    """The pooled embedding of a batch of firms (sums over workers), the per-worker terms that make
    neighbours (``phi`` ``[B, n_max, E]``; ``h``, ``h_eta``, ``j`` ``[B, n_max]``, 0 on padding), and the
    firm-level terms (``zq`` ``[B, 2]`` standardised logs, ``kg`` ``[B, 2]`` firm-type heads)."""

    phi_sum: Tensor
    n: Tensor
    sum_h: Tensor
    sum_h_eta: Tensor
    sum_j: Tensor
    phi: Tensor
    h: Tensor
    h_eta: Tensor
    j: Tensor
    z: Tensor
    zq: Tensor
    kg: Tensor

    def rows(self, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z, zq, kg) of the firms ``idx``."""
        return self.z[idx], self.zq[idx], self.kg[idx]


class ValueNet(nn.Module):
    """V(S) as a DeepSets network with pooled neighbours (module docstring)."""

    def __init__(
        self,
        p: EconomyParams,
        embed_dim: int = 32,
        phi_width: int = 64,
        phi_depth: int = 2,
        rho_width: int = 64,
        rho_depth: int = 2,
        activation: str = "silu",
        franchise: float = 1.0,
        type_width: int = 32,
        correction_only: bool = False,
    ):
        super().__init__()
        #: output only the learned part ``[F k + c z g + (F + c z) ρ(...) + z Σ j] / r``, without the separable
        #: guess: zero at initialisation, the second network of :class:`lotj.nets.CorrectedValueNet`
        self.correction_only = bool(correction_only)
        self.eta = float(p.eta)
        self.u_coef = float(p.unemployment_coef)
        self.r = float(p.outflow_rate)
        self.n_max = int(p.n_max)

        register_standardisation(self, p)  # the moments of G_w and G_f (constants, saved with the model)
        self.embed_dim = embed_dim
        self.phi = mlp(2, phi_width, phi_depth, embed_dim, activation)
        self.head = mlp(4 + embed_dim, rho_width, rho_depth, 1, activation)
        self.firm_type = mlp(2, type_width, 2, 2, activation)  # [k, g] on (log z, log q)
        self.worker_value = mlp(2, type_width, 2, 1, activation)  # j(x), pooled by sum
        for net in (self.head, self.firm_type, self.worker_value):
            last = net[-1]
            assert isinstance(last, nn.Linear)
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.log_c = nn.Parameter(torch.tensor(math.log(franchise), dtype=torch.get_default_dtype()))

    # ------------------------------------------------------------------ pieces
    @property
    def dtype(self) -> torch.dtype:
        return self.log_c.dtype

    def encode_workers(self, h: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
        """(φ(x), j(x)) for workers ``(h, a)`` of any shape ``[...]``: ``[..., E]`` and ``[...]``."""
        x = standardised_logs(h, a, self.worker_loc, self.worker_scale, self.dtype)
        return self.phi(x), self.worker_value(x).squeeze(-1)

    def encode(self, s: FirmBatch) -> Pool:
        """The pool of each firm; the worker encoders run on real workers only (padding adds 0)."""
        mask = s.mask
        h = torch.where(mask, s.h, torch.ones_like(s.h)).to(self.dtype)
        a = torch.where(mask, s.a, torch.ones_like(s.a)).to(self.dtype)
        phi_real, j_real = self.encode_workers(h[mask], a[mask])
        phi = torch.zeros(*mask.shape, self.embed_dim, dtype=self.dtype, device=h.device).index_put((mask,), phi_real)
        j = torch.zeros(mask.shape, dtype=self.dtype, device=h.device).index_put((mask,), j_real)
        h_m = torch.where(mask, h, torch.zeros_like(h))
        h_eta = torch.where(mask, h.pow(self.eta), torch.zeros_like(h))
        z = s.z.to(self.dtype)
        zq = standardised_logs(z, s.q, self.firm_loc, self.firm_scale, self.dtype)
        n = mask.sum(-1).to(self.dtype)
        return Pool(
            phi.sum(-2), n, h_m.sum(-1), h_eta.sum(-1), j.sum(-1), phi, h_m, h_eta, j, z, zq, self.firm_type(zq)
        )

    def evaluate(
        self,
        z: Tensor,
        zq: Tensor,
        kg: Tensor,
        phi_sum: Tensor,
        n: Tensor,
        sum_h: Tensor,
        sum_h_eta: Tensor,
        sum_j: Tensor,
    ) -> Tensor:
        """V from firm terms and a pool (module docstring). Leading shapes agree (``[...]``; ``zq``,
        ``kg``: ``[..., 2]``; ``phi_sum``: ``[..., E]``)."""
        nonempty = n > 0.5
        zero = torch.zeros_like(sum_h)
        sum_h = torch.where(nonempty, sum_h, zero)
        sum_h_eta = torch.where(nonempty, sum_h_eta, zero)
        sum_j = torch.where(nonempty, sum_j, zero)
        flow = production_from_pool(z, sum_h_eta, self.eta)
        safe = torch.where(nonempty, sum_h_eta, torch.ones_like(sum_h_eta))
        log_fz = torch.where(nonempty, torch.log(safe) / self.eta, zero)
        mean_phi = phi_sum / n.clamp_min(1.0).unsqueeze(-1)
        feats = torch.cat([zq, (n / self.n_max).unsqueeze(-1), log_fz.unsqueeze(-1), mean_phi], -1)
        correction = self.head(feats).squeeze(-1)
        franchise = torch.exp(self.log_c) * z
        if self.correction_only:
            learned = flow * kg[..., 0] + franchise * kg[..., 1] + (flow + franchise) * correction + z * sum_j
            return learned / self.r
        typed = flow * (1.0 + kg[..., 0]) + franchise * (1.0 + kg[..., 1])
        return self.u_coef * sum_h + (typed + (flow + franchise) * correction + z * sum_j) / self.r

    def _value_of(self, pool: Pool) -> Tensor:
        return self.evaluate(pool.z, pool.zq, pool.kg, pool.phi_sum, pool.n, pool.sum_h, pool.sum_h_eta, pool.sum_j)

    def _removals_of(self, pool: Pool, mask: Tensor) -> Tensor:
        rows = mask.nonzero(as_tuple=True)[0]
        z, zq, kg = pool.rows(rows)
        v_minus = self.evaluate(
            z,
            zq,
            kg,
            pool.phi_sum[rows] - pool.phi[mask],
            pool.n[rows] - 1.0,
            pool.sum_h[rows] - pool.h[mask],
            pool.sum_h_eta[rows] - pool.h_eta[mask],
            pool.sum_j[rows] - pool.j[mask],
        )
        out = torch.zeros(mask.shape, dtype=v_minus.dtype, device=v_minus.device)
        return out.index_put((mask,), v_minus)

    def _additions_of(self, pool: Pool, h_new: Tensor, a_new: Tensor) -> Tensor:
        h_new = h_new.to(self.dtype)
        phi_new, j_new = self.encode_workers(h_new, a_new)
        if h_new.dim() == 1:
            h_new, phi_new, j_new = h_new.unsqueeze(0), phi_new.unsqueeze(0), j_new.unsqueeze(0)
        m = h_new.shape[-1]
        b = pool.n.shape[0]
        return self.evaluate(
            pool.z.unsqueeze(-1).expand(b, m),
            pool.zq.unsqueeze(1).expand(b, m, 2),
            pool.kg.unsqueeze(1).expand(b, m, 2),
            pool.phi_sum.unsqueeze(1) + phi_new,
            (pool.n + 1.0).unsqueeze(-1).expand(b, m),
            pool.sum_h.unsqueeze(-1) + h_new,
            pool.sum_h_eta.unsqueeze(-1) + h_new.pow(self.eta),
            pool.sum_j.unsqueeze(-1) + j_new,
        )

    # ------------------------------------------------------ ValueFunction protocol
    def value(self, s: FirmBatch) -> Tensor:
        """V(S), ``[B]``."""
        return self._value_of(self.encode(s))

    def removal_values(self, s: FirmBatch) -> Tensor:
        """V(S⊖x_i) for every real slot, ``[B, n_max]``, from the pool minus worker i (padding: 0)."""
        return self._removals_of(self.encode(s), s.mask)

    def addition_values(self, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
        """V(S⊕x_m), ``[B, M]``, from the pool plus x_m's terms. ``h_new, a_new``: ``[M]`` (shared: the
        worker encoders run once per draw) or ``[B, M]``. The size cap is the caller's (values at the
        cap are those of the uncapped set)."""
        return self._additions_of(self.encode(s), h_new, a_new)

    def values_and_neighbours(
        self, s: FirmBatch, h_new: Tensor | None = None, a_new: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(V(S), V(S⊖x_i), V(S⊕x_m))`` from one encoding of S (the HJB residual's fast path);
        the additions are None when no new workers are given."""
        pool = self.encode(s)
        plus = None if h_new is None else self._additions_of(pool, h_new, a_new)
        return self._value_of(pool), self._removals_of(pool, s.mask), plus

    def sparse_neighbours(
        self, s: FirmBatch, rem_row: Tensor, rem_slot: Tensor, add_row: Tensor, h_new: Tensor, a_new: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(V(S), V(S[rem_row] ⊖ slot rem_slot), V(S[add_row] ⊕ x_new))`` from one encoding of S:
        the simulator's decisions need only some removals and one addition per meeting, each of
        which costs one head evaluation on the pool (ARCHITECTURE.md, "The performance idea")."""
        pool = self.encode(s)
        v = self._value_of(pool)
        z, zq, kg = pool.rows(rem_row)
        v_minus = self.evaluate(
            z,
            zq,
            kg,
            pool.phi_sum[rem_row] - pool.phi[rem_row, rem_slot],
            pool.n[rem_row] - 1.0,
            pool.sum_h[rem_row] - pool.h[rem_row, rem_slot],
            pool.sum_h_eta[rem_row] - pool.h_eta[rem_row, rem_slot],
            pool.sum_j[rem_row] - pool.j[rem_row, rem_slot],
        )
        h_new = h_new.to(self.dtype)
        phi_new, j_new = self.encode_workers(h_new, a_new)
        z, zq, kg = pool.rows(add_row)
        v_plus = self.evaluate(
            z,
            zq,
            kg,
            pool.phi_sum[add_row] + phi_new,
            pool.n[add_row] + 1.0,
            pool.sum_h[add_row] + h_new,
            pool.sum_h_eta[add_row] + h_new.pow(self.eta),
            pool.sum_j[add_row] + j_new,
        )
        return v, v_minus, v_plus

    # ------------------------------------------------- pools kept by the caller (simulator)
    @property
    def pool_width(self) -> int:
        """Width of :meth:`worker_terms`: ``E + 3``."""
        return self.embed_dim + 3

    def worker_terms(self, h: Tensor, a: Tensor) -> Tensor:
        """Each worker's additive contribution to the pool, ``[..., E + 3]``: ``(φ(x), h, h^η, j(x))``.
        The pool of ``S`` is the sum of its workers' terms, the pool of ``S⊖x_i`` that sum minus
        worker i's, the pool of ``S⊕x`` plus x's (module docstring); a caller that keeps the terms
        (they change only when ``h`` does) evaluates V by :meth:`value_from_pool` alone."""
        h = h.to(self.dtype)
        phi, j = self.encode_workers(h, a)
        return torch.cat([phi, h.unsqueeze(-1), h.pow(self.eta).unsqueeze(-1), j.unsqueeze(-1)], -1)

    def firm_terms(self, z: Tensor, q: Tensor) -> Tensor:
        """The firm-level inputs of the head, ``[..., 5]``: ``(z, standardised (log z, log q), k, g)``
        (fixed for a firm's life)."""
        z = z.to(self.dtype)
        zq = standardised_logs(z, q, self.firm_loc, self.firm_scale, self.dtype)
        return torch.cat([z.unsqueeze(-1), zq, self.firm_type(zq)], -1)

    def value_from_pool(self, firm: Tensor, pool: Tensor, n: Tensor) -> Tensor:
        """V from :meth:`firm_terms` ``[..., 5]``, a pool (a sum of :meth:`worker_terms`, ``[..., E + 3]``)
        and the number of workers ``n`` ``[...]``: the same number as :meth:`value` of that set."""
        e = self.embed_dim
        return self.evaluate(
            firm[..., 0],
            firm[..., 1:3],
            firm[..., 3:5],
            pool[..., :e],
            n.to(self.dtype),
            pool[..., e],
            pool[..., e + 1],
            pool[..., e + 2],
        )

    def scale(self, s: FirmBatch) -> Tensor:
        """The separable scale ``ΣU + (F + c z)/r`` of each firm (> 0; V at initialisation), detached:
        the per-state weight of the residual (docs/solver.md)."""
        with torch.no_grad():
            mask = s.mask
            h = torch.where(mask, s.h, torch.zeros_like(s.h)).to(self.dtype)
            h_eta = torch.where(mask, h.clamp_min(1e-30).pow(self.eta), torch.zeros_like(h)).sum(-1)
            z = s.z.to(self.dtype)
            flow = production_from_pool(z, h_eta, self.eta)
            return self.u_coef * h.sum(-1) + (flow + torch.exp(self.log_c) * z) / self.r

    def forward(self, s: FirmBatch) -> Tensor:
        return self.value(s)

    def set_function(self, z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        """V as a plain set function ``fn(z, q, h, a, mask)``: wrap it in
        :class:`lotj.economy.value.SetFunctionValue` for the naive neighbour reference."""
        return self.value(FirmBatch(z, q, h, a, mask))
