"""Statistics of the simulated economy (MODEL.md sections 3, 8 and 10; docs/simulator.md).

The simulator accumulates, over a window of simulated time, point-in-time samples of the
economy taken after every step, annual employment transitions, and event counts. From them
:func:`summarise` computes:

- ``e``: the employment rate (time average of the point-in-time employed share);
- ``omega, s_n, s_e``: the meeting market-clearing identity (MODEL.md section 3) at the
  window's average ``e`` and ``∫(1 + n) dχ``;
- the firm-size distribution among firms with at least one worker (MODEL.md section 10): mean,
  median ``p50``, ``p90`` (lower quantiles of the time-averaged histogram: the smallest ``n``
  whose cumulative share reaches 0.5 / 0.9) and the share of those firms at the cap ``n_max``;
  ``firm_size_se``, the sampling standard error of the mean size: the size distribution's standard
  deviation over the square root of the average number of such firms (a firm's size is persistent
  within a window, so each firm counts once);
- ``en_rate`` / ``ne_rate``: annual P(non-employed at t+1 | employed at t) and the reverse, on
  the workers present at both annual dates (retirees dropped);
- mean and variance of ``log h`` among employed and among unmatched workers, and the mean over
  all workers;
- ``cap_refused_share``: meetings that end without a hire because of the cap, over those plus
  all hires and poaches (see :data:`COUNTERS`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from lotj.economy.params import EconomyParams, meeting_rates

#: Event counters, accumulated over a window:
#: ``deaths`` firm deaths, ``learning`` learning events (all firms, empty ones included),
#: ``retirements``, ``breaks`` (δ_m), ``reneg_shocks`` λ shocks that reached a decision,
#: ``reneg_separations`` λ shocks without an outside meeting in the step at which Δ < 0,
#: ``meetings_n`` / ``meetings_e`` meetings of unmatched / employed workers that reached a
#: decision (void ones excluded), ``void_meetings`` (poacher = own firm, MODEL.md section 10),
#: ``hires`` from non-employment, ``poaches`` (moves between firms),
#: ``meeting_separations`` employed workers with Δ < 0 at an outside meeting (they leave; to the
#: poacher if it hires them, else to non-employment), ``cap_blocked`` meetings that reached a firm
#: at the cap in the decision state (it makes no offer), ``cap_refused`` meetings at a firm below the
#: cap in the decision state that found it at the cap at their time within the step (earlier
#: arrivals, or departures that come later; offers or not), ``value_evaluations`` firm states whose
#: V the decisions needed (with the network, values kept from an earlier step are counted too; the
#: head evaluations actually made are :attr:`lotj.sim.simulator.Simulator.head_evaluations`),
#: ``after_offer`` meetings at a firm below the cap that came after an offer of the same firm in the
#: same step, decided on the decision state plus the workers offered before them (docs/simulator.md,
#: step 5; not those whose earlier offers fill the firm: they are decided on the decision state).
COUNTERS = (
    "deaths",
    "learning",
    "retirements",
    "breaks",
    "reneg_shocks",
    "reneg_separations",
    "meetings_n",
    "meetings_e",
    "void_meetings",
    "hires",
    "poaches",
    "meeting_separations",
    "cap_blocked",
    "cap_refused",
    "value_evaluations",
    "after_offer",
)

_COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}

#: Sums over the samples (taken at the start of every step): employed worker-steps, Σ log h, Σ log² h
#: among them, then the same for unmatched workers. The first and fourth are the exposures of rate checks.
_SAMPLES = ("employed", "lh_emp", "lh2_emp", "unmatched", "lh_un", "lh2_un")
_TRANSITIONS = ("en_num", "en_den", "ne_num", "ne_den")


def log_h_moments(h: Tensor) -> Tensor:
    """``(1, log h, log² h)`` of each worker, ``[W, 3]``: the terms of the per-step samples."""
    lh = torch.log(h)
    return torch.stack([torch.ones_like(lh), lh, lh * lh], 1)


class Accumulator:
    """Running sums of one window: samples, size histogram, annual transitions and counters."""

    def __init__(self, n_max: int, device: torch.device | str):
        self.n_max = n_max
        self.device = device
        self._index_cache: dict[tuple[int, ...], Tensor] = {}
        self.reset()

    def reset(self) -> None:
        dev = self.device
        self.samples = torch.zeros(len(_SAMPLES), dtype=torch.float64, device=dev)
        self.hist = torch.zeros(self.n_max + 1, dtype=torch.float64, device=dev)
        self.transitions = torch.zeros(len(_TRANSITIONS), dtype=torch.float64, device=dev)
        self.counts = torch.zeros(len(COUNTERS), dtype=torch.float64, device=dev)
        self.years = 0.0
        self.steps = 0
        self.n_firms = 0
        self._pending_idx: list[int] = []
        self._pending: list[Tensor] = []
        self._pending_int = [0] * len(COUNTERS)

    def count(self, name: str, value: Tensor | int) -> None:
        """Add to a counter; tensor counts are summed at the next :meth:`flush` in one operation."""
        if isinstance(value, Tensor):
            self._pending_idx.append(_COUNTER_INDEX[name])
            self._pending.append(value)
        else:
            self._pending_int[_COUNTER_INDEX[name]] += value

    def flush(self) -> None:
        """Move the pending counts into :attr:`counts` (called at the end of every step)."""
        if self._pending:
            key = tuple(self._pending_idx)  # the same counters every step: the index tensor is kept
            idx = self._index_cache.get(key)
            if idx is None:
                with torch.inference_mode(False):  # kept across simulation calls: an ordinary tensor
                    idx = self._index_cache[key] = torch.tensor(key, device=self.counts.device)
            self.counts.index_add_(0, idx, torch.stack(self._pending).to(torch.float64))
            self._pending_idx, self._pending = [], []
        if any(self._pending_int):
            self.counts += torch.tensor(self._pending_int, dtype=torch.float64, device=self.counts.device)
            self._pending_int = [0] * len(COUNTERS)

    def sample(self, sizes: Tensor, employed: Tensor, h: Tensor) -> None:
        """Add one point-in-time sample of the economy."""
        lh = torch.log(h)
        emp = employed.to(torch.float64)
        moments = torch.stack([torch.ones_like(lh), lh, lh * lh], 1)  # [W, 3]
        groups = torch.stack([emp, 1.0 - emp], 1)  # [W, 2]
        self.samples += (groups.T @ moments).reshape(-1)  # employed: count, Σ log h, Σ log² h; then unmatched
        self.hist += torch.bincount(sizes, minlength=self.n_max + 1).to(torch.float64)
        self.steps += 1
        self.n_firms = sizes.numel()

    def sample_moments(self, sizes: Tensor, employed: Tensor, moments: Tensor) -> None:
        """:meth:`sample` from every worker's :func:`log_h_moments` ``[W, 3]``, kept by the caller
        (they change only where ``h`` does): two reductions instead of a pass over ``log h``."""
        emp = torch.mv(moments.T, employed.to(moments.dtype))
        self.samples += torch.cat([emp, moments.sum(0) - emp])
        self.hist += torch.bincount(sizes, minlength=self.n_max + 1).to(torch.float64)
        self.steps += 1
        self.n_firms = sizes.numel()

    def transition(self, was_employed: Tensor, employed: Tensor, stayed: Tensor) -> None:
        """One annual date: workers present at both dates (``stayed``) moving E→N and N→E."""
        e0 = was_employed & stayed
        n0 = ~was_employed & stayed
        self.transitions += torch.stack([(e0 & ~employed).sum(), e0.sum(), (n0 & employed).sum(), n0.sum()]).to(
            torch.float64
        )

    def state_dict(self) -> dict:
        self.flush()
        return {
            "samples": self.samples.clone(),
            "hist": self.hist.clone(),
            "transitions": self.transitions.clone(),
            "counts": self.counts.clone(),
            "years": self.years,
            "steps": self.steps,
            "n_firms": self.n_firms,
        }

    def load_state_dict(self, state: dict) -> None:
        for k in ("samples", "hist", "transitions", "counts"):
            setattr(self, k, state[k].to(self.device).clone())
        if self.counts.numel() < len(COUNTERS):  # a checkpoint from before the later counters: they start at 0
            self.counts = torch.cat([self.counts, self.counts.new_zeros(len(COUNTERS) - self.counts.numel())])
        self.years = float(state["years"])
        self.steps = int(state["steps"])
        self.n_firms = int(state["n_firms"])


@dataclass
class SimStatistics:
    """Statistics of one window of simulated time (module docstring)."""

    years: float
    e: float
    omega: float
    s_n: float
    s_e: float
    firm_size_mean: float
    firm_size_p50: float
    firm_size_p90: float
    firm_size_share_at_cap: float
    firm_size_se: float
    share_firms_active: float
    en_rate: float
    ne_rate: float
    mean_log_h: float
    mean_log_h_employed: float
    var_log_h_employed: float
    mean_log_h_unmatched: float
    var_log_h_unmatched: float
    cap_refused_share: float
    counts: dict[str, float] = field(default_factory=dict)
    exposure: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    def scalars(self) -> dict[str, float]:
        """The statistics without the counters (for logs and summaries)."""
        return {k: v for k, v in asdict(self).items() if not isinstance(v, dict)}


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def lower_quantile(hist: Tensor, prob: float) -> float:
    """The smallest index whose cumulative share of ``hist`` reaches ``prob`` (NaN when empty)."""
    total = float(hist.sum())
    if total <= 0:
        return math.nan
    cum = torch.cumsum(hist, 0) / total
    return float(torch.searchsorted(cum, torch.tensor([prob - 1e-12], dtype=cum.dtype, device=cum.device))[0])


def _size_se(active: Tensor, sizes: Tensor, steps: int) -> float:
    """The sampling standard error of the mean firm size of a window (module docstring)."""
    n_active = float(active.sum())
    if n_active <= 0 or steps <= 0:
        return math.nan
    mean = float((active * sizes).sum()) / n_active
    var = max(float((active * sizes * sizes).sum()) / n_active - mean * mean, 0.0)
    return math.sqrt(var / (n_active / steps))


def summarise(acc: Accumulator, p: EconomyParams) -> SimStatistics:
    """:class:`SimStatistics` from the sums of one window."""
    acc.flush()
    s = dict(zip(_SAMPLES, acc.samples.tolist()))
    t = dict(zip(_TRANSITIONS, acc.transitions.tolist()))
    c = dict(zip(COUNTERS, acc.counts.tolist()))
    steps = acc.steps
    workers = s["employed"] + s["unmatched"]
    e = _ratio(s["employed"], workers)
    n1 = 1.0 + _ratio(s["employed"], steps * acc.n_firms)
    rates = meeting_rates(p, e, n1) if steps > 0 else None
    active = acc.hist[1:]
    n_active = float(active.sum())
    sizes = torch.arange(1, acc.n_max + 1, dtype=torch.float64, device=active.device)
    mean_emp = _ratio(s["lh_emp"], s["employed"])
    mean_un = _ratio(s["lh_un"], s["unmatched"])
    hires = c["hires"] + c["poaches"]
    refused = c["cap_blocked"] + c["cap_refused"]
    return SimStatistics(
        years=acc.years,
        e=e,
        omega=rates.omega if rates else math.nan,
        s_n=rates.s_n if rates else math.nan,
        s_e=rates.s_e if rates else math.nan,
        firm_size_mean=_ratio(float((active * sizes).sum()), n_active),
        firm_size_p50=lower_quantile(active, 0.5) + 1.0,
        firm_size_p90=lower_quantile(active, 0.9) + 1.0,
        firm_size_share_at_cap=_ratio(float(active[-1]), n_active),
        firm_size_se=_size_se(active, sizes, steps),
        share_firms_active=_ratio(n_active, float(acc.hist.sum())),
        en_rate=_ratio(t["en_num"], t["en_den"]),
        ne_rate=_ratio(t["ne_num"], t["ne_den"]),
        mean_log_h=_ratio(s["lh_emp"] + s["lh_un"], workers),
        mean_log_h_employed=mean_emp,
        var_log_h_employed=_ratio(s["lh2_emp"], s["employed"]) - mean_emp**2,
        mean_log_h_unmatched=mean_un,
        var_log_h_unmatched=_ratio(s["lh2_un"], s["unmatched"]) - mean_un**2,
        cap_refused_share=_ratio(refused, hires + refused),
        counts=c,
        exposure={"steps": steps, "employed_steps": s["employed"], "unmatched_steps": s["unmatched"]},
    )
