"""Buffered draws from G_w and G_f for the simulator (MODEL.md sections 1 and 10).

Retirements and firm deaths need a few new workers and firms at every step. Each call of
:func:`lotj.economy.firms.sample_workers` pays a fixed cost (an eigen-decomposition and a
rejection loop), so draws are made in chunks and handed out in order. The buffer and its
position are part of the simulator's saved state, so a restored simulator hands out the same
draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Sampler = Callable[[int], tuple[Tensor, Tensor]]


class DrawBuffer:
    """Pairs ``(x, y)`` drawn ``chunk`` at a time by ``sampler(count)`` and handed out in order."""

    def __init__(self, sampler: Sampler, chunk: int = 4096):
        self.sampler = sampler
        self.chunk = int(chunk)
        self.x: Tensor | None = None
        self.y: Tensor | None = None
        self.pos = 0

    def take(self, count: int) -> tuple[Tensor, Tensor]:
        """The next ``count`` pairs."""
        if self.x is None or self.pos + count > self.x.numel():
            # kept across simulation calls and saved in checkpoints: ordinary tensors even when drawn
            # inside the simulator's inference mode
            with torch.inference_mode(False):
                x, y = self.sampler(max(self.chunk, count))
                if self.x is not None:
                    x = torch.cat([self.x[self.pos :], x])
                    y = torch.cat([self.y[self.pos :], y])
            self.x, self.y, self.pos = x, y, 0
        out = self.x[self.pos : self.pos + count], self.y[self.pos : self.pos + count]
        self.pos += count
        return out

    def state_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "pos": self.pos}

    def load_state_dict(self, state: dict, device: torch.device | str) -> None:
        self.x = None if state["x"] is None else state["x"].to(device).clone()
        self.y = None if state["y"] is None else state["y"].to(device).clone()
        self.pos = int(state["pos"])
