"""The W stage's chain-target sets (``wsolver.chain_rounds``; the economics is
:mod:`lotj.accuracy.worker_targets`).

After the W stage's training on its residual, ``wsolver.chain_rounds`` times: ``wsolver.chain_states`` tracked
workers (one occupied seat of each of that many training Ω states of the stage's market, every worker with a
wage drawn from the stage's training range, ``wsolver.wage_range``), their chain targets under the network as it
stands, and ``wsolver.chain_steps`` Adam steps (``wsolver.chain_lr``) on the scale-free squared distance to
them. Meeting draws, poachers and chain truncation follow ``accuracy.m_n``, ``m_e``, ``m_pi`` and
``tail_weight``. Plain torch: no Trainer runs here.
"""

from __future__ import annotations

from typing import Any

import torch

from lotj.accuracy.worker_targets import WorkerPoints, fit_worker_targets
from lotj.config import Config
from lotj.train.waccuracy import worker_sources

__all__ = ["refine_w"]


def _tracked_points(cfg: Config, market: Any, vf: Any, device: torch.device, dtype: torch.dtype):
    ws = cfg.wsolver

    def points(gen: torch.Generator) -> WorkerPoints:
        s, _, w = market.wage_states(
            ws.chain_states, market.train_firms, gen, vf, None,
            wage_range=ws.wage_range, wage_margin=ws.wage_margin, wage_mix=0.0,
        )  # fmt: skip
        keep = s.mask.any(-1).nonzero().squeeze(-1)
        s, w = s.index(keep), w[keep]
        # one occupied seat per state, uniformly among its workers
        u = torch.rand(s.batch_size, generator=gen, dtype=torch.float64).to(s.mask.device)
        rank = (u * s.mask.sum(-1)).long()
        slot = (s.mask.cumsum(-1) > rank.unsqueeze(-1)).to(torch.int64).argmax(-1)
        parts = (s.z, s.q, s.h, s.a, s.mask)
        moved = type(s)(*(t.to(device, dtype) if t.is_floating_point() else t.to(device) for t in parts))
        return WorkerPoints(moved, slot.to(device), w.to(device, dtype))

    return points


def refine_w(cfg: Config, net: Any, vf: Any, market: Any) -> dict[str, float]:
    """Fit ``net`` to ``wsolver.chain_rounds`` sets of chain targets on ``market`` (module docstring); returns
    ``w_chain_rounds``, ``w_chain_target_seconds``, ``w_chain_fit_seconds``, ``w_chain_loss``."""
    ws, acc = cfg.wsolver, cfg.accuracy
    ref = next(net.parameters())
    draws, poachers = worker_sources(vf, market, acc.m_n, acc.m_e, acc.m_pi)
    was_training = net.training
    net.train()
    out = fit_worker_targets(
        net,
        vf,
        cfg.economy,
        _tracked_points(cfg, market, vf, ref.device, ref.dtype),
        market.rates,
        draws,
        poachers,
        torch.Generator().manual_seed(cfg.seed + 23),
        rounds=ws.chain_rounds,
        steps=ws.chain_steps,
        lr=ws.chain_lr,
        tail_weight=acc.tail_weight,
    )
    net.train(was_training)
    return out
