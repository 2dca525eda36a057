"""What the phases of one simulator step hand to each other (docs/simulator.md, "One step").

A step touches few workers, so each phase works on compact index arrays (seats, firm rows, times in
``[0, 1)`` of the step) rather than on the whole population; these records name them as the model does.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Departures:
    """Workers who leave their firm during the step (a retirement, a match break or a separation): their
    seats, the firms they leave and the times at which they leave (the admission rule of step 7 frees
    their slots at those times)."""

    workers: Tensor
    firms: Tensor
    times: Tensor


@dataclass
class Meetings:
    """The step's live meetings (thinned by the met worker's status at their time, void ones dropped):
    the met worker's seat, the meeting firm, the time, the worker's own firm (−1: unmatched), whether the
    worker is employed (``own_firm >= 0``), whether the firm is below the cap in the decision state
    (``is_open``: the meeting gets a decision; a firm at the cap makes no offer, MODEL.md section 10) and
    the positions of those open meetings (``open_rows``)."""

    worker: Tensor
    firm: Tensor
    time: Tensor
    own_firm: Tensor
    employed: Tensor
    is_open: Tensor
    open_rows: Tensor


@dataclass
class OpenMeetings:
    """The open meetings' workers and firms, and each firm's meetings in time order (``order``, ``first``:
    :func:`lotj.sim.events.time_order`), in which they are decided (step 5)."""

    worker: Tensor
    firm: Tensor
    order: Tensor
    first: Tensor


@dataclass
class Offers:
    """Step 5 at the open meetings: ``own_delta`` = Δ of the worker at its own firm (0 off the job),
    ``delta_hire`` = Δ_k = Δ(S_k⊕x, x) as decided, and whether the firm makes the ``offer``."""

    own_delta: Tensor
    delta_hire: Tensor
    offer: Tensor


@dataclass
class Decisions:
    """The decisions of step 5 at the workers' own firms. ``renegotiating``: the seats with a live λ shock;
    ``deciders`` (ascending): the employed seats with a λ shock or an outside meeting, the ``time`` of each
    decision (its meeting's, else its shock's) and ``delta_own`` = Δ(S, x_i); ``meeting_row``: each employed
    meeting's row in ``deciders``."""

    renegotiating: Tensor
    deciders: Tensor
    time: Tensor
    delta_own: Tensor
    meeting_row: Tensor


@dataclass
class OfferState:
    """The offers of the open meetings while they are decided in time order (step 5): ``threshold`` =
    max{Δ, 0} of each met worker (B > 0 iff Δ_k exceeds it; 0 off the job), ``on_state`` = Δ_k on the
    decision state, ``delta`` = Δ_k as decided (after the firm's earlier offers), ``offer`` and ``u_h`` =
    U(x) of each met worker."""

    threshold: Tensor
    on_state: Tensor
    delta: Tensor
    offer: Tensor
    u_h: Tensor


@dataclass
class Admissions:
    """Step 7's admitted offers: the workers, their new firms, each one's rank among its firm's admissions of
    the step, whether it comes from a job (a poach), its meeting's time; ``moving_out``: the open meetings
    whose worker leaves a job for the new firm."""

    workers: Tensor
    firms: Tensor
    rank: Tensor
    from_job: Tensor
    times: Tensor
    moving_out: Tensor


@dataclass
class WageDecisions:
    """Step 5's decisions in the per-seat form that :meth:`lotj.sim.wage_tracking.WageTracker.on_decisions`
    reads (MODEL.md section 5). Per seat ``[W]``: ``renegotiating``, the employed seats with a λ shock, and
    ``delta_own`` = Δ(S, x_i) of every deciding seat. Per meeting ``[M]`` (void meetings removed): the met
    ``worker``'s seat, the ``firm`` met, whether the worker is ``employed``, whether the firm is below the cap
    (``is_open``), ``delta_k`` = Δ(S_k⊕x, x) at the firm met (any value where not open), or Δ(S_k⊕P⊕x, x)
    where ``after_offer``: the meeting came after offers P of the same firm in the step (None: none did)."""

    renegotiating: Tensor
    delta_own: Tensor
    worker: Tensor
    firm: Tensor
    employed: Tensor
    is_open: Tensor
    delta_k: Tensor
    after_offer: Tensor | None = None
