"""``ChainTargets``: the V stage's chain-target rounds (Lightning plumbing; the economics is
:mod:`lotj.accuracy.targets`).

Every ``solver.chain_every`` epochs from epoch ``solver.chain_start`` on (and after the market has been
refreshed for that epoch), it estimates what V should be at ``solver.chain_states`` training Ω states of the
current market, under the network's current decisions, and hands the set to the :class:`VModule`, whose loss
then adds ``solver.chain_weight`` times the scale-free squared distance to those targets
(:meth:`lotj.train.vmodule.VModule.training_step`). The set stays until the next round, so the network is
fitted to targets of a frozen copy of itself (fitted value iteration with a target network, the targets
looking the whole chain ahead). Logged: ``chain/mean_error`` (mean ``|V − y|/V`` at the new set: an error
estimate of the network there, upward-biased by the noise), ``chain/noise`` and ``chain/seconds``.
The set is kept in the checkpoint, so a resumed run trains on the same targets.

``solver.chain_horizon`` stops a set's chains early, at that discount-and-survival weight: the target is then
the n-step one, the flows of the first n ≈ ln(1/chain_horizon)·Λ̄/ρ events plus the frozen network's value
where the chain stops (:func:`set_tail_weight`), cheaper and less noisy per set, with slow error modes
contracted by about ``chain_horizon`` per set instead of all at once.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch

from lotj.accuracy.targets import ChainTargetSet, chain_targets
from lotj.config import Config
from lotj.economy.firms import FirmBatch

__all__ = ["ChainTargets", "is_round", "set_tail_weight"]


def set_tail_weight(cfg: Config) -> float:
    """The weight at which a set's chains stop: ``solver.chain_horizon``, or ``accuracy.tail_weight`` when it is 0."""
    return cfg.solver.chain_horizon if cfg.solver.chain_horizon > 0 else cfg.accuracy.tail_weight


def is_round(epoch: int, start: int, every: int, max_epochs: int) -> bool:
    """Whether the end of (0-based) ``epoch`` starts a new set: epochs ``start − 1``, ``start − 1 + every``, ...,
    never the last epoch (no step would fit the set)."""
    done = epoch + 1
    return start <= done < max_epochs and (done - start) % every == 0


class ChainTargets(pl.Callback):
    """Estimates a new chain-target set every ``solver.chain_every`` epochs (module docstring)."""

    def __init__(self, cfg: Config, datamodule: Any):
        self.cfg = cfg
        self.dm = datamodule
        self.current: ChainTargetSet | None = None
        self.rounds = 0
        self.seconds = 0.0

    def _install(self, pl_module: pl.LightningModule) -> None:
        if self.current is not None:
            net = pl_module.value_function()
            pl_module.chain_set = self.current.to(net.log_c.device, net.log_c.dtype)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._install(pl_module)  # a resumed run keeps its targets

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        s, acc = self.cfg.solver, self.cfg.accuracy
        if not is_round(trainer.current_epoch, s.chain_start, s.chain_every, s.max_epochs):
            return
        gen = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + 7919 * trainer.current_epoch + 11)
        was_training = pl_module.training
        pl_module.eval()
        new = chain_targets(
            pl_module.value_function(),
            self.cfg.economy,
            self.dm.source,
            self.dm.train_firms,
            s.chain_states,
            gen,
            m_n=acc.m_n,
            m_e=acc.m_e,
            cross_iterations=1,  # the cross-firm term's share contracts by ~0.3 a round; later sets iterate on
            tail_weight=set_tail_weight(self.cfg),
        )
        pl_module.train(was_training)
        self.current = new
        self.rounds += 1
        self.seconds += new.seconds
        self._install(pl_module)
        pl_module.log_dict(
            {
                "chain/mean_error": new.mean_error,
                "chain/noise": float((new.noise / new.value.abs().clamp_min(1e-300)).mean()),
                "chain/seconds": new.seconds,
            },
            on_step=False,
            on_epoch=True,
        )

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rounds": self.rounds, "seconds": self.seconds, "set": None}
        if self.current is not None:
            c = self.current
            st = c.states
            out["set"] = {
                "z": st.z, "q": st.q, "h": st.h, "a": st.a, "mask": st.mask,
                "target": c.target, "value": c.value, "noise": c.noise, "seconds": c.seconds,
            }  # fmt: skip
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rounds = int(state_dict["rounds"])
        self.seconds = float(state_dict["seconds"])
        c = state_dict.get("set")
        if c is not None:
            states = FirmBatch(c["z"], c["q"], c["h"], c["a"], c["mask"])
            self.current = ChainTargetSet(states, c["target"], c["value"], c["noise"], float(c["seconds"]))

    def summary(self) -> dict[str, Any]:
        """``chain_rounds``, ``chain_seconds`` and the last set's ``chain_mean_error`` for ``summary.json``."""
        return {
            "chain_rounds": self.rounds,
            "chain_seconds": self.seconds,
            "chain_mean_error": self.current.mean_error if self.current is not None else None,
        }
