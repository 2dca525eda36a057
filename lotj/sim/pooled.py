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

Within a call V is fixed, so :class:`PooledValues` also keeps the values it computed: V(S) of each
firm and V(S⊖x_i) of each employed worker, with the :attr:`Population.version` of the firm's state
they belong to. A value whose firm has not changed since is used again instead of evaluating the
head (about a third of the evaluations at the smoke economy: a firm is often involved in decisions
in several steps between two changes of its workforce).
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


def value_placement(vf: object) -> tuple[torch.device | None, torch.dtype | None]:
    """The device and dtype of a value function's parameters (a network), ``(None, None)`` when it has none
    (a plain set function evaluates wherever its inputs are). The simulator evaluates V there
    (:meth:`lotj.sim.simulator.Simulator.run_steps`): the one place that puts V's inputs on its device."""
    params = getattr(vf, "parameters", None)
    if params is not None:
        for prm in params():
            return prm.device, prm.dtype
    return None, None


def value_device(vf: PoolableValue, default: torch.device) -> torch.device:
    """The device of the network's parameters (``default`` when it has none)."""
    return value_placement(vf)[0] or default


class PooledValues:
    """Per-worker terms ``[W, E + 3]`` and per-firm head inputs ``[N_f, 5]`` of ``vf`` for the
    population ``pop`` (module docstring), on the network's device and in its dtype; ``dtype``
    (e.g. ``torch.float32``) evaluates a copy of the network in that precision instead."""

    def __init__(self, vf: PoolableValue, pop: Population, dtype: torch.dtype | None = None, reuse: bool = True):
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
        #: keep V(S) per firm and V(S⊖x_i) per worker with the firm's version (module docstring)
        self.reuse = bool(reuse)
        dev, dt = self.device, self.workers.dtype
        self.v_firm = torch.zeros(pop.n_firms, dtype=dt, device=dev)
        self.v_firm_version = torch.full((pop.n_firms,), -1, dtype=torch.long, device=dev)
        self.v_minus = torch.zeros(pop.n_workers, dtype=dt, device=dev)
        self.v_minus_version = torch.full((pop.n_workers,), -1, dtype=torch.long, device=dev)
        #: head evaluations made (V(S), V(S⊖x_i) and V(S⊕x) that were not kept values)
        self.evaluations = 0

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
        self,
        pop: Population,
        firms: Tensor,
        rem_row: Tensor,
        deciders: Tensor,
        add_row: Tensor,
        movers: Tensor,
        combos: Tensor | None = None,
    ) -> Tensor:
        """``V`` of the firms ``firms`` ``[U]`` (distinct), then of ``firms[rem_row] ⊖ deciders`` ``[D]``
        (each decider a worker of that firm), then of ``firms[add_row] ⊕ movers`` ``[M]`` (a firm
        below the cap), concatenated ``[U + D + M]``: one head evaluation on every pool (MODEL.md
        section 6) whose value is not kept from an earlier step with the firm in the same state
        (module docstring). ``combos`` ``[P, C]`` (indices into ``movers``, −1 for none; the movers of a row
        all go to one firm) appends ``V`` of each firm with its row's movers added ``[P]``; a row that would
        take its firm beyond the cap gives a number that is not V, for the caller to discard."""
        here = self._here
        firms, rem_row, add_row, deciders, movers = (here(x) for x in (firms, rem_row, add_row, deciders, movers))
        if combos is not None:
            combos = here(combos)
        if not self.reuse:
            every = torch.arange(firms.numel(), device=firms.device)
            return self._evaluate(pop, firms, every, rem_row, deciders, add_row, movers, combos)
        version = here(pop.version).index_select(0, firms)
        new_f = (self.v_firm_version.index_select(0, firms) != version).nonzero().squeeze(1)
        rem_version = version.index_select(0, rem_row)
        new_d = (self.v_minus_version.index_select(0, deciders) != rem_version).nonzero().squeeze(1)
        n_f, n_d = new_f.numel(), new_d.numel()
        if n_f or n_d or movers.numel():
            # the pools still needed: firms without a kept V, and the firms of new removals and of additions
            rows, inv = torch.unique(torch.cat([new_f, rem_row.index_select(0, new_d), add_row]), return_inverse=True)
            fresh_d = deciders.index_select(0, new_d)
            rows_f, rows_d, rows_a = inv[:n_f], inv[n_f : n_f + n_d], inv[n_f + n_d :]
            v_new_f, v_new_d, v_plus = self._evaluate(
                pop, firms.index_select(0, rows), rows_f, rows_d, fresh_d, rows_a, movers, combos
            ).split([n_f, n_d, movers.numel() + (0 if combos is None else combos.shape[0])])
            fresh_f = firms.index_select(0, new_f)
            self.v_firm.index_copy_(0, fresh_f, v_new_f)
            self.v_firm_version.index_copy_(0, fresh_f, version.index_select(0, new_f))
            self.v_minus.index_copy_(0, fresh_d, v_new_d)
            self.v_minus_version.index_copy_(0, fresh_d, rem_version.index_select(0, new_d))
        else:
            v_plus = self.v_firm[:0]
        return torch.cat([self.v_firm.index_select(0, firms), self.v_minus.index_select(0, deciders), v_plus])

    def _pools(self, pop: Population, firms: Tensor) -> tuple[Tensor, Tensor]:
        """The pools ``[U, E + 3]`` (sums of the workers' terms, in slot order) and sizes ``[U]`` of ``firms``."""
        terms = self.workers
        sw = self._here(pop.slot_worker).index_select(0, firms)
        occupied = sw >= 0
        row = occupied.nonzero()[:, 0]  # the workers of each firm, in slot order
        pool = terms.new_zeros(firms.numel(), terms.shape[1])
        pool.index_add_(0, row, terms.index_select(0, sw.view(-1).index_select(0, occupied.view(-1).nonzero()[:, 0])))
        return pool, self._here(pop.size).index_select(0, firms)

    def _with_movers(self, pool: Tensor, n: Tensor, movers: Tensor, combos: Tensor) -> tuple[Tensor, Tensor]:
        """Pools ``pool`` ``[P, E + 3]`` and sizes ``n`` ``[P]`` with the workers ``movers[combos[k]]`` added to
        row ``k`` (``combos`` ``[P, C]``, −1: none)."""
        member = combos >= 0
        added = self.workers.index_select(0, movers.index_select(0, combos.clamp_min(0).view(-1)))
        added = added.view(*combos.shape, -1) * member.unsqueeze(-1)
        return pool + added.sum(1), n + member.sum(1)

    def combo_values(self, pop: Population, firms: Tensor, movers: Tensor, combos: Tensor) -> Tensor:
        """``V`` of each firm ``firms[k]`` (repeats allowed) with the workers ``movers[combos[k]]`` added
        (``combos`` ``[P, C]``, −1: none): one head evaluation on ``P`` pools (MODEL.md section 6). A row that
        would take its firm beyond the cap gives a number that is not V, for the caller to discard. These
        states are not the population's, so nothing is kept."""
        here = self._here
        firms, movers, combos = here(firms), here(movers), here(combos)
        self.evaluations += firms.numel()
        pools, sizes = self._with_movers(*self._pools(pop, firms), movers, combos)
        with torch.no_grad():
            return self.vf.value_from_pool(self.firms.index_select(0, firms), pools, sizes)

    def _evaluate(
        self,
        pop: Population,
        firms: Tensor,
        value_row: Tensor,
        rem_row: Tensor,
        deciders: Tensor,
        add_row: Tensor,
        movers: Tensor,
        combos: Tensor | None = None,
    ) -> Tensor:
        """The head on the pools of ``firms[value_row]``, ``firms[rem_row] ⊖ deciders``,
        ``firms[add_row] ⊕ movers`` and, with ``combos``, of each row's firm with all its movers added
        (all on the network's device), concatenated."""
        self.evaluations += value_row.numel() + deciders.numel() + movers.numel()
        terms = self.workers
        pool, n = self._pools(pop, firms)
        plus = pool.index_select(0, add_row) + terms.index_select(0, movers)
        minus = pool.index_select(0, rem_row) - terms.index_select(0, deciders)
        blocks = [pool.index_select(0, value_row), minus, plus]
        sizes = [n.index_select(0, value_row), n.index_select(0, rem_row) - 1, n.index_select(0, add_row) + 1]
        rows = [firms.index_select(0, value_row), firms.index_select(0, rem_row), firms.index_select(0, add_row)]
        if combos is not None and combos.numel():
            self.evaluations += combos.shape[0]
            lead = add_row.index_select(0, combos[:, 0])  # every row has its first mover, at the row's firm
            pool_c, n_c = self._with_movers(pool.index_select(0, lead), n.index_select(0, lead), movers, combos)
            blocks.append(pool_c)
            sizes.append(n_c)
            rows.append(firms.index_select(0, lead))
        pools, sizes, rows = torch.cat(blocks), torch.cat(sizes), torch.cat(rows)
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

    def parameters(self):
        """The network's parameters (where it lives: :func:`value_placement`)."""
        return self.net.parameters()
