"""``VModule``: the LightningModule that trains V on its HJB residual (MODEL.md sections 4 and 6).

Lightning plumbing only. The residual is :func:`lotj.economy.hjb.v_residual`, the network
:class:`lotj.nets.ValueNet`, the batch format :mod:`lotj.train.datamodule`.

- ``training_step``: with ``solver.gradient=full`` (the default) the loss is the batch's squared
  residual made scale-free, ``mean(R²) / mean((ρV)²)`` with the denominator detached, i.e. the square
  of the scale-free residual of docs/solver.md on the batch; with ``solver.unbiased`` the numerator
  is ``mean(R₁R₂)`` from two independent draw sets (unbiased for the squared residual of the exact
  expectation). Gradients flow through every V evaluation. With ``solver.gradient=semi`` the loss
  is the fitted-value-iteration (semi-gradient) loss ``mean((V − sg[V + R/c])²) / mean(V²)``, with
  ``c = −∂R/∂V(S)`` and every neighbour value held fixed (docs/solver.md compares the two).
  With a chain-target set (:class:`lotj.train.chain_targets.ChainTargets`, ``solver.chain_states > 0``)
  the loss adds ``solver.chain_weight · mean((V − y)²) / mean(y²)`` on a batch of its states
  (:meth:`VModule.chain_loss`).
- With ``solver.correction_start > 0`` the network is a :class:`lotj.nets.CorrectedValueNet`: the first network
  trains alone until that epoch, then only the second (``on_train_epoch_start`` sets the stage), each with the
  schedule over its own stage (two parameter groups, :class:`StageSchedule`).
- ``validation_step``: accumulates sums over the held-out batches; at epoch end logs ``val/residual``
  (unbiased, two draw sets), ``val/residual_mc`` (``R₁²``), ``val/residual_state`` (per-state scale)
  and ``val/negative_v`` (:func:`heldout_metrics`).
- A non-finite loss, gradient, parameter or held-out residual raises :class:`NonFiniteError` naming
  the epoch, before any checkpoint of that epoch is written.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from omegaconf import OmegaConf
from torch import Tensor

from lotj.accuracy.targets import ChainTargetSet
from lotj.config import Config
from lotj.economy.hjb import VResidual, make_draws, v_residual
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.nets import CorrectedValueNet, ValueNet
from lotj.train.datamodule import Batch, unpack


class NonFiniteError(RuntimeError):
    """A NaN or Inf in the loss, the gradients, the parameters or the held-out residual."""

    def __init__(self, what: str, epoch: int, step: int):
        super().__init__(f"non-finite {what} at epoch {epoch} (global step {step}); training stopped")
        self.what = what
        self.epoch = epoch
        self.step = step


def as_config(cfg: Config | dict) -> Config:
    """A :class:`Config` from itself or from its dict form (as stored in checkpoints)."""
    if isinstance(cfg, Config):
        return cfg
    merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(cfg))
    out = OmegaConf.to_object(merged)
    assert isinstance(out, Config)
    return out


def config_dict(cfg: Config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def build_net(cfg: Config, franchise: float) -> ValueNet | CorrectedValueNet:
    """The V network of ``cfg.net``; with ``solver.correction_start > 0`` the pair of the correction stage
    (:class:`lotj.nets.CorrectedValueNet`), its second network at zero."""
    n = cfg.net
    args = (cfg.economy, n.embed_dim, n.phi_width, n.phi_depth, n.rho_width, n.rho_depth, n.activation, franchise)
    base = ValueNet(*args)
    if cfg.solver.correction_start <= 0:
        return base
    return CorrectedValueNet(base, ValueNet(*args, correction_only=True), cfg.solver.correction_scale)


@dataclass(frozen=True)
class StageSchedule:
    """The learning-rate factor of one stage of a run with a correction stage: ``lr_decay`` per epoch
    (``cosine=False``) or a cosine from 1 to ``lr_min`` per step, over ``[start, end)`` (epochs or steps); 1
    before the stage, its last value after it."""

    start: int
    end: int
    cosine: bool
    lr_decay: float
    lr_min: float

    def __call__(self, t: int) -> float:
        k = min(max(t - self.start, 0), max(self.end - self.start, 1))
        if not self.cosine:
            return self.lr_decay**k
        return self.lr_min + (1.0 - self.lr_min) * 0.5 * (1.0 + math.cos(math.pi * k / max(self.end - self.start, 1)))


class VModule(L.LightningModule):
    """Trains :class:`lotj.nets.ValueNet` on the V residual (module docstring).

    ``franchise``: c₀ of the network's separable guess (``net.franchise`` when > 0, else the value
    given here, normally the mean F/z of the initial χ: :func:`lotj.nets.franchise_guess`).
    """

    def __init__(self, cfg: Config | dict, franchise: float = 1.0):
        super().__init__()
        cfg = as_config(cfg)
        self.save_hyperparameters({"cfg": config_dict(cfg), "franchise": float(franchise)})
        self.cfg = cfg
        self.p: EconomyParams = cfg.economy
        c0 = cfg.net.franchise if cfg.net.franchise > 0 else franchise
        self.net = build_net(cfg, c0)
        self._val: dict[str, float] = {}
        self._t0 = time.perf_counter()
        #: the chain targets the loss fits (set by :class:`lotj.train.chain_targets.ChainTargets`), or None
        self.chain_set: ChainTargetSet | None = None

    # ------------------------------------------------------------ interface
    def value_function(self) -> ValueFunction:
        """The current V (the network itself; call it under ``torch.no_grad()`` for decisions)."""
        return self.net

    def residual(self, batch: Batch, semi: bool = False) -> VResidual:
        """The V residual of a batch (one or two draw sets); ``semi``: neighbours held fixed."""
        u = unpack(batch)
        draws = [
            make_draws(self.net, self.p, d.h_n, d.a_n, d.s_p, d.slot, d.firm_e, d.weight_n, d.weight_e) for d in u.draws
        ]
        if semi:
            for d in draws:
                d.delta_p = d.delta_p.detach()
        second = draws[1] if len(draws) > 1 else None
        return v_residual(
            self.net, self.p, u.states, u.rates, draws[0], second, firm_id=u.firm_id, detach_neighbours=semi
        )

    def _check(self, value: Tensor | float, what: str) -> None:
        v = float(value.detach()) if isinstance(value, Tensor) else float(value)
        if not math.isfinite(v):
            raise NonFiniteError(what, self.current_epoch, self.global_step)

    # -------------------------------------------------------------- training
    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        if self.cfg.solver.gradient == "semi":
            r = self.residual(batch, semi=True)
            assert r.diagonal is not None
            target = (r.value + r.residual / r.diagonal).detach()
            loss = (r.value - target).pow(2).mean() / r.value.detach().pow(2).mean()
        else:
            r = self.residual(batch)
            if self.cfg.solver.weighting == "state":
                weight = (self.p.rho * self.net.scale(unpack(batch).states)).pow(-2)
                weight = weight / weight.mean() / (self.p.rho * r.value.detach()).pow(2).mean()
            else:
                weight = 1.0 / (self.p.rho * r.value.detach()).pow(2).mean()
            second = r.residual2 if r.residual2 is not None else r.residual
            loss = (weight * r.residual * second).mean()
        if self.chain_set is not None and self.cfg.solver.chain_weight > 0:
            fit = self.chain_loss()
            size = self.cfg.solver.batch_size
            self.log("train/chain_loss", fit.detach(), on_step=False, on_epoch=True, batch_size=size)
            loss = loss + self.cfg.solver.chain_weight * fit
        self._check(loss, "loss")
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=r.value.numel())
        return loss

    def chain_loss(self) -> Tensor:
        """``mean((V(S) − y)²) / mean(y²)`` on ``solver.batch_size`` states of the chain-target set, drawn
        with replacement (module docstring)."""
        c = self.chain_set
        assert c is not None
        idx = torch.randint(c.target.numel(), (self.cfg.solver.batch_size,), device=c.target.device)
        y = c.target[idx]
        return (self.net.value(c.states.index(idx)) - y).pow(2).mean() / y.pow(2).mean()

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # one check of all gradients together: one wait for the GPU per step, not one per parameter
        grads = [prm.grad.reshape(-1) for prm in self.parameters() if prm.grad is not None]
        if grads and not torch.isfinite(torch.cat(grads)).all():
            raise NonFiniteError("gradient", self.current_epoch, self.global_step)

    def on_train_epoch_start(self) -> None:
        if isinstance(self.net, CorrectedValueNet):
            correcting = self.current_epoch >= self.cfg.solver.correction_start
            self.net.set_stage(correcting)  # also after a resume: requires_grad is not saved
            self.log("train/correcting", float(correcting), on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        for prm in self.parameters():
            if not torch.isfinite(prm).all():
                raise NonFiniteError("parameter", self.current_epoch, self.global_step)
        self.log("time/elapsed_s", time.perf_counter() - self._t0, on_step=False, on_epoch=True)
        opt = self.optimizers()
        if not isinstance(opt, list):
            # the rate of the network that trains (the second one's during a correction stage)
            group = -1 if isinstance(self.net, CorrectedValueNet) and self.net.correcting else 0
            self.log("train/lr", opt.param_groups[group]["lr"], on_step=False, on_epoch=True)

    # ------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val = new_accumulator()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        accumulate(self._val, self, batch)

    def on_validation_epoch_end(self) -> None:
        if not self._val.get("count"):
            return
        metrics = heldout_metrics(self._val)
        if not self.trainer.sanity_checking:
            self._check(metrics["val/residual_mc"], "held-out residual")
        self.log("val/residual", metrics.pop("val/residual"), prog_bar=True)
        self.log_dict(metrics)

    # ------------------------------------------------------------- optimiser
    def configure_optimizers(self) -> Any:
        s = self.cfg.solver
        if isinstance(self.net, CorrectedValueNet):
            return self._two_stage_optimizers()
        opt = torch.optim.Adam(self.parameters(), lr=s.lr, weight_decay=s.weight_decay)
        if s.schedule == "cosine":
            # per step, from lr to lr·lr_min over the run's max_epochs × steps_per_epoch steps
            total = max(s.max_epochs * s.steps_per_epoch, 1)
            cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=s.lr * s.lr_min)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    def _two_stage_optimizers(self) -> Any:
        """Adam on two groups, the first network's and the second's, each with ``solver.schedule`` run over its
        own stage: the first over epochs ``[0, correction_start)``, the second, from ``correction_lr``, over
        the rest (docs/solver.md, "The correction stage")."""
        s = self.cfg.solver
        net = self.net
        assert isinstance(net, CorrectedValueNet)
        lr2 = s.correction_lr if s.correction_lr > 0 else s.lr
        groups = [
            {"params": list(net.base.parameters()), "lr": s.lr},
            {"params": list(net.fine.parameters()), "lr": lr2},
        ]
        opt = torch.optim.Adam(groups, lr=s.lr, weight_decay=s.weight_decay)
        cosine = s.schedule == "cosine"
        unit = s.steps_per_epoch if cosine else 1  # cosine: per step; exponential: per epoch
        start, end = s.correction_start * unit, s.max_epochs * unit
        stages = [
            StageSchedule(0, start, cosine, s.lr_decay, s.lr_min),
            StageSchedule(start, end, cosine, s.lr_decay, s.lr_min),
        ]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, stages)  # type: ignore[arg-type]
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step" if cosine else "epoch"}}


def new_accumulator() -> dict[str, float]:
    return {"r1r2": 0.0, "r1r1": 0.0, "scale": 0.0, "rel": 0.0, "negative": 0.0, "count": 0.0}


def accumulate(acc: dict[str, float], module: VModule, batch: Batch) -> None:
    """Add a held-out batch (two draw sets) to the sums behind :func:`heldout_metrics`."""
    r = module.residual(batch)
    assert r.residual2 is not None
    rho = module.p.rho
    acc["r1r2"] += float((r.residual * r.residual2).sum())
    acc["r1r1"] += float(r.residual.pow(2).sum())
    acc["scale"] += float((rho * r.value).pow(2).sum())
    acc["rel"] += float((r.residual * r.residual2 / (rho * module.net.scale(unpack(batch).states)).pow(2)).sum())
    acc["negative"] += float((r.value < 0).sum())
    acc["count"] += r.value.numel()


def heldout_metrics(acc: dict[str, float]) -> dict[str, float]:
    """The held-out metrics of docs/solver.md from accumulated sums: ``val/residual`` (unbiased,
    RMS R / RMS ρV, from √|mean R₁R₂|: a noise-dominated, negative mean reads at the noise level, not 0),
    ``val/residual_mc`` (R₁², with Monte Carlo noise), ``val/residual_state`` (unbiased,
    per-state scale ρV₀(S)), ``val/negative_v`` (share of states with V < 0, impossible in the model) and
    ``val/l2`` (|mean R₁R₂|: the mean squared residual in the model's units, the loss ``L_V`` of MODEL.md
    section 6 without the scaling, the figure the source reports)."""
    count = acc["count"]
    scale = math.sqrt(acc["scale"] / count)
    return {
        "val/residual": math.sqrt(abs(acc["r1r2"] / count)) / scale,
        "val/residual_mc": math.sqrt(acc["r1r1"] / count) / scale,
        "val/residual_state": math.sqrt(abs(acc["rel"] / count)),
        "val/negative_v": acc["negative"] / count,
        "val/l2": abs(acc["r1r2"] / count),
    }


@torch.no_grad()
def evaluate_heldout(module: VModule, batches: list[Batch]) -> dict[str, float]:
    """The held-out metrics of ``module`` on given held-out batches (outside a Trainer), on the module's
    device and in its precision."""
    acc = new_accumulator()
    dt = module.net.dtype
    dev = module.net.log_c.device
    for batch in batches:
        moved = {k: (v.to(dev, dt) if v.is_floating_point() else v.to(dev)) for k, v in batch.items()}
        accumulate(acc, module, moved)
    return heldout_metrics(acc)
