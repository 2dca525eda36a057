"""A solve that fails on purpose, for tests of tune.calibrate (imported by the Ray workers as
``tests.calibrate_train:train_failing_at_marked_psi_n``)."""

from __future__ import annotations

import math

from lotj.train.run import train

#: the ψ^N at which the solve raises
FAILING_PSI_N = 0.4321


def train_failing_at_marked_psi_n(cfg, **kwargs):
    """``lotj.train.run.train``, except that it raises at ψ^N = :data:`FAILING_PSI_N`."""
    if math.isclose(cfg.economy.psi_n, FAILING_PSI_N, rel_tol=1e-12):
        raise RuntimeError(f"forced failure at psi_n = {FAILING_PSI_N}")
    return train(cfg, **kwargs)
