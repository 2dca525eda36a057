"""Lightning module of the W stage: the worker-value network trained on its HJB residual (docs/wages.md).

The loss of a batch is the squared scale-free W residual ``mean(R²) / mean((ρW)²)`` over the real workers of
its firm states (the denominator is detached, so the loss measures the residual and never rewards a larger W);
with ``wsolver.unbiased`` it is ``mean(R₁R₂) / mean((ρW)²)`` with two independent draw sets, an unbiased
estimate of the squared residual of the exact expectations (``R²`` adds the Monte Carlo variance of the
meeting terms, which depends on W). V is frozen: its terms come from :func:`lotj.economy.wages.wage_v_terms`
without gradient. The economics lives in :mod:`lotj.economy.wages`; this module only wires it to Lightning.

Logged: ``w/train_loss`` (per step and epoch), ``w/val_residual`` (the held-out scale-free residual
``sqrt(mean(R₁R₂)) / RMS(ρW)`` over all held-out workers, with two fixed independent draw sets), ``w/lr``.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor, nn

from lotj.economy.firms import FirmBatch
from lotj.economy.hjb import MeetingDraws
from lotj.economy.params import EconomyParams, MeetingRates
from lotj.economy.value import ValueFunction
from lotj.economy.wages import w_residuals_from_terms, wage_v_terms
from lotj.economy.worker_value import WorkerValueFunction
from lotj.train.wdatamodule import Batch, batch_firms


def _draws_of(batch: Batch, suffix: str) -> tuple[MeetingDraws, FirmBatch, Tensor]:
    draws = MeetingDraws(*(batch[k + suffix] for k in ("h_n", "a_n", "h_e", "a_e", "delta_e", "firm_e")))
    return draws, batch_firms(batch, "p_", suffix), batch["poacher_id" + suffix]


def residual_of_batch(
    wf: WorkerValueFunction, vf: ValueFunction, p: EconomyParams, batch: Batch
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """``(R₁, R₂, W, mask)`` of a :class:`lotj.train.wdatamodule.WDataModule` batch, each ``[B, n_max]``;
    ``R₂`` (None without a second draw set in the batch) is the residual with the independent second set."""
    s = batch_firms(batch)
    r = batch["rates"]
    rates = MeetingRates(float(r[0]), float(r[1]), float(r[2]))
    suffixes = ["", "2"] if "h_n2" in batch else [""]
    term_sets = []
    for sfx in suffixes:
        draws, poachers, poacher_id = _draws_of(batch, sfx)
        term_sets.append(wage_v_terms(vf, p, s, rates, draws, poachers, batch["firm_id"], poacher_id))
    res, W = w_residuals_from_terms(wf, p, s, batch["w"], term_sets)
    return res[0], (res[1] if len(res) > 1 else None), W, s.mask


class WModule(L.LightningModule):
    """Trains ``net`` (a :class:`lotj.worker_net.WorkerValueNet`) with V frozen."""

    def __init__(
        self,
        p: EconomyParams,
        net: nn.Module,
        vf: ValueFunction,
        lr: float = 1e-3,
        lr_decay: float = 0.97,
        weight_decay: float = 0.0,
    ):
        super().__init__()
        self.p = p
        self.net = net
        if isinstance(vf, nn.Module):
            vf.eval()
            for prm in vf.parameters():
                prm.requires_grad_(False)
        self.vf = vf
        self.lr, self.lr_decay, self.weight_decay = lr, lr_decay, weight_decay
        self._val_sums = torch.zeros(3, dtype=torch.float64)

    def train(self, mode: bool = True) -> WModule:
        super().train(mode)
        if isinstance(self.vf, nn.Module):
            self.vf.eval()  # V stays frozen
        return self

    def _loss(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        r, r2, W, mask = residual_of_batch(self.net, self.vf, self.p, batch)
        m = mask.to(r.dtype)
        count = m.sum().clamp_min(1.0)
        ms_r = (r * (r if r2 is None else r2) * m).sum() / count
        ms_w = ((self.p.rho * W) ** 2 * m).sum() / count
        return ms_r, ms_w, count

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        ms_r, ms_w, count = self._loss(batch)
        loss = ms_r / ms_w.detach().clamp_min(1e-300)
        bs = int(count)
        self.log("w/train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        self.log("w/lr", self.optimizers().param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(3, dtype=torch.float64)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        ms_r, ms_w, count = self._loss(batch)
        self._val_sums += torch.stack([ms_r * count, ms_w * count, count]).detach().cpu().to(torch.float64)

    def on_validation_epoch_end(self) -> None:
        sr, sw, _ = self._val_sums
        value = float((sr.clamp_min(0.0) / sw.clamp_min(1e-300)).sqrt())
        self.log("w/val_residual", value, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=self.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
