"""Command-line handling shared by the W benchmarks: ``key=value`` benchmark options beside config overrides."""

from __future__ import annotations

import torch

from lotj.config import Config, load_config


def options_and_config(argv: list[str], defaults: dict[str, str]) -> tuple[dict[str, str], Config]:
    """Split ``argv`` into the benchmark's own options (keys of ``defaults``) and config overrides
    (``conf=smoke`` unless given), set torch's threads from ``threads`` and float64, and load the config."""
    opts = dict(defaults)
    rest = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in opts:
            opts[key] = value
        else:
            rest.append(arg)
    if not any(a.startswith("conf=") for a in rest):
        rest.append("conf=smoke")
    torch.set_num_threads(int(opts["threads"]))
    torch.set_default_dtype(torch.float64)
    return opts, load_config(rest)
