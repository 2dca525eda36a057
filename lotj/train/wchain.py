"""The W stage's chain-target sets (``wsolver.chain_rounds``; the economics is
:mod:`lotj.accuracy.worker_targets`).

After the W stage's training on its residual, ``wsolver.chain_rounds`` times: ``wsolver.chain_states`` tracked
workers (one occupied seat of each of that many training Ω states of the stage's market, a share
``wsolver.explore`` of them exploration states, every worker with a wage drawn from the stage's training range,
``wsolver.wage_range``; a share ``wsolver.chain_bargaining`` of them across their bargaining set under the
network as it stands), their chain targets under the network as it stands (``wsolver.chain_reps`` pairs of
chains each), and ``wsolver.chain_steps`` Adam steps (``wsolver.chain_lr``) on the squared distance to them,
scale-free over the set or worker by worker (``wsolver.chain_loss``), the fit pooling the targets of the last
``wsolver.chain_memory`` sets. Meeting draws, poachers and chain
truncation follow ``accuracy.m_n``, ``m_e``, ``m_pi`` and ``tail_weight``. Plain torch: no Trainer runs here.
"""

from __future__ import annotations

from typing import Any

import torch

from lotj.accuracy.worker_market import tracked_points, worker_sources
from lotj.accuracy.worker_targets import fit_worker_targets
from lotj.config import Config

__all__ = ["refine_w"]


def refine_w(cfg: Config, net: Any, vf: Any, market: Any) -> dict[str, float]:
    """Fit ``net`` to ``wsolver.chain_rounds`` sets of chain targets on ``market`` (module docstring); returns
    ``w_chain_rounds``, ``w_chain_target_seconds``, ``w_chain_fit_seconds``, ``w_chain_loss``, ``w_chain_pool``."""
    ws, acc = cfg.wsolver, cfg.accuracy
    ref = next(net.parameters())
    draws, poachers = worker_sources(vf, market, acc.m_n, acc.m_e, acc.m_pi)
    was_training = net.training
    net.train()
    out = fit_worker_targets(
        net,
        vf,
        cfg.economy,
        tracked_points(
            market,
            vf,
            ws.chain_states,
            wage_range=ws.wage_range,
            wage_margin=ws.wage_margin,
            device=ref.device,
            dtype=ref.dtype,
            explore=ws.explore,
            wf=net,
            bargaining=ws.chain_bargaining,
        ),  # fmt: skip
        market.rates,
        draws,
        poachers,
        torch.Generator().manual_seed(cfg.seed + 23),
        rounds=ws.chain_rounds,
        steps=ws.chain_steps,
        lr=ws.chain_lr,
        tail_weight=acc.tail_weight,
        reps=ws.chain_reps,
        loss=ws.chain_loss,
        memory=ws.chain_memory,
    )
    net.train(was_training)
    return out
