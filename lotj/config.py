"""Typed configuration: dataclasses used as OmegaConf structured configs.

``load_config(argv)`` reads ``conf=NAME`` (``conf/NAME.yaml``) and dotted overrides
(``economy.eta=0.9``) and merges them in the order schema < preset < command line. Every
config is validated before anything runs; bad input raises :class:`lotj.errors.ConfigError`
naming the key and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError

#: Where the presets live: ``conf/`` at the repository root (or ``$LOTJ_CONF_DIR``).
CONF_DIR = Path(os.environ.get("LOTJ_CONF_DIR", Path(__file__).resolve().parent.parent / "conf"))


@dataclass
class NetConfig:
    """The permutation-invariant value networks (``lotj.nets``)."""

    embed_dim: int = 32  #: size of the pooled per-worker embedding φ
    phi_width: int = 64  #: hidden width of φ
    phi_depth: int = 2  #: hidden layers of φ
    rho_width: int = 128  #: hidden width of the head ρ
    rho_depth: int = 3  #: hidden layers of the head ρ
    activation: str = "silu"  #: silu | tanh | gelu | softplus
    franchise: float = -1.0  #: c₀ of the separable guess V₀ = ΣU + (F + c₀z)/r (< 0: mean F/z of the initial χ)


@dataclass
class SolverConfig:
    """Training of V (and W) on HJB residuals."""

    stages: list[str] = field(default_factory=lambda: ["v"])  #: solve stages in order: v, w
    lr: float = 1e-3
    lr_decay: float = 0.98  #: multiplicative learning-rate decay per epoch (``schedule=exponential``)
    #: learning-rate schedule: exponential (``lr_decay`` per epoch) | cosine (per step, from ``lr`` to
    #: ``lr·lr_min`` over ``max_epochs × steps_per_epoch`` steps)
    schedule: str = "exponential"
    lr_min: float = 0.01  #: final learning rate of the cosine schedule, as a share of ``lr``
    weight_decay: float = 0.0
    batch_size: int = 256
    steps_per_epoch: int = 50
    max_epochs: int = 40
    m_n: int = 64  #: Monte Carlo draws from χ^N per integral
    m_e: int = 64  #: Monte Carlo draws from χ^E per integral
    unbiased: bool = False  #: product of two independent-draw residuals instead of the squared residual
    n_omega: int = 4096  #: firm states in the Ω training pool per refresh
    n_heldout: int = 1024  #: held-out Ω states for the scale-free residual
    tol: float = 1e-3  #: target held-out scale-free residual
    grad_clip: float = 1.0
    m_eval: int = 128  #: draws per integral (each of two independent sets) for the held-out residual
    heldout_fraction: float = 0.2  #: share of χ's firms whose Ω states are held out (never trained on)
    stratified: bool = True  #: stratified (equal-mass strata) meeting draws instead of i.i.d. draws
    #: meeting expectations as exact weighted sums over the distinct workers of χ^N and χ^E instead of
    #: Monte Carlo draws (discrete economies: no noise; lotj.sim.meeting_draws.exact_draws)
    exact_sums: bool = False
    #: share of the Ω training pool replaced by exploration states (firm type from G_f, size uniform on
    #: 0..n_max, workers from G_w) so that states the simulated χ rarely visits are trained on too
    explore: float = 0.0
    #: simulated cross-sections (one per refresh, newest last) pooled into the market of the residual:
    #: ω, s^N, s^E and the meeting draws (1: the newest only)
    market_window: int = 1
    stop_at_tol: bool = True  #: stop once val/residual < tol (and every `converged` callback agrees)
    gradient: str = "full"  #: full (gradient of R² through every V) | semi (through V(S) only; docs/solver.md)
    weighting: str = "batch"  #: batch (R / RMS ρV of the batch) | state (R / ρV₀(S) per state; docs/solver.md)
    #: chain targets (docs/solver.md, "Chain targets"): training Ω states per set whose V is estimated along
    #: the firm's chains of events and fitted beside the residual (0: off)
    chain_states: int = 0
    chain_start: int = 20  #: the first set is estimated at the end of this epoch (1-based)
    chain_every: int = 10  #: epochs between sets
    chain_weight: float = 1.0  #: weight of the fit to the targets beside the scale-free squared residual
    #: a set's chains stop when their discount-and-survival weight falls below this, the rest bootstrapped on the
    #: frozen network (an n-step target, n ≈ ln(1/chain_horizon)·Λ̄/ρ events); 0: accuracy.tail_weight, the
    #: whole chain
    chain_horizon: float = 0.0
    #: the correction stage (docs/solver.md, "The correction stage"): from this epoch on (0-based; 0: off) the
    #: network is frozen and a second network of the same architecture, its output scaled by
    #: ``correction_scale``, trains on the residual of the sum, with the learning rate restarted at
    #: ``correction_lr`` (0: ``lr``) and the schedule run again over the remaining epochs
    correction_start: int = 0
    correction_scale: float = 1e-2  #: ε: the relative size of V one unit of the second network's head moves
    correction_lr: float = 0.0


@dataclass
class WNetConfig:
    """The worker-value network W (``lotj.nets.WorkerValueNet``; docs/wages.md)."""

    embed_dim: int = 16  #: size of the per-worker embedding φ pooled over coworkers
    phi_width: int = 32  #: hidden width of φ
    phi_depth: int = 2  #: hidden layers of φ
    head_width: int = 128  #: hidden width of the head
    head_depth: int = 2  #: hidden layers of the head
    activation: str = "silu"  #: silu | tanh | gelu | softplus
    kinks: int = 8  #: soft kinks of the wage-monotone output m(w/h)
    surplus_input: bool = False  #: take the frozen V's surplus Δ(S, x_i) as input and scale (docs/wages.md)
    set_kinks: bool = False  #: kinks at fixed fractions of the bargaining set (needs surplus_input; docs/wages.md)


@dataclass
class WSolverConfig:
    """Training of W on its HJB residual with V frozen (``lotj.train.wstage``; docs/wages.md)."""

    lr: float = 1e-3
    lr_decay: float = 0.97  #: multiplicative learning-rate decay per epoch
    weight_decay: float = 0.0
    batch_size: int = 64  #: firm states per batch (the residual covers all their workers)
    steps_per_epoch: int = 40
    max_epochs: int = 30
    m_n: int = 16  #: Monte Carlo draws from χ^N per batch
    m_e: int = 16  #: Monte Carlo draws from χ^E per batch
    m_pi: int = 16  #: Monte Carlo poachers from Π per batch
    #: exact meeting sums on a discrete economy: every distinct worker of χ^N and χ^E and every distinct poacher
    #: state of Π once, with its probability weight, instead of the m_n, m_e, m_pi draws (docs/wages.md)
    exact_sums: bool = False
    n_states: int = 2048  #: firm states in the Ω training pool per refresh
    n_heldout: int = 256  #: held-out Ω states for the scale-free residual
    #: target of the estimated wage error (``w_convergence``): each cause group's mean |wage error| / median wage,
    #: its upper 95% bound (docs/accuracy.md, "W and the wages")
    tol: float = 0.01
    residual_tol: float = 1e-3  #: held-out scale-free W residual that stops training early (a diagnostic)
    grad_clip: float = 1.0
    unbiased: bool = False  #: train on R₁R₂ from two independent draw sets instead of R²
    wage_margin: float = 0.25  #: widening of the initial wage range [b h, marginal product], as a share of it
    wage_mix: float = 0.5  #: after a refresh, share of states that carry the simulated wages
    refresh_years: float = 1.0  #: years simulated with wages between refreshes (0: no refresh)
    burn_in_years: float = 5.0  #: years simulated with wages before the panel is recorded
    loss_weight: str = "state"  #: batch (mean R² / mean (ρW)²) | state (each worker's R by its own ρ max{W, U})
    lr_schedule: str = "cosine"  #: exponential (lr_decay per epoch) | cosine (per step, to lr·lr_min)
    lr_min: float = 0.01  #: final learning rate of the cosine schedule, as a share of lr
    wage_range: str = "surplus"  #: flow ([b h, marginal product]) | surplus (also the wages of [U, U + Δ]) | mixed
    warm_start_steps: int = 0  #: first steps fit W to the frozen-state oracle before the residual (docs/wages.md)
    #: chain-target sets fitted after the residual training (lotj.train.wchain; docs/accuracy.md, "Chain targets
    #: for W"): sets, tracked workers per set, Adam steps per set and their learning rate (0 sets: off)
    chain_rounds: int = 0
    chain_states: int = 1024
    chain_steps: int = 600
    chain_lr: float = 3e-4
    #: chain-target fit loss: batch (``mean((W − y)²)/mean(y²)``) | state (each worker's ``(W − y)/max{|y|, U}``,
    #: the relative error the validation measures)
    chain_loss: str = "batch"
    chain_reps: int = 1  #: independent pairs of chains averaged into each chain target (noise down as 1/√reps)
    #: each set's fit pools the targets of the last this many sets (0: every set so far; 1: the newest alone)
    chain_memory: int = 1
    #: share of each chain set's tracked workers whose own wage is drawn across their bargaining set under W as it
    #: stands (widened by ``wage_margin``), instead of from ``wage_range``: the wages every reset sets
    chain_bargaining: float = 0.0
    #: share of exploration states (``solver.explore``'s law) in the training pool and the chain-target sets
    explore: float = 0.0
    #: years simulated under the frozen V at the start of the stage, one cross-section a year, on which the
    #: stage's meeting sums, poachers and rates are pinned (0: the newest cross-section, refreshed each epoch)
    settle_years: int = 0


@dataclass
class SimConfig:
    """The simulated economy (``lotj.sim``)."""

    enabled: bool = True  #: simulate the economy jointly with V (false: train V on the initial economy only)
    n_firms: int = 2000  #: N_f firms standing for measure 1; N_w·N_f workers
    dt: float = 0.02  #: time step in years
    years_per_epoch: float = 2.0  #: years simulated at each epoch end
    burn_in_years: float = 10.0  #: years simulated before training starts
    tol: float = 0.02  #: relative change of the tracked statistics between refreshes
    patience: int = 3  #: consecutive refreshes below tolerance to declare convergence
    #: refreshes over which the mean firm size must stay within 2 of its standard errors (no drift)
    drift_window: int = 5
    panel_years: int = 10  #: years in the exported annual panel
    #: the panel's first annual date is at least this year of the simulation clock: after training, the economy
    #: is simulated on under the trained V until then (0: the next annual date). Economies compared with each
    #: other (the counterfactuals, docs/counterfactuals.md) record their panels at the same age this way
    panel_from_year: int = 0
    initial_mean_size: float = -1.0  #: mean workforce of the initial economy (< 0: 0.7·n_w)
    threads: int = 1  #: torch CPU threads while simulating (0: leave torch's setting; small tensors: 1 is fastest)
    #: precision of the simulator's decisions with the network: 64 (the network's own) or 32 (a single-precision
    #: copy: 1.1-1.8x the firm-years per second, more for larger economies; a decision can differ only within
    #: about 1e-7 of indifference; docs/simulator.md, "Cost")
    decision_precision: int = 64
    #: the final market: before the last ``settle_epochs`` epochs, simulate ``settle_years`` years under the
    #: current V and train those epochs on the market pooled over one cross-section a year, frozen (0: off)
    settle_years: int = 0
    settle_epochs: int = 0  #: epochs trained on the final market (see settle_years)


@dataclass
class AccuracyConfig:
    """The a posteriori error estimate of V (``lotj.accuracy``; docs/accuracy.md)."""

    enabled: bool = True  #: estimate V's global error at the end of the V stage (summary ``v_error_*``)
    n_states: int = 128  #: held-out Ω states, two chains each
    m_n: int = 16  #: fresh unmatched meeting draws per chain step
    m_e: int = 32  #: fixed employed meeting draws (their marginal errors carry the cross-firm term)
    cross_iterations: int = 2  #: rounds of the cross-firm iteration (each contracts its share by ~0.3)
    cross_reps: int = 2  #: coupled chain pairs per employed draw and round (the marginal errors' noise)
    tail_weight: float = 0.02  #: each chain stops once its discount-and-survival weight is below this
    #: also estimate during training once the held-out residual has not improved by 5% for this many epochs
    #: (and stop there if the certified rule holds); 0 (default): only at the end. Each estimate costs about
    #: as much as the final one (docs/accuracy.md, "Cost")
    stall_patience: int = 0
    #: W stage (``accuracy.enabled``): the W error at ``n_states`` employed workers of the simulated economy, and
    #: the wage error at up to ``wage_events`` resets per cause group at ``n_states`` firms
    wage_events: int = 64
    m_pi: int = 32  #: fresh poachers from Π per step of the worker's chains


@dataclass
class TrainerConfig:
    """Passed to the Lightning Trainer."""

    accelerator: str = "cpu"  #: cpu | gpu | auto
    devices: Any = 1
    precision: str = "64-true"  #: 64-true | 32-true
    num_threads: int = 0  #: torch CPU threads (0: torch's default)
    #: torch's deterministic algorithms: false | true | warn (warn: ops without one only warn). A GPU run
    #: sums with atomics unless this is on, so its last bits (and a resumed run) can differ between runs.
    deterministic: Any = False


@dataclass
class LoggingConfig:
    logger: str = "csv"  #: csv | wandb | none
    project: str = "lotj"
    group: str = ""
    progress_bar: bool = True


@dataclass
class Config:
    """The whole configuration of one run."""

    conf: str = "baseline"
    economy: EconomyParams = field(default_factory=EconomyParams)
    net: NetConfig = field(default_factory=NetConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    wnet: WNetConfig = field(default_factory=WNetConfig)
    wsolver: WSolverConfig = field(default_factory=WSolverConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    seed: int = 0
    out_dir: str = "runs/${conf}"
    resume: str = ""  #: path to a last.ckpt to continue
    #: a finished run's directory (or last.ckpt) whose V and W networks start this run: a warm start of a new
    #: solve (lotj.train.warm_start); the economy is drawn from this run's parameters and seed
    init_from: str = ""


_ACTIVATIONS = ("silu", "tanh", "gelu", "softplus")
_STAGES = ("v", "w")
_LOGGERS = ("csv", "wandb", "none")
_SCHEDULES = ("exponential", "cosine")


def _require_at_least_one(group: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(obj, name) < 1:
            raise ConfigError(f"{group}.{name} = {getattr(obj, name)}: must be >= 1")


def _require_finite_positive(group: str, obj: Any, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{group}.{name} = {v}: must be finite and > 0")


def _require_activation(group: str, activation: str) -> None:
    if activation not in _ACTIVATIONS:
        raise ConfigError(f"{group}.activation = {activation!r}: allowed {list(_ACTIVATIONS)}")


def _require_lr_decay(group: str, lr_decay: float) -> None:
    if not 0 < lr_decay <= 1:
        raise ConfigError(f"{group}.lr_decay = {lr_decay}: must be in (0, 1]")


def validate(cfg: Config) -> Config:
    """Range checks OmegaConf cannot express; raises ConfigError naming the key."""
    cfg.economy.validate()
    _require_at_least_one("net", cfg.net, ("embed_dim", "phi_width", "phi_depth", "rho_width", "rho_depth"))
    _require_activation("net", cfg.net.activation)
    s = cfg.solver
    _require_at_least_one(
        "solver", s, ("batch_size", "steps_per_epoch", "max_epochs", "m_n", "m_e", "n_omega", "n_heldout", "m_eval")
    )
    _require_finite_positive("solver", s, ("lr", "tol"))
    if not 0 < s.heldout_fraction < 1:
        raise ConfigError(f"solver.heldout_fraction = {s.heldout_fraction}: must be in (0, 1)")
    if s.market_window < 1:
        raise ConfigError(f"solver.market_window = {s.market_window}: must be >= 1 (simulated cross-sections)")
    if not 0 <= s.explore < 1:
        raise ConfigError(f"solver.explore = {s.explore}: must be in [0, 1) (a share of the Ω pool)")
    if not (math.isfinite(s.grad_clip) and s.grad_clip >= 0):
        raise ConfigError(f"solver.grad_clip = {s.grad_clip}: must be finite and >= 0 (0: no clipping)")
    if s.weighting not in ("batch", "state"):
        raise ConfigError(f"solver.weighting = {s.weighting!r}: allowed ['batch', 'state']")
    if s.gradient not in ("full", "semi"):
        raise ConfigError(f"solver.gradient = {s.gradient!r}: allowed ['full', 'semi']")
    if cfg.net.franchise == 0 or not math.isfinite(cfg.net.franchise):
        raise ConfigError(f"net.franchise = {cfg.net.franchise}: must be > 0, or < 0 for the guess from χ")
    _require_lr_decay("solver", s.lr_decay)
    if s.schedule not in _SCHEDULES:
        raise ConfigError(f"solver.schedule = {s.schedule!r}: allowed {list(_SCHEDULES)}")
    if not 0 < s.lr_min <= 1:
        raise ConfigError(f"solver.lr_min = {s.lr_min}: must be in (0, 1] (a share of solver.lr)")
    bad = [st for st in s.stages if st not in _STAGES]
    if bad or not s.stages:
        raise ConfigError(f"solver.stages = {list(s.stages)}: a non-empty list from {list(_STAGES)}")
    acc = cfg.accuracy
    _require_at_least_one("accuracy", acc, ("n_states", "m_n", "m_e", "cross_reps", "wage_events", "m_pi"))
    if acc.stall_patience < 0:
        raise ConfigError(f"accuracy.stall_patience = {acc.stall_patience}: must be >= 0 (0: off)")
    if acc.cross_iterations < 0:
        raise ConfigError(f"accuracy.cross_iterations = {acc.cross_iterations}: must be >= 0")
    if not 0 < acc.tail_weight < 1:
        raise ConfigError(f"accuracy.tail_weight = {acc.tail_weight}: must be in (0, 1)")
    _validate_w(cfg)
    m = cfg.sim
    _require_at_least_one("sim", m, ("n_firms",))
    _require_finite_positive("sim", m, ("dt", "years_per_epoch", "tol"))
    cfg.economy.learning_probability(m.dt)  # refuses γ^E·dt > 1
    if m.panel_from_year < 0:
        raise ConfigError(f"sim.panel_from_year = {m.panel_from_year}: must be >= 0 (0: the next annual date)")
    if m.burn_in_years < 0:
        raise ConfigError(f"sim.burn_in_years = {m.burn_in_years}: must be >= 0")
    if m.patience < 1:
        raise ConfigError(f"sim.patience = {m.patience}: must be >= 1")
    if s.chain_states < 0 or s.chain_start < 1 or s.chain_every < 1 or s.chain_weight < 0:
        raise ConfigError(
            f"solver.chain_states = {s.chain_states}, chain_start = {s.chain_start}, chain_every = {s.chain_every}, "
            f"chain_weight = {s.chain_weight}: need chain_states >= 0, chain_start >= 1, chain_every >= 1, "
            "chain_weight >= 0"
        )
    if s.correction_start < 0 or (0 < s.max_epochs <= s.correction_start):
        raise ConfigError(
            f"solver.correction_start = {s.correction_start}: need 0 (off) or an epoch before solver.max_epochs = "
            f"{s.max_epochs}, so that the second network trains for at least one epoch"
        )
    if not s.correction_scale > 0 or s.correction_lr < 0:
        raise ConfigError(
            f"solver.correction_scale = {s.correction_scale}, correction_lr = {s.correction_lr}: need "
            "correction_scale > 0 and correction_lr >= 0 (0: solver.lr)"
        )
    if not 0 <= s.chain_horizon < 1:
        raise ConfigError(
            f"solver.chain_horizon = {s.chain_horizon}: need 0 <= chain_horizon < 1 (the weight at which a set's "
            "chains stop; 0: accuracy.tail_weight)"
        )
    if m.drift_window < 1:
        raise ConfigError(f"sim.drift_window = {m.drift_window}: must be >= 1")
    if m.threads < 0:
        raise ConfigError(f"sim.threads = {m.threads}: must be >= 0 (0: torch's setting)")
    if m.decision_precision not in (32, 64):
        raise ConfigError(f"sim.decision_precision = {m.decision_precision}: allowed [64, 32]")
    if m.settle_years < 0 or m.settle_epochs < 0:
        raise ConfigError(f"sim.settle_years = {m.settle_years}, sim.settle_epochs = {m.settle_epochs}: must be >= 0")
    if (m.settle_years > 0) != (m.settle_epochs > 0):
        raise ConfigError("sim.settle_years and sim.settle_epochs: set both (> 0) for a final market, or neither")
    if m.settle_epochs >= cfg.solver.max_epochs:
        raise ConfigError(
            f"sim.settle_epochs = {m.settle_epochs}: must be below solver.max_epochs = {cfg.solver.max_epochs}"
        )
    if cfg.logging.logger not in _LOGGERS:
        raise ConfigError(f"logging.logger = {cfg.logging.logger!r}: allowed {list(_LOGGERS)}")
    det = cfg.trainer.deterministic
    if not (isinstance(det, bool) or det == "warn"):
        raise ConfigError(f"trainer.deterministic = {cfg.trainer.deterministic!r}: allowed [false, true, 'warn']")
    if cfg.trainer.precision not in ("64-true", "32-true"):
        raise ConfigError(f"trainer.precision = {cfg.trainer.precision!r}: allowed ['64-true', '32-true']")
    return cfg


def _validate_w(cfg: Config) -> None:
    """Range checks of the W groups (``wnet``, ``wsolver``)."""
    _require_at_least_one(
        "wnet", cfg.wnet, ("embed_dim", "phi_width", "phi_depth", "head_width", "head_depth", "kinks")
    )
    _require_activation("wnet", cfg.wnet.activation)
    if cfg.wnet.set_kinks and not cfg.wnet.surplus_input:
        raise ConfigError("wnet.set_kinks needs wnet.surplus_input=true: the kinks sit at fractions of the surplus")
    ws = cfg.wsolver
    _require_at_least_one(
        "wsolver", ws, ("batch_size", "steps_per_epoch", "max_epochs", "m_n", "m_e", "m_pi", "n_states", "n_heldout")
    )
    _require_finite_positive("wsolver", ws, ("lr", "tol", "residual_tol"))
    _require_lr_decay("wsolver", ws.lr_decay)
    for name in ("wage_mix", "explore", "chain_bargaining"):
        if not 0 <= getattr(ws, name) <= 1:
            raise ConfigError(f"wsolver.{name} = {getattr(ws, name)}: must be in [0, 1]")
    for name in ("wage_margin", "refresh_years", "burn_in_years", "weight_decay", "grad_clip"):
        v = getattr(ws, name)
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"wsolver.{name} = {v}: must be finite and >= 0")
    for name, allowed in (
        ("loss_weight", ("batch", "state")),
        ("lr_schedule", ("exponential", "cosine")),
        ("wage_range", ("flow", "surplus", "mixed")),
        ("chain_loss", ("batch", "state")),
    ):
        if getattr(ws, name) not in allowed:
            raise ConfigError(f"wsolver.{name} = {getattr(ws, name)!r}: allowed {list(allowed)}")
    if not 0 < ws.lr_min <= 1:
        raise ConfigError(f"wsolver.lr_min = {ws.lr_min}: must be in (0, 1] (a share of wsolver.lr)")
    if ws.chain_rounds < 0 or ws.chain_states < 1 or ws.chain_steps < 0 or not ws.chain_lr > 0 or ws.chain_reps < 1:
        raise ConfigError(
            f"wsolver.chain_rounds = {ws.chain_rounds}, chain_states = {ws.chain_states}, chain_steps = "
            f"{ws.chain_steps}, chain_lr = {ws.chain_lr}, chain_reps = {ws.chain_reps}: need rounds >= 0, "
            "states >= 1, steps >= 0, lr > 0, reps >= 1"
        )
    if ws.chain_memory < 0:
        raise ConfigError(f"wsolver.chain_memory = {ws.chain_memory}: must be >= 0 (0: every set so far)")
    if ws.settle_years < 0:
        raise ConfigError(f"wsolver.settle_years = {ws.settle_years}: must be >= 0 (0: the newest cross-section)")
    if ws.warm_start_steps < 0:
        raise ConfigError(f"wsolver.warm_start_steps = {ws.warm_start_steps}: must be >= 0")


def available_presets() -> list[str]:
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def _split_argv(argv: list[str]) -> tuple[str, list[str]]:
    preset = "baseline"
    rest: list[str] = []
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r}: expected key=value (for example conf=smoke economy.eta=0.9)")
        key, value = arg.split("=", 1)
        if key.lstrip("+") == "conf":
            preset = value
        else:
            rest.append(arg)
    return preset, rest


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    for k in node.keys() if hasattr(node, "keys") else []:
        path = f"{prefix}{k}"
        keys.append(path)
        child = node[k] if not OmegaConf.is_missing(node, k) else None
        if OmegaConf.is_dict(child):
            keys.extend(_all_keys(child, path + "."))
    return keys


def _explain(exc: OmegaConfBaseException, schema: Any) -> ConfigError:
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
    if isinstance(exc, ConfigKeyError):
        close = difflib.get_close_matches(str(key), _all_keys(schema), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ConfigError(f"unknown config key {key!r}{hint}")
    if isinstance(exc, ValidationError):
        msg = str(exc).splitlines()[0]
        return ConfigError(f"bad value for config key {key!r}: {msg}")
    return ConfigError(f"config key {key!r}: {str(exc).splitlines()[0]}")


def load_config(argv: list[str] | None = None, validate_ranges: bool = True) -> Config:
    """Build the validated :class:`Config` from ``conf=NAME`` and ``key=value`` overrides.

    Merge order: schema defaults < ``conf/NAME.yaml`` < command-line overrides.
    """
    argv = list(argv or [])
    preset, overrides = _split_argv(argv)
    schema = OmegaConf.structured(Config)
    path = CONF_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset conf={preset!r}: no {path}; available: {available_presets()}")
    try:
        preset_node = OmegaConf.load(path)
        cli = OmegaConf.from_dotlist(overrides)
        merged = OmegaConf.merge(schema, preset_node, cli, {"conf": preset})
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise _explain(exc, schema) from None
    assert isinstance(cfg, Config)
    if validate_ranges:
        validate(cfg)
    return cfg


def to_yaml(cfg: Config) -> str:
    """The resolved config as YAML (written into every run directory)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg), resolve=True)


def config_from_yaml(text_or_path: str | Path) -> Config:
    """Rebuild a Config from a written ``config.yaml``, given as its path or its text (for resumption and
    analysis). A Path is always read as a file; a string is a path when it names an existing file."""
    if isinstance(text_or_path, Path) or ("\n" not in text_or_path and Path(text_or_path).is_file()):
        node = OmegaConf.load(text_or_path)
    else:
        node = OmegaConf.create(text_or_path)
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), node))
    assert isinstance(cfg, Config)
    return validate(cfg)
