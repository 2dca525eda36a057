"""The building blocks the value networks share (docs/solver.md, docs/wages.md): multilayer perceptrons and
the standardised worker and firm features.

Both networks read a worker as ``(log h, log a)`` and a firm type as ``(log z, log q)``, standardised by the
moments of G_w and G_f (MODEL.md section 1). The moments are registered as buffers, so that they are saved
with the network and move with it to a device and dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lotj.economy.params import EconomyParams

_ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "gelu": nn.GELU, "softplus": nn.Softplus}


def mlp(n_in: int, width: int, depth: int, n_out: int, activation: str) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then a linear output of ``n_out``."""
    act = _ACTIVATIONS[activation]
    layers: list[nn.Module] = []
    d = n_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), act()]
        d = width
    layers.append(nn.Linear(d, n_out))
    return nn.Sequential(*layers)


def _sd(x: float) -> float:
    return x if x > 0 else 1.0


def register_standardisation(module: nn.Module, p: EconomyParams) -> None:
    """Register G_w's and G_f's log moments on ``module`` as float64 buffers ``worker_loc``, ``worker_scale``
    (of ``(log h, log a)``) and ``firm_loc``, ``firm_scale`` (of ``(log z, log q)``); a degenerate
    distribution (standard deviation 0) is scaled by 1."""
    module.register_buffer("worker_loc", torch.tensor([p.mu_h, p.mu_a], dtype=torch.float64))
    module.register_buffer("worker_scale", torch.tensor([_sd(p.sd_log_h), _sd(p.sd_log_a)], dtype=torch.float64))
    module.register_buffer("firm_loc", torch.tensor([p.mu_z, p.mu_q], dtype=torch.float64))
    module.register_buffer("firm_scale", torch.tensor([_sd(p.sd_log_z), _sd(p.sd_log_q)], dtype=torch.float64))


def standardised_logs(x: Tensor, y: Tensor, loc: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """``(log x, log y)`` in ``dtype``, standardised by ``loc`` and ``scale`` ``[2]``: ``[..., 2]``."""
    logs = torch.stack([torch.log(x.to(dtype)), torch.log(y.to(dtype))], -1)
    return (logs - loc.to(dtype)) / scale.to(dtype)
