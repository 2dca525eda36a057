"""The simulated population: a worker table and the firms' slots, two views kept consistent.

``N_f`` firms stand for measure 1 and ``W = round(N_w·N_f)`` workers for measure ``N_w``
(MODEL.md section 1). The state is held in two views of the same assignment:

- the **worker table**, one row per worker seat ``w``: persistent ``worker_id``, ``h``, ``a``,
  ``firm`` (row of the firm, ``-1`` when unmatched) and ``slot`` (``-1`` when unmatched). A
  retiree's seat is taken by its replacement, who gets a new ``worker_id``, so the number of
  workers is ``W`` at every date;
- the **firm view**: ``z, q`` ``[N_f]``, a persistent ``firm_id`` (a newborn firm that replaces a
  dead one gets a new id) and ``slot_worker`` ``[N_f, n_max]``, the seat in each slot (``-1``
  when the slot is free).

``h`` and ``a`` live in the worker table only; :meth:`Population.firm_batch` gathers the
padded :class:`~lotj.economy.firms.FirmBatch` of any set of firms on demand. Every update
goes through :meth:`Population.detach` and :meth:`Population.attach`, which keep the views in
step; :meth:`Population.check` verifies them (conservation tests call it).

Every change of a firm's state (a worker leaves or joins, the firm dies, its workers learn:
:meth:`Population.touch`) gives the firm a new :attr:`Population.version`, a number no earlier
state of any firm had, so a value computed for ``(firm, version)`` stays valid until the firm
changes (:mod:`lotj.sim.pooled` keeps V that way). Versions are not part of the saved state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from lotj.economy.firms import FirmBatch
from lotj.sim.distributions import EconomySnapshot


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise AssertionError(what)


@dataclass
class Population:
    """Workers and firms of the simulated economy (module docstring)."""

    # firm view [N_f] and [N_f, n_max]
    z: Tensor
    q: Tensor
    firm_id: Tensor
    slot_worker: Tensor
    size: Tensor  #: n(S) of every firm, kept in step with ``slot_worker``
    # worker table [W]
    worker_id: Tensor
    h: Tensor
    a: Tensor
    firm: Tensor
    slot: Tensor
    # counters for fresh ids
    next_worker_id: int
    next_firm_id: int

    def __post_init__(self) -> None:
        #: per firm, the number of the last change of its state (module docstring); not saved
        self.version = torch.zeros(self.z.shape[0], dtype=torch.long, device=self.z.device)
        self._changes = 0

    def touch(self, firms: Tensor) -> None:
        """Record that the states of ``firms`` changed: each gets a version no state had before."""
        if firms.numel():
            self._changes += 1
            self.version.index_fill_(0, firms, self._changes)

    # --------------------------------------------------------------- building
    @classmethod
    def from_snapshot(cls, snap: EconomySnapshot) -> Population:
        """Seats for every worker of ``snap`` (employed first, then unmatched) with ids ``0..W-1``,
        firms with ids ``0..N_f-1``."""
        firms = snap.firms
        dev = firms.z.device
        n_firms, n_max = firms.mask.shape
        rows, slots = firms.mask.nonzero(as_tuple=True)
        n_emp = rows.numel()
        n_un = snap.unmatched_h.numel()
        slot_worker = torch.full((n_firms, n_max), -1, dtype=torch.long, device=dev)
        slot_worker[rows, slots] = torch.arange(n_emp, device=dev)
        minus = torch.full((n_un,), -1, dtype=torch.long, device=dev)
        total = n_emp + n_un
        return cls(
            z=firms.z.clone(),
            q=firms.q.clone(),
            firm_id=torch.arange(n_firms, device=dev),
            slot_worker=slot_worker,
            size=firms.mask.sum(1),
            worker_id=torch.arange(total, device=dev),
            h=torch.cat([firms.h[rows, slots], snap.unmatched_h.to(dev)]),
            a=torch.cat([firms.a[rows, slots], snap.unmatched_a.to(dev)]),
            firm=torch.cat([rows, minus]),
            slot=torch.cat([slots, minus]),
            next_worker_id=total,
            next_firm_id=n_firms,
        )

    # ------------------------------------------------------------------ views
    @property
    def n_firms(self) -> int:
        return self.z.shape[0]

    @property
    def n_max(self) -> int:
        return self.slot_worker.shape[1]

    @property
    def n_workers(self) -> int:
        return self.h.shape[0]

    def employed(self) -> Tensor:
        """``[W]`` bool: the worker is matched with a firm."""
        return self.firm >= 0

    def sizes(self) -> Tensor:
        """n(S) of every firm, ``[N_f]`` (workers only; the manager is not counted)."""
        return self.size.clone()

    def firm_batch(self, idx: Tensor | None = None) -> FirmBatch:
        """The padded firm states of the firms ``idx`` (all firms when None); padding h = a = 1. A copy:
        later updates leave it alone (a firm death rewrites ``z, q`` of its row in place, and batches are
        kept, e.g. snapshots pooled over a market window)."""
        sw = self.slot_worker if idx is None else self.slot_worker[idx]
        z = self.z.clone() if idx is None else self.z[idx]
        q = self.q.clone() if idx is None else self.q[idx]
        mask = sw >= 0
        seat = sw.clamp_min(0)
        one = torch.ones((), dtype=self.h.dtype, device=self.h.device)
        return FirmBatch(z, q, torch.where(mask, self.h[seat], one), torch.where(mask, self.a[seat], one), mask)

    def snapshot(self) -> EconomySnapshot:
        """The economy as an :class:`EconomySnapshot` (all firms; the unmatched workers): a copy that
        later steps leave alone."""
        un = ~self.employed()
        return EconomySnapshot(self.firm_batch(), self.h[un].clone(), self.a[un].clone())

    # ---------------------------------------------------------------- updates
    def detach(self, workers: Tensor, firms: Tensor | None = None) -> None:
        """Make the (employed, distinct) workers ``workers`` unmatched; their slots become free.
        ``firms``: their firms, when the caller has them already."""
        if workers.numel() == 0:
            return
        if firms is None:
            firms = self.firm.index_select(0, workers)
        flat = firms * self.n_max + self.slot.index_select(0, workers)
        self.touch(firms)
        self.slot_worker.view(-1).index_fill_(0, flat, -1)
        self.size.index_add_(0, firms, torch.full_like(firms, -1))
        self.firm.index_fill_(0, workers, -1)
        self.slot.index_fill_(0, workers, -1)

    def attach(self, workers: Tensor, firms: Tensor, slots: Tensor) -> None:
        """Put the (unmatched) workers into the given free slots (distinct ``(firm, slot)`` pairs)."""
        if workers.numel() == 0:
            return
        self.touch(firms)
        self.slot_worker.view(-1).index_copy_(0, firms * self.n_max + slots, workers)
        self.size.index_add_(0, firms, torch.ones_like(firms))
        self.firm.index_copy_(0, workers, firms)
        self.slot.index_copy_(0, workers, slots)

    def replace_workers(self, workers: Tensor, h: Tensor, a: Tensor) -> None:
        """Retirement: the seats ``workers`` get new unmatched workers ``(h, a)`` with fresh ids."""
        if workers.numel() == 0:
            return
        self.detach(workers[self.firm[workers] >= 0])
        self.renew_workers(workers, h, a)

    def renew_workers(self, workers: Tensor, h: Tensor, a: Tensor) -> None:
        """The (unmatched, distinct) seats ``workers`` get new workers ``(h, a)`` with fresh ids: a
        retirement whose seat the caller has already detached."""
        k = workers.numel()
        if k == 0:
            return
        ids = torch.arange(self.next_worker_id, self.next_worker_id + k, device=self.h.device)
        self.worker_id.index_copy_(0, workers, ids)
        self.next_worker_id += k
        self.h.index_copy_(0, workers, h)
        self.a.index_copy_(0, workers, a)

    def replace_firms(self, firms: Tensor, z: Tensor, q: Tensor) -> Tensor:
        """Firm death: every worker of ``firms`` becomes unmatched and each firm is replaced by a
        newborn empty firm ``(z, q)`` with a fresh id. Returns the seats of the displaced workers."""
        if firms.numel() == 0:
            return firms
        sw = self.slot_worker[firms]
        displaced = sw[sw >= 0]
        self.detach(displaced)
        self.touch(firms)
        self.z[firms] = z
        self.q[firms] = q
        self.firm_id[firms] = self.next_firm_id + torch.arange(firms.numel(), device=self.z.device)
        self.next_firm_id += firms.numel()
        return displaced

    # ------------------------------------------------------------ invariants
    def check(self) -> None:
        """Raise AssertionError unless the two views describe the same assignment: every seat is in
        at most one slot, employed seats sit where the firm view says, unmatched seats nowhere."""
        occupied = self.slot_worker >= 0
        _require(torch.equal(occupied.sum(1), self.size), "firm sizes differ from the occupied slots")
        seats = self.slot_worker[occupied]
        _require(seats.numel() == seats.unique().numel(), "a worker sits in two slots")
        emp = self.employed()
        _require(int(emp.sum()) == seats.numel(), "employed count differs from occupied slots")
        _require(bool((self.slot[emp] >= 0).all()), "an employed worker has no slot")
        _require(bool((self.slot[~emp] == -1).all()), "an unmatched worker holds a slot")
        rows, cols = occupied.nonzero(as_tuple=True)
        _require(bool((self.firm[seats] == rows).all()), "worker table and firm view disagree on the firm")
        _require(bool((self.slot[seats] == cols).all()), "worker table and firm view disagree on the slot")
        _require(self.worker_id.unique().numel() == self.n_workers, "duplicate worker ids")
        _require(self.firm_id.unique().numel() == self.n_firms, "duplicate firm ids")

    # ---------------------------------------------------------- checkpointing
    def state_dict(self) -> dict:
        return {
            f.name: (
                getattr(self, f.name).clone() if isinstance(getattr(self, f.name), Tensor) else getattr(self, f.name)
            )
            for f in fields(self)
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str) -> Population:
        kwargs = {k: (v.to(device).clone() if isinstance(v, Tensor) else int(v)) for k, v in state.items()}
        return cls(**kwargs)
