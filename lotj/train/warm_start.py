"""Warm starts: a run whose networks start from another run's (``init_from=DIR``).

A counterfactual economy or a calibration candidate is a new equilibrium, but its V and W are close to those of
a solved neighbour: starting the networks there saves most of the epochs a cold start spends. Only the networks'
weights are taken. The economy itself (the initial χ, the simulator's draws, the Ω states) is drawn from *this*
run's parameters and seed, so a warm-started run is a solve of its own economy; with the same seed as the run it
starts from, it uses the same random numbers where the economy allows (common random numbers).

``init_from`` names a finished run's directory (its ``checkpoints/last.ckpt`` and, for the W stage,
``w_net.pt``) or a ``.ckpt`` file. The networks must have the same architecture (``net.*``, ``wnet.*``): a
mismatch raises :class:`lotj.errors.ConfigError` naming the parameters that differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lotj.errors import ConfigError

__all__ = ["v_checkpoint", "w_weights", "load_v_weights", "load_w_weights"]


def v_checkpoint(init_from: str | Path) -> Path:
    """The ``last.ckpt`` behind ``init_from`` (a run directory or a checkpoint file)."""
    path = Path(init_from)
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise ConfigError(f"init_from = {init_from}: no checkpoint at {path} (give a finished run's directory)")
    return path


def w_weights(init_from: str | Path) -> Path | None:
    """The ``w_net.pt`` of the run behind ``init_from``, or None when that run had no W stage."""
    path = Path(init_from)
    run_dir = path if path.is_dir() else path.parent.parent  # DIR/checkpoints/last.ckpt -> DIR
    w = run_dir / "w_net.pt"
    return w if w.is_file() else None


def _load(module: nn.Module, state: dict[str, torch.Tensor], what: str, source: Path) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or extra or shapes:
        parts = [f"missing {missing[:4]}" if missing else "", f"unexpected {extra[:4]}" if extra else ""]
        parts.append(f"shapes differ for {shapes[:4]}" if shapes else "")
        detail = "; ".join(p for p in parts if p)
        raise ConfigError(
            f"init_from: the {what} network of {source} has another architecture ({detail}); "
            "use the same net.* / wnet.* settings as the run it starts from"
        )
    ref = next(iter(own.values()), None)
    module.load_state_dict({k: v.to(ref.device, ref.dtype) if ref is not None else v for k, v in state.items()})


def load_v_weights(module: nn.Module, init_from: str | Path) -> Path:
    """Copy the V network of ``init_from``'s checkpoint into ``module`` (a VModule); returns the checkpoint."""
    path = v_checkpoint(init_from)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    _load(module, ckpt["state_dict"], "V", path)
    return path


def load_w_weights(net: nn.Module, init_from: str | Path) -> Path | None:
    """Copy the W network of ``init_from`` (its ``w_net.pt``) into ``net``; None (nothing loaded) when that
    run had no W stage."""
    path = w_weights(init_from)
    if path is None:
        return None
    _load(net, torch.load(path, map_location="cpu", weights_only=True), "W", path)
    return path
