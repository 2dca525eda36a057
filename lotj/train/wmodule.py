"""Lightning module of the W stage: the worker-value network trained on its HJB residual (docs/wages.md).

The loss of a batch (``wsolver.loss_weight``) is, with ``state`` (the default), ``mean((R/σ)²)`` with each
worker's own scale ``σ = ρ max{|W|, U}`` (detached: :func:`lotj.economy.wages.worker_residual_scale`), so
that a worker worth little (a hire at ``W = U``) weighs as much as one at the top of its bargaining set;
with ``batch`` it is the squared scale-free residual ``mean(R²) / mean((ρW)²)`` over the batch's real
workers (the denominator detached, so the loss never rewards a larger W). With ``wsolver.unbiased`` the
square ``R²`` is ``R₁R₂`` with two independent draw sets, an unbiased estimate of the squared residual of
the exact expectations (``R²`` adds the Monte Carlo variance of the meeting terms, which depends on W).
The first ``wsolver.warm_start_steps`` steps regress W on the frozen-state oracle instead
(:func:`lotj.economy.wages.frozen_state_value`). Adam; the learning rate decays per epoch
(``exponential``) or anneals per step to ``lr·lr_min`` (``cosine``, ``wsolver.lr_schedule``). V is frozen:
its terms come from :func:`lotj.economy.wages.wage_v_terms` without gradient. The economics lives in
:mod:`lotj.economy.wages`; this module only wires it to Lightning.

Logged: ``w/train_loss`` (per step and epoch), ``w/val_residual`` (the held-out scale-free residual
``sqrt(mean(R₁R₂)) / RMS(ρW)`` over all held-out workers, with two fixed independent draw sets),
``w/val_worker_residual`` (``sqrt(mean(R₁R₂/σ²))``, each held-out worker by its own scale), ``w/lr``, and
during the warm start ``w/warm_start_loss``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from lotj.config import WSolverConfig
from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction
from lotj.economy.wages import (
    WageVTerms,
    frozen_state_values_from_terms,
    w_residuals_from_terms,
    wage_v_terms,
    worker_residual_scale,
)
from lotj.economy.worker_value import WorkerValueFunction
from lotj.errors import ConfigError
from lotj.train.wdatamodule import Batch, batch_firms

#: ``wsolver.loss_weight``: ``batch`` normalises the batch's squared residual by its mean ``(ρW)²``;
#: ``state`` divides each worker's residual by its own scale before squaring (docs/wages.md).
LOSS_WEIGHTS = ("batch", "state")
#: ``wsolver.lr_schedule``: ``exponential`` (``lr_decay`` per epoch) or ``cosine`` (to ``lr·lr_min``, per step).
LR_SCHEDULES = ("exponential", "cosine")


def _draws_of(batch: Batch, suffix: str) -> tuple[MeetingDraws, FirmBatch, Tensor, Tensor | None]:
    draws = MeetingDraws(
        *(batch[k + suffix] for k in ("h_n", "a_n", "h_e", "a_e", "delta_e", "firm_e")),
        weight_n=batch.get("weight_n" + suffix),
        weight_e=batch.get("weight_e" + suffix),
    )
    return draws, batch_firms(batch, "p_", suffix), batch["poacher_id" + suffix], batch.get("poacher_weight" + suffix)


def terms_of_batch(vf: ValueFunction, p: EconomyParams, batch: Batch) -> tuple[FirmBatch, list[WageVTerms]]:
    """The states of a :class:`lotj.train.wdatamodule.WDataModule` batch and the V terms of each of its draw
    sets (:func:`lotj.economy.wages.wage_v_terms`; one set, or two with the keys ending in ``2``)."""
    s = batch_firms(batch)
    r = batch["rates"]
    rates = MeetingRates(float(r[0]), float(r[1]), float(r[2]))
    suffixes = ["", "2"] if "h_n2" in batch else [""]
    term_sets = []
    for sfx in suffixes:
        draws, poachers, poacher_id, poacher_weight = _draws_of(batch, sfx)
        term_sets.append(wage_v_terms(vf, p, s, rates, draws, poachers, batch["firm_id"], poacher_id, poacher_weight))
    return s, term_sets


def residual_of_batch(
    wf: WorkerValueFunction, vf: ValueFunction, p: EconomyParams, batch: Batch
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """``(R₁, R₂, W, mask)`` of a :class:`lotj.train.wdatamodule.WDataModule` batch, each ``[B, n_max]``;
    ``R₂`` (None without a second draw set in the batch) is the residual with the independent second set."""
    s, term_sets = terms_of_batch(vf, p, batch)
    res, W = w_residuals_from_terms(wf, p, s, batch["w"], term_sets)
    return res[0], (res[1] if len(res) > 1 else None), W, s.mask


class WModule(L.LightningModule):
    """Trains ``net`` (a :class:`lotj.nets.WorkerValueNet`) with V frozen."""

    def __init__(
        self,
        p: EconomyParams,
        net: nn.Module,
        vf: ValueFunction,
        lr: float = 1e-3,
        lr_decay: float = 0.97,
        weight_decay: float = 0.0,
        loss_weight: str = "batch",
        lr_schedule: str = "exponential",
        lr_min: float = 0.01,
        warm_start_steps: int = 0,
    ):
        super().__init__()
        if loss_weight not in LOSS_WEIGHTS:
            raise ConfigError(f"wsolver.loss_weight = {loss_weight!r}: must be one of {', '.join(LOSS_WEIGHTS)}")
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"wsolver.lr_schedule = {lr_schedule!r}: must be one of {', '.join(LR_SCHEDULES)}")
        if not 0.0 < lr_min <= 1.0:
            raise ConfigError(f"wsolver.lr_min = {lr_min}: must be in (0, 1]")
        if warm_start_steps < 0:
            raise ConfigError(f"wsolver.warm_start_steps = {warm_start_steps}: must be >= 0")
        self.loss_weight, self.lr_schedule, self.lr_min = loss_weight, lr_schedule, float(lr_min)
        self.warm_start_steps = int(warm_start_steps)
        self.p = p
        self.net = net
        if isinstance(vf, nn.Module):
            vf.eval()
            for prm in vf.parameters():
                prm.requires_grad_(False)
        # V is frozen and is not W's: held outside the module tree, so that it is never switched to train
        # mode, never saved with W, and not among the modules Lightning checks for eval mode at fit start
        self._frozen_v = (vf,)
        if getattr(net, "surplus_input", False):
            net.attach_value(vf)  # W takes the frozen V's surplus as an input (docs/wages.md)
        self.lr, self.lr_decay, self.weight_decay = lr, lr_decay, weight_decay
        self._val_sums = torch.zeros(3, dtype=torch.float64)

    @classmethod
    def from_config(cls, p: EconomyParams, net: nn.Module, vf: ValueFunction, cfg: WSolverConfig) -> WModule:
        """The module with the optimiser, schedule and loss weighting of the ``wsolver`` config group."""
        return cls(
            p,
            net,
            vf,
            lr=cfg.lr,
            lr_decay=cfg.lr_decay,
            weight_decay=cfg.weight_decay,
            loss_weight=cfg.loss_weight,
            lr_schedule=cfg.lr_schedule,
            lr_min=cfg.lr_min,
            warm_start_steps=cfg.warm_start_steps,
        )

    @property
    def vf(self) -> ValueFunction:
        """The frozen V."""
        return self._frozen_v[0]

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(mean(R₁R₂), mean((ρW)²), count, mean(R₁R₂/scale²))`` over the batch's real workers, with the
        per-worker scale of :func:`lotj.economy.wages.worker_residual_scale` (detached)."""
        r, r2, W, mask = residual_of_batch(self.net, self.vf, self.p, batch)
        m = mask.to(r.dtype)
        count = m.sum().clamp_min(1.0)
        sq = r * (r if r2 is None else r2)
        ms_r = (sq * m).sum() / count
        ms_w = ((self.p.rho * W) ** 2 * m).sum() / count
        scale = worker_residual_scale(self.p, batch["h"], W.detach())
        ms_rel = (sq / scale.pow(2) * m).sum() / count
        return ms_r, ms_w, count, ms_rel

    def warm_start_loss(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """``(loss, count)``: the squared relative distance of W from the frozen-state oracle
        (:func:`lotj.economy.wages.frozen_state_value`: the value with the outside offers, renegotiation and
        the match's end, every neighbour state equal to S), each worker by its own scale: the regression of
        the first ``warm_start_steps`` steps, which starts the residual training near the answer."""
        s, term_sets = terms_of_batch(self.vf, self.p, batch)
        w = batch["w"]
        with torch.no_grad():
            target = frozen_state_values_from_terms(self.p, w, term_sets[0])
            scale = worker_residual_scale(self.p, s.h, target) / self.p.rho
        W = self.net.values(s, w)
        m = s.mask.to(W.dtype)
        count = m.sum().clamp_min(1.0)
        return (((W - target) / scale).pow(2) * m).sum() / count, count

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if self.global_step < self.warm_start_steps:
            loss, count = self.warm_start_loss(batch)
            self.log("w/warm_start_loss", loss, on_step=True, on_epoch=False, batch_size=int(count))
            return loss
        ms_r, ms_w, count, ms_rel = self._loss(batch)
        loss = ms_rel if self.loss_weight == "state" else ms_r / ms_w.detach().clamp_min(1e-300)
        bs = int(count)
        self.log("w/train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("w/lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(4, dtype=torch.float64)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        ms_r, ms_w, count, ms_rel = self._loss(batch)
        sums = torch.stack([ms_r * count, ms_w * count, count, ms_rel * count])
        self._val_sums += sums.detach().cpu().to(torch.float64)

    def on_validation_epoch_end(self) -> None:
        sr, sw, count, srel = self._val_sums
        value = float((sr.clamp_min(0.0) / sw.clamp_min(1e-300)).sqrt())
        self.log("w/val_residual", value, prog_bar=True)
        self.log("w/val_worker_residual", float((srel.abs() / count.clamp_min(1.0)).sqrt()))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        if self.lr_schedule == "cosine":
            # per step, from lr to lr·lr_min over the whole run (Lightning's estimate of its steps)
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=self.lr * self.lr_min)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
