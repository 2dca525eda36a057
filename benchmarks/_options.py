"""Shared by the W benchmarks: ``key=value`` benchmark options beside config overrides, and the frozen V."""

from __future__ import annotations

import lightning as L
import torch

from lotj.config import Config, load_config
from lotj.nets import ValueNet, franchise_guess
from lotj.sim.distributions import EconomySnapshot
from lotj.train.vmodule import build_net


def split_options(argv: list[str], defaults: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """``argv``'s ``key=value`` arguments whose key is one of ``defaults``' (the benchmark's own options, the
    others at their defaults), and the rest (config overrides)."""
    opts = dict(defaults)
    rest = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in opts:
            opts[key] = value
        else:
            rest.append(arg)
    return opts, rest


def options_and_config(argv: list[str], defaults: dict[str, str]) -> tuple[dict[str, str], Config]:
    """Split ``argv`` into the benchmark's own options (keys of ``defaults``) and config overrides
    (``conf=smoke`` unless given), set torch's threads from ``threads`` and float64, and load the config."""
    opts, rest = split_options(argv, defaults)
    if not any(a.startswith("conf=") for a in rest):
        rest.append("conf=smoke")
    torch.set_num_threads(int(opts["threads"]))
    torch.set_default_dtype(torch.float64)
    return opts, load_config(rest)


def frozen_value(cfg: Config, snapshot: EconomySnapshot, path: str = "") -> ValueNet:
    """The V the W stage holds fixed: the config's network with the separable guess of ``snapshot``,
    loaded from the state dict at ``path`` when given (otherwise the untrained guess), without gradients."""
    vf = build_net(cfg, franchise_guess(snapshot.firms, cfg.economy.eta))
    if path:
        vf.load_state_dict(torch.load(path, map_location="cpu"))
    return vf.requires_grad_(False)


def w_trainer(ws, callbacks: list) -> L.Trainer:
    """A quiet Lightning Trainer for a W stage of ``ws.max_epochs`` (no logger, checkpoints or bar)."""
    return L.Trainer(
        max_epochs=ws.max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=ws.grad_clip if ws.grad_clip > 0 else None,
        callbacks=callbacks,
    )
