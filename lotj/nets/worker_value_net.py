"""Permutation-invariant worker-value network W(x_i, S) (MODEL.md section 5; docs/wages.md).

``WorkerValueNet`` approximates the value ``W_i(S)`` of worker ``i`` with wage ``w_i`` at firm ``S``:

- a per-worker encoder φ on ``(log h, log a)`` (standardised by G_w's moments; never the wage: W does
  not depend on coworkers' wages, MODEL.md section 5);
- the coworker embedding of worker ``i`` is the firm's pool minus its own φ, ``Σ_{j≠i} φ(x_j)``, so a whole
  firm's workers cost one pass of φ, and the neighbours ``S⊖x_j`` (pool − φ_i − φ_j) and ``S⊕x_m``
  (pool − φ_i + φ_m) cost one head evaluation each (ARCHITECTURE.md, "The performance idea");
- a head on the worker's own ``(log h, log a)``, the firm's ``(log z, log q)``, the number of coworkers
  ``n − 1`` (over ``n_max``), the mean coworker embedding, and two exactly poolable quantities: the
  firm's effective workforce relative to the worker, ``log((Σ_all h^η)^(1/η) / h_i)``, and the worker's
  flow marginal product per unit of its ``h``, ``μ_i = (F(S) − F(S⊖x_i)) / h_i``;
- an output that is increasing in the wage *by construction*. With ``r̄ = ρ + δ_f + δ_r + δ_m`` and the
  wage measured from the flow benefit in units of the marginal product, ``x = (w_i/h_i − b) / μ_i``,

      W_i = U(h_i) + (h_i μ_i / r̄) · m(x),
      m(x) = f + s_0 x + Σ_{k=1..K} (s_k − s_{k−1}) τ softplus((x − t_k)/τ),

  where the head gives ``f``, slopes ``s_k = exp(g_k) > 0``, ordered kinks ``t_1 < … < t_K`` (``t_1`` plus
  positive gaps) and one temperature ``τ > 0``. ``m'(x) = Σ_k s_k (σ_k − σ_{k+1})`` (``σ_0 = 1``,
  ``σ_{K+1} = 0``) is a positive combination of positive slopes because ``σ_k = sigmoid((x − t_k)/τ)``
  decreases in ``k``: W is strictly increasing in ``w``, so the wage that delivers a target value is
  unique. The true W is piecewise smooth in ``w`` with kinks where a renegotiation or a meeting starts
  to reset the wage (``W = U``, ``W = U + Δ``); measuring the wage in units of the marginal product puts
  those kinks at O(1) places that vary little across states (for a lone worker whose wage is reset
  only by renegotiation, at exactly ``x = 0`` and ``x = 1`` when ``Δ = (F(S) − F(S⊖x_i))/r̄``).

The last layer of the head starts at zero with biases ``f = 0``, ``g_k = 0`` (kinks at ``0, 1, 2, …``):
training starts from ``W = U + (w − b h)/r̄``, the exact value of a worker whose wage is never reset and
whose ``h`` stays put (MODEL.md section 5 with λ = ψ^E = γ^E = 0 and no coworkers).

With ``surplus_input`` (``wnet.surplus_input``) the network is given the frozen V's surplus
``Δ(S', x_i) = V(S') − V(S'⊖x_i) − U(x_i)`` at every state ``S'`` where W is evaluated (the own state, every
``S⊖x_j``, every ``S⊕x_m``, ``H(S)``), so that it need not re-learn V's surplus; with V's pool (a sum of
per-worker terms, :meth:`lotj.nets.ValueNet.worker_terms`) ``V(S⊖x_j⊖x_i)`` and ``V(S⊕x_m⊖x_i)`` are one head
evaluation of V each. Δ enters the head (as ``Δ/(h μ_i/r̄)`` and ``asinh(Δ/U)``) and sets the scales: with
``S = τ softplus(Δ/τ) ≈ Δ⁺`` (``τ`` a tenth of ``h μ_i/r̄``),

    x = (w_i − b h_i)/(r̄ S),     y = S m(x),
    W_i = U + y + (c_lo − 1) min{y, 0} + (c_hi − 1) max{y − Δ⁺, 0},

so the wage is measured in units of ``r̄ S`` (``x = 1`` is the wage that keeps ``W = U + S`` until the match
ends), the value above ``U`` in units of the surplus, and the last map puts exact kinks of slopes
``c_lo, c_hi > 0`` (head outputs) at ``W = U`` and ``W = U + Δ``, the edges of the bargaining set, where
renegotiation and the meeting cut start to act. W stays strictly increasing in ``w`` and starts from the
same ``U + (w − b h)/r̄``.

With ``set_kinks`` (``wnet.set_kinks``, needs ``surplus_input``) the value above ``U`` first passes, in units of
the surplus (``u = y/S_e``, ``S_e = τ_e softplus(Δ/τ_e)`` with ``τ_e = S/10``: ``S_e ≈ S ≈ Δ`` where the surplus
is clearly positive, so the bargaining set is about ``0 ≤ u ≤ 1``), through a piecewise-linear map with
kinks at fixed fractions ``c_1 < … < c_L`` of the set (``SET_KINKS``: from 0.3 below the set to 0.3 above it,
densest near its edges):

    y ← S_e (u + Σ_l (s_l − s_{l−1}) max{u − c_l, 0}),     s_0 = 1,  s_l = exp(δ_1 + … + δ_l),

with ``δ_l`` from the head. Every slope ``s_l`` is positive, so W stays strictly increasing in ``w``; the head
starts at ``δ = 0`` (all slopes 1), where the map is the identity. The exact W has clusters of kinks right at
the two edges of the set: a coworker's arrival or departure moves where the neighbouring states'
renegotiations and meeting cuts start, a little above or below the own state's edges. The free kinks of
``m`` go where the fit takes them, which is where the training wages are dense; these stay at the edges by
construction.

``WorkerValueNet`` implements :class:`lotj.economy.worker_value.WorkerValueFunction`; only real
workers (and real worker pairs) are evaluated. :meth:`WorkerValueNet.worker_fn` is the same function
of one worker and an explicit coworker set, for the naive reference
:class:`lotj.economy.worker_value.SetFunctionWorkerValue`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.nets.layers import mlp, register_standardisation, standardised_logs

_BELOW_AND_AT_U = (-0.3, -0.2, -0.12, -0.06, -0.03, 0.03, 0.06, 0.12, 0.25)
#: the kinks of ``set_kinks``, as fractions of the bargaining set (0: ``W = U``, 1: ``W = U + Δ``): from 0.3 below
#: the set to 0.3 above it, densest near the edges, where the exact W's kinks cluster; symmetric about 0.5
SET_KINKS = (*_BELOW_AND_AT_U, 0.5, *(round(1.0 - c, 12) for c in reversed(_BELOW_AND_AT_U)))


class WorkerValueNet(nn.Module):
    """W(x_i, S) with pooled coworker neighbours and a wage-monotone output (module docstring)."""

    def __init__(
        self,
        p: EconomyParams,
        embed_dim: int = 16,
        phi_width: int = 32,
        phi_depth: int = 2,
        head_width: int = 64,
        head_depth: int = 2,
        activation: str = "silu",
        kinks: int = 4,
        surplus_input: bool = False,
        set_kinks: bool = False,
    ):
        super().__init__()
        if kinks < 1:
            raise ValueError(f"kinks = {kinks}: must be >= 1")
        if set_kinks and not surplus_input:
            raise ValueError("set_kinks needs surplus_input: the kinks sit at fractions of the surplus")
        self.eta = float(p.eta)
        self.u_coef = float(p.unemployment_coef)
        self.b = float(p.b)
        self.r = float(p.outflow_rate)
        self.n_max = int(p.n_max)
        self.kinks = int(kinks)
        self.embed_dim = int(embed_dim)
        self.surplus_input = bool(surplus_input)
        self.set_kinks = bool(set_kinks)
        self.register_buffer("set_kink_at", torch.tensor(SET_KINKS if set_kinks else ()), persistent=False)
        # the frozen V that gives the surplus inputs (attach_value), kept in a list: not a submodule, so it is
        # neither trained nor saved with W
        self._frozen_v: list[nn.Module] = []
        register_standardisation(self, p)  # the moments of G_w and G_f (constants, saved with the model)
        self.phi = mlp(2, phi_width, phi_depth, embed_dim, activation)
        n_surplus = 2 if self.surplus_input else 0  # surplus inputs; and two edge slopes in the output
        n_set = len(SET_KINKS) if self.set_kinks else 0  # δ_l: log slope changes at the set's kinks
        n_out = 2 * kinks + 3 + n_surplus + n_set
        self.head = mlp(2 + 2 + 1 + 1 + 1 + embed_dim + n_surplus, head_width, head_depth, n_out, activation)
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            bias = torch.zeros(n_out)  # edge slopes (surplus_input): exp(0) = 1, no kink
            bias[1] = 0.0  # t_1
            bias[2 : kinks + 1] = math.log(math.expm1(1.0))  # gaps of 1 after softplus
            # g_0..g_K = 0: unit slopes (no kink)
            bias[2 * kinks + 2] = math.log(math.expm1(0.05))  # τ = 0.05 after softplus
            # δ_l = 0 (set_kinks): every slope 1, the identity
            last.bias.copy_(bias)
        self.to(torch.float64)  # float64 throughout (the project's default); `.to(torch.float32)` for 32-bit runs

    @property
    def dtype(self) -> torch.dtype:
        return self.worker_loc.dtype

    # --------------------------------------------------------------------------------- pieces
    def worker_features(self, h: Tensor, a: Tensor) -> Tensor:
        """Standardised ``(log h, log a)``, ``[..., 2]``."""
        return standardised_logs(h, a, self.worker_loc, self.worker_scale, self.dtype)

    def encode_workers(self, h: Tensor, a: Tensor) -> Tensor:
        """φ(x) for workers of any shape ``[...]``: ``[..., E]``."""
        return self.phi(self.worker_features(h, a))

    def output(self, raw: Tensor, h: Tensor, w: Tensor, scale: Tensor, surplus: Tensor | None = None) -> Tensor:
        """``W = U(h) + (h σ/r̄) m((w/h − b)/σ)`` from the head's raw output ``[..., 2K+3]`` (module docstring).

        With the surplus ``Δ`` (``surplus_input``) the value above ``U``, ``y = (h σ/r̄) m``, passes through the
        map ``y ↦ y + (c_lo − 1) min{y, 0} + (c_hi − 1) max{y − Δ⁺, 0}`` (slopes ``c_lo, c_hi > 0`` from the
        last two raw outputs): increasing, with exact kinks at ``W = U`` and ``W = U + Δ``, the edges of the
        bargaining set, where renegotiation (and the meeting cut) start to act on W."""
        k = self.kinks
        f = raw[..., 0]
        t = raw[..., 1:2] + torch.cat(
            [torch.zeros_like(raw[..., 1:2]), torch.cumsum(nn.functional.softplus(raw[..., 2 : k + 1]), -1)], -1
        )  # [..., K], increasing
        slopes = torch.exp(raw[..., k + 1 : 2 * k + 2].clamp(-20.0, 20.0))  # s_0..s_K
        tau = nn.functional.softplus(raw[..., 2 * k + 2]) + 1e-6
        x = (w.to(self.dtype) / h - self.b) / scale
        ramps = tau.unsqueeze(-1) * nn.functional.softplus((x.unsqueeze(-1) - t) / tau.unsqueeze(-1))
        m = f + slopes[..., 0] * x + ((slopes[..., 1:] - slopes[..., :-1]) * ramps).sum(-1)
        value_scale = h * scale / self.r  # S with the surplus input
        y = value_scale * m
        if surplus is not None:
            if self.set_kinks:  # the unit of the set's kinks: S smoothed once more (≈ Δ⁺ where Δ is clearly positive)
                y = self.set_bends(raw[..., 2 * k + 5 :], y, self.surplus_scale(surplus, value_scale))
            edge = torch.exp(raw[..., 2 * k + 3 : 2 * k + 5].clamp(-20.0, 20.0)) - 1.0
            y = y + edge[..., 0] * y.clamp_max(0.0) + edge[..., 1] * (y - surplus.clamp_min(0.0)).clamp_min(0.0)
        return self.u_coef * h + y

    @staticmethod
    def set_kinks_at() -> tuple[float, ...]:
        """Where the kinks of ``set_kinks`` sit, as fractions of the bargaining set (``SET_KINKS``)."""
        return SET_KINKS

    def set_bends(self, raw: Tensor, y: Tensor, scale: Tensor) -> Tensor:
        """The kinks at fixed fractions of the bargaining set (``set_kinks``, module docstring): ``y`` (the value
        above ``U``) in units of the surplus ``scale``, ``u``, through ``u + Σ_l (s_l − s_{l−1}) max{u − c_l, 0}``
        with ``s_0 = 1`` and ``s_l = exp(δ_1 + … + δ_l)`` (``δ = raw``), back to value units. Increasing in ``y``:
        between kinks its slope is some ``s_l > 0``."""
        slopes = torch.exp(torch.cumsum(raw, -1).clamp(-20.0, 20.0))
        steps = slopes - torch.cat([torch.ones_like(slopes[..., :1]), slopes[..., :-1]], -1)
        u = (y / scale).unsqueeze(-1)
        return y + scale * (steps * (u - self.set_kink_at.to(u.dtype)).clamp_min(0.0)).sum(-1)

    def curve(
        self,
        h: Tensor,
        a: Tensor,
        z: Tensor,
        q: Tensor,
        co_sum: Tensor,
        n_co: Tensor,
        sum_h_eta: Tensor,
        surplus: Tensor | None = None,
    ) -> Callable[[Tensor], Tensor]:
        """W as a function of the wage, ``w ↦ W``, of workers ``(h, a)`` at firms ``(z, q)`` whose other workers
        have embedding sum ``co_sum`` ``[..., E]``, count ``n_co`` and ``Σ_all h^η = sum_h_eta`` (the worker
        included); ``surplus``: the frozen V's ``Δ(S, x_i)`` at that state (needed with ``surplus_input``,
        ignored otherwise). The head runs once; each evaluation of the curve is the closed-form output map."""
        h = h.to(self.dtype)
        zq = standardised_logs(z, q, self.firm_loc, self.firm_scale, self.dtype)
        rel = torch.log(sum_h_eta) / self.eta - torch.log(h)
        # flow marginal product per unit of own h: (F(S) − F(S⊖x_i)) / (z h_i), exactly poolable
        rest = (sum_h_eta - h.pow(self.eta)).clamp_min(0.0)
        mp = (sum_h_eta.pow(1.0 / self.eta) - rest.pow(1.0 / self.eta)) / h
        mean_co = co_sum / n_co.clamp_min(1.0).unsqueeze(-1)
        parts = [
            self.worker_features(h, a),
            zq,
            (n_co / self.n_max).unsqueeze(-1),
            rel.unsqueeze(-1),
            (z.to(self.dtype) * mp).unsqueeze(-1),
            mean_co,
        ]
        scale = z.to(self.dtype) * mp + 1e-3 * self.b
        d = None
        if self.surplus_input:
            if surplus is None:
                raise ValueError("WorkerValueNet(surplus_input=True) needs the surplus Δ(S, x_i) of every state")
            d = surplus.to(self.dtype)
            flow_value = h * scale / self.r  # the value of the flow marginal product until the match ends
            parts += [(d / flow_value).unsqueeze(-1), torch.asinh(d / (self.u_coef * h)).unsqueeze(-1)]
            scale = self.r * self.surplus_scale(d, flow_value) / h  # so that W = U + S m((w − b h)/(r̄ S))
        raw = self.head(torch.cat(parts, -1))
        return lambda w: self.output(raw, h, w, scale, d)

    @staticmethod
    def surplus_scale(delta: Tensor, flow_value: Tensor) -> Tensor:
        """The value scale ``S = τ softplus(Δ/τ)`` of the surplus parameterisation, ``τ = 0.1 · flow_value``:
        ``S ≈ Δ`` for a clearly positive surplus, smooth and positive for every Δ."""
        tau = 0.1 * flow_value
        return tau * nn.functional.softplus(delta / tau)

    def evaluate(
        self,
        h: Tensor,
        a: Tensor,
        w: Tensor,
        z: Tensor,
        q: Tensor,
        co_sum: Tensor,
        n_co: Tensor,
        sum_h_eta: Tensor,
        surplus: Tensor | None = None,
    ) -> Tensor:
        """W of workers ``(h, a, w)``; the other arguments as :meth:`curve`. Leading shapes agree."""
        return self.curve(h, a, z, q, co_sum, n_co, sum_h_eta, surplus)(w)

    # ------------------------------------------------------- the frozen V's surplus (surplus_input)
    def attach_value(self, vf: nn.Module) -> WorkerValueNet:
        """Give the network the frozen V whose surplus ``Δ(S, x_i) = V(S) − V(S⊖x_i) − U(x_i)`` it takes as an
        input (``surplus_input``). ``vf`` needs the pool interface of :class:`lotj.nets.ValueNet`
        (``worker_terms``, ``firm_terms``, ``value_from_pool``). V is neither trained nor saved with W."""
        for name in ("worker_terms", "firm_terms", "value_from_pool"):
            if not callable(getattr(vf, name, None)):
                raise TypeError(f"the surplus input needs a V with the pool interface of ValueNet (no {name!r})")
        self._frozen_v[:] = [vf]
        return self

    @property
    def value_function(self) -> nn.Module:
        if not self._frozen_v:
            raise RuntimeError("WorkerValueNet(surplus_input=True): attach the frozen V first (attach_value)")
        return self._frozen_v[0]

    def _v_pool(self, s: FirmBatch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """V's firm terms ``[B, 5]``, worker terms ``[B, n_max, P]`` (0 on padding), pool ``[B, P]``, n ``[B]``."""
        vf = self.value_function
        mask = s.mask
        h = torch.where(mask, s.h, torch.ones_like(s.h))
        a = torch.where(mask, s.a, torch.ones_like(s.a))
        t_real = vf.worker_terms(h[mask], a[mask])
        t = torch.zeros(*mask.shape, t_real.shape[-1], dtype=t_real.dtype, device=t_real.device)
        t = t.index_put((mask,), t_real)
        return vf.firm_terms(s.z, s.q), t, t.sum(-2), mask.sum(-1).to(t.dtype)

    def own_surplus(self, s: FirmBatch, b: Tensor, i: Tensor) -> Tensor:
        """``Δ(S, x_i)`` of the workers ``(b, i)`` (firm rows, slots) from the frozen V, ``[R]``: ``V(S)`` and
        ``V(S⊖x_i)`` are one head evaluation each on V's pool (no gradient)."""
        vf = self.value_function
        with torch.no_grad():
            firm, t, pool, n = self._v_pool(s)
            v = vf.value_from_pool(firm, pool, n)
            v_minus = vf.value_from_pool(firm[b], pool[b] - t[b, i], n[b] - 1.0)
            return (v[b] - v_minus - self.u_coef * s.h[b, i]).to(self.dtype)

    def removal_surplus(self, s: FirmBatch, b: Tensor, i: Tensor, j: Tensor) -> Tensor:
        """``Δ(S⊖x_j, x_i) = V(S⊖x_j) − V(S⊖x_j⊖x_i) − U(x_i)`` of the pairs ``(b, i, j)``, ``[R]``: the double
        removals are the pool minus both workers' terms, one V head evaluation per pair (no gradient)."""
        vf = self.value_function
        with torch.no_grad():
            firm, t, pool, n = self._v_pool(s)
            v_j = vf.value_from_pool(firm[b], pool[b] - t[b, j], n[b] - 1.0)
            v_ji = vf.value_from_pool(firm[b], pool[b] - t[b, j] - t[b, i], n[b] - 2.0)
            return (v_j - v_ji - self.u_coef * s.h[b, i]).to(self.dtype)

    def addition_surplus(self, s: FirmBatch, b: Tensor, i: Tensor, h_new: Tensor, a_new: Tensor) -> Tensor:
        """``Δ(S⊕x_m, x_i) = V(S⊕x_m) − V(S⊕x_m⊖x_i) − U(x_i)`` of the workers ``(b, i)`` and every new
        worker ``m`` (``h_new, a_new``: ``[M]`` shared or ``[B, M]``), ``[R, M]`` (no gradient)."""
        vf = self.value_function
        with torch.no_grad():
            firm, t, pool, n = self._v_pool(s)
            t_new = vf.worker_terms(h_new, a_new)  # [M, P] or [B, M, P]
            if t_new.dim() == 2:
                t_new = t_new.unsqueeze(0).expand(s.batch_size, -1, -1)
            m = t_new.shape[1]
            plus = pool.unsqueeze(1) + t_new  # [B, M, P]
            v_plus = vf.value_from_pool(
                firm.unsqueeze(1).expand(-1, m, -1), plus, (n + 1.0).unsqueeze(-1).expand(-1, m)
            )
            v_plus_minus = vf.value_from_pool(
                firm[b].unsqueeze(1).expand(-1, m, -1), plus[b] - t[b, i].unsqueeze(1), n[b].unsqueeze(-1).expand(-1, m)
            )
            return (v_plus[b] - v_plus_minus - self.u_coef * s.h[b, i].unsqueeze(-1)).to(self.dtype)

    def explicit_surplus(
        self, h: Tensor, a: Tensor, z: Tensor, q: Tensor, h_co: Tensor, a_co: Tensor, mask_co: Tensor
    ) -> Tensor:
        """``Δ`` of worker ``(h, a)`` (``[N]``) at a firm ``(z, q)`` whose other workers are the explicit set
        ``h_co, a_co, mask_co`` (``[N, m]``): ``V(co ∪ {x}) − V(co) − U(x)`` (the plain form, :meth:`worker_fn`)."""
        vf = self.value_function
        with torch.no_grad():
            hc = torch.where(mask_co, h_co, torch.ones_like(h_co))
            ac = torch.where(mask_co, a_co, torch.ones_like(a_co))
            t = torch.where(mask_co.unsqueeze(-1), vf.worker_terms(hc, ac), 0.0).sum(-2)
            firm, n = vf.firm_terms(z, q), mask_co.sum(-1).to(t.dtype)
            v = vf.value_from_pool(firm, t + vf.worker_terms(h, a), n + 1.0)
            return (v - vf.value_from_pool(firm, t, n) - self.u_coef * h).to(self.dtype)

    def _encode(self, s: FirmBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """φ ``[B, n_max, E]`` (0 on padding), pool ``[B, E]``, n ``[B]``, h^η ``[B, n_max]`` (0 on padding), Σh^η."""
        mask = s.mask
        h = torch.where(mask, s.h, torch.ones_like(s.h)).to(self.dtype)
        a = torch.where(mask, s.a, torch.ones_like(s.a)).to(self.dtype)
        phi = torch.zeros(*mask.shape, self.embed_dim, dtype=self.dtype, device=h.device)
        phi = phi.index_put((mask,), self.encode_workers(h[mask], a[mask]))
        h_eta = torch.where(mask, h.pow(self.eta), torch.zeros_like(h))
        return phi, phi.sum(-2), mask.sum(-1).to(self.dtype), h_eta, h_eta.sum(-1)

    # ------------------------------------------------------------ WorkerValueFunction protocol
    def values(self, s: FirmBatch, w: Tensor) -> Tensor:
        """``W_i(S)``, ``[B, n_max]`` (0 on padding)."""
        phi, pool, n, _, sum_he = self._encode(s)
        b, i = s.mask.nonzero(as_tuple=True)
        d = self.own_surplus(s, b, i) if self.surplus_input else None
        vals = self.evaluate(
            s.h[b, i], s.a[b, i], w[b, i], s.z[b], s.q[b], pool[b] - phi[b, i], n[b] - 1.0, sum_he[b], d
        )
        return torch.zeros(s.mask.shape, dtype=vals.dtype, device=vals.device).index_put((b, i), vals)

    def removal_values(self, s: FirmBatch, w: Tensor) -> Tensor:
        """``W_i(S⊖x_j)``, ``[B, n_max, n_max]`` (0 on the diagonal and padding)."""
        phi, pool, n, h_eta, sum_he = self._encode(s)
        eye = torch.eye(s.n_max, dtype=torch.bool, device=s.h.device)
        pair = s.mask.unsqueeze(-1) & s.mask.unsqueeze(-2) & ~eye
        b, i, j = pair.nonzero(as_tuple=True)
        vals = self.evaluate(
            s.h[b, i],
            s.a[b, i],
            w[b, i],
            s.z[b],
            s.q[b],
            pool[b] - phi[b, i] - phi[b, j],
            n[b] - 2.0,
            sum_he[b] - h_eta[b, j],
            self.removal_surplus(s, b, i, j) if self.surplus_input else None,
        )
        return torch.zeros(pair.shape, dtype=vals.dtype, device=vals.device).index_put((b, i, j), vals)

    def addition_values(self, s: FirmBatch, w: Tensor, h_new: Tensor, a_new: Tensor) -> Tensor:
        """``W_i(S⊕x_m)``, ``[B, n_max, M]`` (0 on padding); ``h_new, a_new``: ``[M]`` shared or ``[B, M]``."""
        phi, pool, n, _, sum_he = self._encode(s)
        h_new = h_new.to(self.dtype)
        phi_new = self.encode_workers(h_new, a_new)  # [M, E] or [B, M, E]
        he_new = h_new.pow(self.eta)
        if h_new.dim() == 1:
            phi_new = phi_new.unsqueeze(0).expand(s.batch_size, -1, -1)
            he_new = he_new.unsqueeze(0).expand(s.batch_size, -1)
        m = he_new.shape[-1]
        b, i = s.mask.nonzero(as_tuple=True)
        r = b.numel()

        def rep(x: Tensor) -> Tensor:
            return x.unsqueeze(1).expand(r, m, *x.shape[1:])

        vals = self.evaluate(
            rep(s.h[b, i]),
            rep(s.a[b, i]),
            rep(w[b, i]),
            rep(s.z[b]),
            rep(s.q[b]),
            (pool[b] - phi[b, i]).unsqueeze(1) + phi_new[b],
            rep(n[b]),
            sum_he[b].unsqueeze(1) + he_new[b],
            self.addition_surplus(s, b, i, h_new, a_new) if self.surplus_input else None,
        )
        out = torch.zeros(*s.mask.shape, m, dtype=vals.dtype, device=vals.device)
        return out.index_put((b, i), vals)

    def wage_curves(self, s: FirmBatch, active: Tensor) -> Callable[[Tensor], Tensor]:
        """``w ↦ W_i(S; w)`` for the slots ``active`` ``[B, n_max]`` (in ``active.nonzero()`` order), the states
        fixed: one pass of φ and of the head, then only the output map per evaluation (wage inversion)."""
        phi, pool, n, _, sum_he = self._encode(s)
        b, i = active.nonzero(as_tuple=True)
        d = self.own_surplus(s, b, i) if self.surplus_input else None
        return self.curve(s.h[b, i], s.a[b, i], s.z[b], s.q[b], pool[b] - phi[b, i], n[b] - 1.0, sum_he[b], d)

    def forward(self, s: FirmBatch, w: Tensor) -> Tensor:
        return self.values(s, w)

    # ------------------------------------------------------------------------- the plain form
    def worker_fn(
        self, h: Tensor, a: Tensor, w: Tensor, z: Tensor, q: Tensor, h_co: Tensor, a_co: Tensor, mask_co: Tensor
    ) -> Tensor:
        """W of one worker per row from its explicit coworker set (``[N]`` and ``[N, m]``): the same network
        without pooled neighbours; wrap in :class:`SetFunctionWorkerValue` for the naive reference."""
        hc = torch.where(mask_co, h_co, torch.ones_like(h_co)).to(self.dtype)
        ac = torch.where(mask_co, a_co, torch.ones_like(a_co)).to(self.dtype)
        phi = torch.where(mask_co.unsqueeze(-1), self.encode_workers(hc, ac), 0.0)
        he = torch.where(mask_co, hc.pow(self.eta), torch.zeros_like(hc)).sum(-1)
        d = self.explicit_surplus(h, a, z, q, h_co, a_co, mask_co) if self.surplus_input else None
        h = h.to(self.dtype)
        return self.evaluate(h, a, w, z, q, phi.sum(-2), mask_co.sum(-1).to(self.dtype), he + h.pow(self.eta), d)
