"""Decision values from pools kept in step with the population (ARCHITECTURE.md, "The performance
idea"; docs/simulator.md, "Cost").

For the network (:class:`lotj.nets.ValueNet`) the pool of a firm is a sum over its workers of
per-worker terms ``(φ(x), h, h^η, j(x))`` (MODEL.md section 6): V(S) is one head evaluation on the
pool, ``V(S⊖x_i)`` one on the pool minus worker i's terms and ``V(S⊕x)`` one on the pool plus x's.
A worker's terms change only when its ``h`` does (a learning event, MODEL.md section 2) or when its
seat gets a new worker (a retirement), and a firm's head inputs ``(z, log z, log q, k, g)`` only at
its death. :class:`PooledValues` keeps both tables for the whole population, so a step encodes only
the workers whose ``h`` changed in it, and the decisions of the step cost one gather of the firms'
slots and one head evaluation per firm state.

The tables are built from the network at the start of every :meth:`Simulator.run_steps` call (the
network may have been trained in between) and dropped at its end, so the numbers depend only on
the simulator's state and the network: a simulator restored from a checkpoint continues the same path.
"""

from __future__ import annotations

import copy
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.nets import ValueNet
from lotj.sim.population import Population


@runtime_checkable
class PoolableValue(Protocol):
    """A value function whose V is a head on sums of per-worker terms (:class:`lotj.nets.ValueNet`)."""

    @property
    def dtype(self) -> torch.dtype: ...

    def worker_terms(self, h: Tensor, a: Tensor) -> Tensor: ...

    def firm_terms(self, z: Tensor, q: Tensor) -> Tensor: ...

    def value_from_pool(self, firm: Tensor, pool: Tensor, n: Tensor) -> Tensor: ...


def value_device(vf: PoolableValue, default: torch.device) -> torch.device:
    """The device of the network's parameters (``default`` when it has none)."""
    params = getattr(vf, "parameters", None)
    if params is not None:
        for prm in params():
            return prm.device
    return default


class PooledValues:
    """Per-worker terms ``[W, E + 3]`` and per-firm head inputs ``[N_f, 5]`` of ``vf`` for the
    population ``pop`` (module docstring), on the network's device and in its dtype; ``dtype``
    (e.g. ``torch.float32``) evaluates a copy of the network in that precision instead."""

    def __init__(self, vf: PoolableValue, pop: Population, dtype: torch.dtype | None = None):
        if dtype is not None and dtype != vf.dtype:
            if not isinstance(vf, torch.nn.Module):
                raise TypeError(f"cannot make a {dtype} copy of {type(vf).__name__}")
            vf = copy.deepcopy(vf).to(dtype)  # the caller's network is left as it is
        self.vf = vf
        self.device = value_device(vf, pop.h.device)
        #: the network lives on the population's device: no transfers (and no calls to make them)
        self.local = self.device == pop.h.device
        with torch.no_grad():
            self.workers = vf.worker_terms(pop.h.to(self.device), pop.a.to(self.device))
            self.firms = vf.firm_terms(pop.z.to(self.device), pop.q.to(self.device))

    def _here(self, x: Tensor) -> Tensor:
        return x if self.local else x.to(self.device)

    def refresh_workers(self, pop: Population, seats: Tensor) -> None:
        """Re-encode the workers in ``seats`` (their ``h`` changed, or the seat has a new worker)."""
        if seats.numel():
            with torch.no_grad():
                h, a = pop.h.index_select(0, seats), pop.a.index_select(0, seats)
                self.workers.index_copy_(0, self._here(seats), self.vf.worker_terms(self._here(h), self._here(a)))

    def refresh_firms(self, pop: Population, firms: Tensor) -> None:
        """Recompute the head inputs of the firms ``firms`` (newborn firms)."""
        if firms.numel():
            firms = firms.to(self.device)
            with torch.no_grad():
                self.firms[firms] = self.vf.firm_terms(pop.z[firms].to(self.device), pop.q[firms].to(self.device))

    def values(
        self, pop: Population, firms: Tensor, rem_row: Tensor, deciders: Tensor, add_row: Tensor, movers: Tensor
    ) -> Tensor:
        """``V`` of the firms ``firms`` ``[U]``, then of ``firms[rem_row] ⊖ deciders`` ``[D]`` (each
        decider a worker of that firm), then of ``firms[add_row] ⊕ movers`` ``[M]`` (a firm below
        the cap), concatenated ``[U + D + M]``: one head evaluation on every pool (MODEL.md section 6)."""
        here = self._here
        firms, rem_row, add_row = here(firms), here(rem_row), here(add_row)
        terms = self.workers
        sw = here(pop.slot_worker).index_select(0, firms)
        occupied = sw >= 0
        row = occupied.nonzero()[:, 0]  # the workers of each firm, in slot order
        pool = terms.new_zeros(firms.numel(), terms.shape[1])
        pool.index_add_(0, row, terms.index_select(0, sw.view(-1).index_select(0, occupied.view(-1).nonzero()[:, 0])))
        n = here(pop.size).index_select(0, firms)
        pools = torch.cat(
            [
                pool,
                pool.index_select(0, rem_row) - terms.index_select(0, here(deciders)),
                pool.index_select(0, add_row) + terms.index_select(0, here(movers)),
            ]
        )
        sizes = torch.cat([n, n.index_select(0, rem_row) - 1, n.index_select(0, add_row) + 1])
        rows = torch.cat([firms, firms.index_select(0, rem_row), firms.index_select(0, add_row)])
        with torch.no_grad():
            return self.vf.value_from_pool(self.firms.index_select(0, rows), pools, sizes)


class PerStepEncoding:
    """A pooled network seen without its pool interface: the simulator then encodes the firms involved
    at every step (``ValueNet.sparse_neighbours``), the decision path before pools were kept. For
    comparing the two paths (tests, ``benchmarks/simulate.py --compare``)."""

    def __init__(self, net: ValueNet):
        self.net = net

    def value(self, s: FirmBatch) -> Tensor:
        return self.net.value(s)

    def sparse_neighbours(self, *args: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.net.sparse_neighbours(*args)
