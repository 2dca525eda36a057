"""Permutation-invariant networks for the value functions (docs/solver.md, docs/wages.md).

- :class:`ValueNet` (:mod:`lotj.nets.value_net`): the firm's value V(S), sum-pooled over its workers, so that
  every removal and addition neighbour costs one head evaluation;
- :class:`CorrectedValueNet` (:mod:`lotj.nets.corrected_value_net`): a frozen V network plus a scaled second one,
  the correction stage of ``solver.correction_start``;
- :class:`WorkerValueNet` (:mod:`lotj.nets.worker_value_net`): a worker's value W(x_i, S) with pooled
  coworker neighbours and an output increasing in the wage by construction;
- :mod:`lotj.nets.layers`: what they share (multilayer perceptrons, standardised worker and firm features).

A new network for V implements :class:`lotj.economy.value.ValueFunction` (and, for the pooled residual,
``values_and_neighbours``); one for W implements :class:`lotj.economy.worker_value.WorkerValueFunction`
(docs/architecture.md, "Adding a network").
"""

from lotj.nets.corrected_value_net import CorrectedValueNet
from lotj.nets.layers import mlp
from lotj.nets.value_net import Pool, ValueNet, franchise_guess
from lotj.nets.worker_value_net import WorkerValueNet

__all__ = ["CorrectedValueNet", "Pool", "ValueNet", "WorkerValueNet", "franchise_guess", "mlp"]
