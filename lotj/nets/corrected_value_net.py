"""V as a frozen first network plus a scaled second one: the correction stage (``solver.correction_start``;
docs/solver.md, "The correction stage").

``CorrectedValueNet`` holds two :class:`lotj.nets.ValueNet` of the same architecture and returns

    V(S) = V₁(S) + ε · D(S),

with ``V₁`` the network of the first stage and ``D`` a second network that outputs only its learned part
(``correction_only``: ``[F k + c z g + (F + c z) ρ(...) + z Σ j] / r``, zero at initialisation), so that a
head output of order one is a correction of order ε relative to the value's separable scale. Until the
correction stage starts, ``D`` is frozen at zero and the pair is ``V₁`` exactly; from then on ``V₁`` is
frozen and only ``D`` trains, on the same loss (the HJB residual of the sum, and chain targets if any).

Why (multi-stage fitting): the first network's error at the end of its training is a small, smooth function
that its own optimiser resolves poorly, since each step moves V by the learning rate times the network's
sensitivity, far more than the error left. A fresh network whose output is scaled by the size of that error
fits it at its own scale, with its own capacity, from a restarted learning rate.

Both networks are sum-pooled, so the pair is too: its per-worker terms are the two networks' terms side by
side, and every removal and addition neighbour is still one head evaluation of each (ARCHITECTURE.md,
"The performance idea"). The pair implements the same interface as :class:`lotj.nets.ValueNet`
(:class:`lotj.economy.value.ValueFunction`, the residual's ``values_and_neighbours``, the simulator's
pooled terms), so nothing downstream knows which it has.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lotj.economy.firms import FirmBatch
from lotj.nets.value_net import ValueNet

__all__ = ["CorrectedValueNet"]

_FIRM_TERMS = 5  # width of ValueNet.firm_terms: (z, log z, log q, k, g)


class CorrectedValueNet(nn.Module):
    """``V₁ + ε D`` (module docstring). ``base``: the first network; ``fine``: a ``correction_only`` network of
    the same architecture; ``eps``: ε > 0, the relative size of the correction one unit of ``D``'s head
    represents."""

    def __init__(self, base: ValueNet, fine: ValueNet, eps: float):
        super().__init__()
        if not fine.correction_only:
            raise ValueError("CorrectedValueNet: the second network must be built with correction_only=True")
        if not eps > 0:
            raise ValueError(f"CorrectedValueNet: eps = {eps}: must be > 0")
        self.base = base
        self.fine = fine
        self.register_buffer("eps", torch.tensor(float(eps), dtype=base.dtype))
        # 1 once the correction stage has started: saved with the weights, so a loaded pair knows whether D counts
        self.register_buffer("stage", torch.zeros((), dtype=base.dtype))
        self.set_stage(correcting=False)
        self.register_load_state_dict_post_hook(CorrectedValueNet._after_load)

    @staticmethod
    def _after_load(module: nn.Module, incompatible: object) -> None:
        assert isinstance(module, CorrectedValueNet)
        module.set_stage(bool(module.stage.item() > 0.5))

    # ----------------------------------------------------------------- stages
    @property
    def correcting(self) -> bool:
        """Whether the correction stage is on (``D`` trains, ``V₁`` is frozen)."""
        return self._correcting

    def set_stage(self, correcting: bool) -> None:
        """Before the correction stage only ``V₁`` trains and V is ``V₁`` alone (D is still zero, and is not
        evaluated); during it only ``D`` trains."""
        self._correcting = bool(correcting)
        self.stage.fill_(1.0 if correcting else 0.0)
        self.base.requires_grad_(not correcting)
        self.fine.requires_grad_(correcting)

    # ------------------------------------------------------------------ pieces
    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    @property
    def log_c(self) -> Tensor:
        """The first network's franchise parameter (its device and dtype are the pair's)."""
        return self.base.log_c

    def _sum(self, a: Tensor, b: Tensor) -> Tensor:
        return a + self.eps * b

    # ------------------------------------------------------ ValueFunction protocol
    def value(self, s: FirmBatch) -> Tensor:
        """V(S), ``[B]``."""
        if not self._correcting:
            return self.base.value(s)
        return self._sum(self.base.value(s), self.fine.value(s))

    def removal_values(self, s: FirmBatch) -> Tensor:
        """V(S⊖x_i) for every real slot, ``[B, n_max]`` (padding: 0)."""
        if not self._correcting:
            return self.base.removal_values(s)
        return self._sum(self.base.removal_values(s), self.fine.removal_values(s))

    def addition_values(self, s: FirmBatch, h_new: Tensor, a_new: Tensor) -> Tensor:
        """V(S⊕x_m), ``[B, M]`` (:meth:`lotj.nets.ValueNet.addition_values`)."""
        if not self._correcting:
            return self.base.addition_values(s, h_new, a_new)
        return self._sum(self.base.addition_values(s, h_new, a_new), self.fine.addition_values(s, h_new, a_new))

    def values_and_neighbours(
        self, s: FirmBatch, h_new: Tensor | None = None, a_new: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(V(S), V(S⊖x_i), V(S⊕x_m))``, each the sum of the two networks' (one encoding of S each)."""
        v1, minus1, plus1 = self.base.values_and_neighbours(s, h_new, a_new)
        if not self._correcting:
            return v1, minus1, plus1
        v2, minus2, plus2 = self.fine.values_and_neighbours(s, h_new, a_new)
        plus = None if plus1 is None or plus2 is None else self._sum(plus1, plus2)
        return self._sum(v1, v2), self._sum(minus1, minus2), plus

    def sparse_neighbours(
        self, s: FirmBatch, rem_row: Tensor, rem_slot: Tensor, add_row: Tensor, h_new: Tensor, a_new: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`lotj.nets.ValueNet.sparse_neighbours` of the sum."""
        one = self.base.sparse_neighbours(s, rem_row, rem_slot, add_row, h_new, a_new)
        if not self._correcting:
            return one
        two = self.fine.sparse_neighbours(s, rem_row, rem_slot, add_row, h_new, a_new)
        v, minus, plus = (self._sum(a, b) for a, b in zip(one, two, strict=True))
        return v, minus, plus

    # ------------------------------------------------- pools kept by the caller (simulator)
    # (before the correction stage the first network's terms alone: the stage changes only between epochs, never
    # while a caller holds terms)
    @property
    def pool_width(self) -> int:
        """Width of :meth:`worker_terms`: the two networks' widths (the first's alone before the stage)."""
        return self.base.pool_width + (self.fine.pool_width if self._correcting else 0)

    def worker_terms(self, h: Tensor, a: Tensor) -> Tensor:
        """Each worker's pooled terms, the first network's then the second's, ``[..., P₁ + P₂]``."""
        if not self._correcting:
            return self.base.worker_terms(h, a)
        return torch.cat([self.base.worker_terms(h, a), self.fine.worker_terms(h, a)], -1)

    def firm_terms(self, z: Tensor, q: Tensor) -> Tensor:
        """The firm-level inputs of both heads, ``[..., 10]`` (``[..., 5]`` before the stage)."""
        if not self._correcting:
            return self.base.firm_terms(z, q)
        return torch.cat([self.base.firm_terms(z, q), self.fine.firm_terms(z, q)], -1)

    def value_from_pool(self, firm: Tensor, pool: Tensor, n: Tensor) -> Tensor:
        """V from :meth:`firm_terms`, a sum of :meth:`worker_terms` and the number of workers."""
        p1 = self.base.pool_width
        v1 = self.base.value_from_pool(firm[..., :_FIRM_TERMS], pool[..., :p1], n)
        if not self._correcting:
            return v1
        v2 = self.fine.value_from_pool(firm[..., _FIRM_TERMS:], pool[..., p1:], n)
        return self._sum(v1, v2)

    def scale(self, s: FirmBatch) -> Tensor:
        """The first network's separable scale (:meth:`lotj.nets.ValueNet.scale`): the residual's weights do
        not move when the correction stage starts."""
        return self.base.scale(s)

    def forward(self, s: FirmBatch) -> Tensor:
        return self.value(s)

    def set_function(self, z: Tensor, q: Tensor, h: Tensor, a: Tensor, mask: Tensor) -> Tensor:
        """V as a plain set function (:meth:`lotj.nets.ValueNet.set_function`)."""
        return self.value(FirmBatch(z, q, h, a, mask))
