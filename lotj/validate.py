"""Validation of the network solution against the exact one (docs/validation.md).

``python -m lotj.validate conf=exact_small`` (or ``conf=exact_learning``, plus any dotted
overrides) trains the network solution, solves the exact one, compares them, prints a table and
writes ``validation.json`` into the run directory (``out_dir``). A missed target ends the run
with exit status 1 and a message naming every target missed.

Two kinds of economy are validated:

- ``equilibrium``: a discrete economy without learning (``worker_types``, ``firm_types``,
  ``gamma_e = 0``), solved by :func:`lotj.exact.solve_equilibrium`. V is compared at every firm
  state; e, ω, the mean firm size (firms with n ≥ 1) and the annual EN/NE rates of the economy
  simulated under the network's V are compared with their exact values. The same simulation under
  the exact V is reported beside them (not a target): it measures the simulator's own error
  (time step, sampling), so that a miss can be told apart from a network error.
- ``learning``: the closed-workforce learning economy (only ρ, γ^E, F, H active), whose V is the
  series of :mod:`lotj.exact.learning`; V is compared on a held-out draw of firms from G_f, G_w
  and their learning iterates.

The comparison functions (:func:`compare_values`, :func:`compare_statistics`,
:func:`check_targets`) take any :class:`lotj.economy.value.ValueFunction` and any statistics
mapping, so they run without training; :func:`train_network` is the only part that trains.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lotj.config import Config, load_config, to_yaml
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.economy.value import ValueFunction
from lotj.errors import ConfigError
from lotj.exact.bellman import hjb_residual
from lotj.exact.equilibrium import ExactSolution, NoPureEquilibriumError, solve_equilibrium
from lotj.exact.learning import LearningCheck, check_closed_workforce, learning_check
from lotj.exact.market import Distribution

#: Seed offset of the held-out draw of the learning economy (training uses ``cfg.seed``).
HELDOUT_SEED_OFFSET = 7919


@dataclass(frozen=True)
class Targets:
    """The validation targets (relative errors, network vs exact)."""

    v_mean: float = 2e-3  #: mean relative error of V over every state
    v_max: float = 1e-2  #: max relative error of V over every state
    e: float = 0.01
    omega: float = 0.01
    mean_size: float = 0.01
    en_rate: float = 0.02
    ne_rate: float = 0.02
    learning_v_mean: float = 5e-3  #: mean relative error of V on held-out learning-economy states


TARGETS = Targets()

#: The compared statistics: report name -> accepted keys of a statistics mapping, first match wins
#: (``firm_size_mean`` is the simulator's name, lotj.sim.stats.SimStatistics).
STATISTICS: dict[str, tuple[str, ...]] = {
    "e": ("e",),
    "omega": ("omega",),
    "mean_size": ("mean_size", "firm_size_mean"),
    "en_rate": ("en_rate",),
    "ne_rate": ("ne_rate",),
}


class ValidationFailed(RuntimeError):
    """A validation target was missed; the message names every miss."""

    def __init__(self, missed: list[str]):
        super().__init__("validation targets missed: " + "; ".join(missed))
        self.missed = missed


class ExactValues(Protocol):
    """What the value comparison needs from an exact solution: states and their exact V."""

    @property
    def states(self) -> FirmBatch: ...

    @property
    def values(self) -> np.ndarray: ...


# --------------------------------------------------------------------------- comparisons


def placement(vf: ValueFunction) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and dtype of a value function that is a torch module (the network), else (None, None)."""
    if isinstance(vf, torch.nn.Module):
        prm = next(vf.parameters(), None)
        if prm is not None:
            return prm.device, prm.dtype
    return None, None


def network_values(vf: ValueFunction, states: FirmBatch, batch_size: int = 4096) -> np.ndarray:
    """``vf.value`` on every state, in chunks (on the network's device and dtype), as float64."""
    device, dtype = placement(vf)
    out = []
    with torch.no_grad():
        for start in range(0, states.batch_size, batch_size):
            chunk = states.index(torch.arange(start, min(start + batch_size, states.batch_size)))
            if device is not None:
                chunk = FirmBatch(
                    *(t.to(device, dtype) for t in (chunk.z, chunk.q, chunk.h, chunk.a)), chunk.mask.to(device)
                )
            out.append(vf.value(chunk).detach().to("cpu", torch.float64).numpy())
    return np.concatenate(out) if out else np.zeros(0)


def compare_values(vf: ValueFunction, exact: ExactValues, per_state_limit: int = 500) -> dict[str, Any]:
    """Relative errors ``|V_net − V| / |V|`` over the exact solution's states (every state of a
    discrete economy, or the held-out learning states). For a discrete economy also the network's
    scale-free residual in the exact HJB, |R(S)| / (ρ |V_net(S)|), mean and max over states. The
    per-state table is included when there are at most ``per_state_limit`` states."""
    ref = np.asarray(exact.values, dtype=np.float64)
    net = network_values(vf, exact.states)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(net == ref, 0.0, np.abs(net - ref) / np.abs(ref))
    worst = int(np.argmax(rel)) if len(rel) else -1
    describe = getattr(getattr(exact, "space", None), "describe", None)
    out: dict[str, Any] = {
        "n_states": int(len(ref)),
        "mean_rel_error": float(rel.mean()) if len(rel) else math.nan,
        "max_rel_error": float(rel.max()) if len(rel) else math.nan,
        "worst_state": worst if describe is None or worst < 0 else describe(worst),
        "worst_exact": float(ref[worst]) if worst >= 0 else math.nan,
        "worst_network": float(net[worst]) if worst >= 0 else math.nan,
    }
    if isinstance(exact, ExactSolution):
        # the network's V in the exact HJB (exact expectations and distributions): tells an
        # approximation error apart from Monte Carlo noise in the training residual
        res = np.abs(hjb_residual(exact.space, exact.params, exact.market, net)) / (exact.params.rho * np.abs(net))
        out["exact_hjb_residual_mean"] = float(res.mean())
        out["exact_hjb_residual_max"] = float(res.max())
    if len(ref) <= per_state_limit:
        names = [describe(i) if describe else i for i in range(len(ref))]
        out["per_state"] = [
            {"state": n, "exact": float(r), "network": float(v), "rel_error": float(e)}
            for n, r, v, e in zip(names, ref, net, rel)
        ]
    return out


def market_split(vf: ValueFunction, exact: ExactSolution, firms: FirmBatch, unmatched_h, unmatched_a) -> dict[str, Any]:
    """Split the V error of a discrete economy into the solver's part and the market's part.

    The network's residual reads the market of a finite simulated economy (``firms`` and unmatched
    workers, the pooled cross-sections of the last epoch), not the exact stationary one. Given that
    market (its e, ω, s^N, χ^N and χ^E: :meth:`lotj.exact.market.Distribution.of_population`), the V
    equation has an exact solution too (:meth:`lotj.exact.equilibrium.ExactSolution.values_given`).
    Reported: the network against it (the solver's error on the equation it was given), and it against
    the equilibrium V (the error the simulated market's sampling noise alone puts into V). Not a
    target."""
    v_market, market = exact.values_given(Distribution.of_population(exact.space, firms, unmatched_h, unmatched_a))
    net = network_values(vf, exact.states)
    solver = np.abs(net - v_market) / np.abs(v_market)
    sampling = np.abs(v_market - exact.v) / np.abs(exact.v)
    return {
        "firm_rows": int(firms.batch_size),
        "e": market.e,
        "omega": market.omega,
        "s_n": market.s_n,
        "network_vs_market_v": {"mean": float(solver.mean()), "max": float(solver.max())},
        "market_v_vs_equilibrium_v": {"mean": float(sampling.mean()), "max": float(sampling.max())},
    }


def _lookup(stats: Mapping[str, Any], keys: tuple[str, ...]) -> float:
    for key in keys:
        if key in stats:
            return float(stats[key])
    raise KeyError(f"statistics mapping has none of {list(keys)}; it has {sorted(stats)}")


def as_mapping(stats: Any) -> Mapping[str, Any]:
    """A statistics mapping from a dict or an object with ``as_dict()`` (lotj.sim.stats.SimStatistics)."""
    if isinstance(stats, Mapping):
        return stats
    if hasattr(stats, "as_dict"):
        return stats.as_dict()
    raise TypeError(f"statistics must be a mapping or have as_dict(), got {type(stats).__name__}")


def compare_statistics(sim_stats: Mapping[str, Any] | Any, exact: ExactSolution) -> dict[str, dict[str, float]]:
    """e, ω, mean firm size, EN and NE: simulated value, exact value and relative error.

    ``sim_stats`` is a mapping (or a SimStatistics) with the keys of :data:`STATISTICS`."""
    stats = as_mapping(sim_stats)
    exact_values = {
        "e": exact.e,
        "omega": exact.omega,
        "mean_size": exact.mean_size,
        "en_rate": exact.en_rate,
        "ne_rate": exact.ne_rate,
    }
    out = {}
    for name, keys in STATISTICS.items():
        sim, ref = _lookup(stats, keys), exact_values[name]
        rel = abs(sim - ref) / abs(ref) if ref != 0 else (0.0 if sim == 0 else math.inf)
        out[name] = {"network": sim, "exact": ref, "rel_error": rel if math.isfinite(sim) else math.inf}
    return out


def check_targets(report: Mapping[str, Any], targets: Targets = TARGETS) -> list[str]:
    """Every target the report misses, as a readable line (empty: all met). A missing or NaN
    figure counts as a miss."""
    missed: list[str] = []

    def check(label: str, value: Any, target: float) -> None:
        v = float(value) if value is not None else math.nan
        if not (v <= target):  # NaN fails too
            missed.append(f"{label} = {v:.4g} (target <= {target:g})")

    values = report.get("values")
    if report.get("kind") == "learning":
        check(
            "V mean relative error on held-out states", values and values.get("mean_rel_error"), targets.learning_v_mean
        )
    else:
        check("V mean relative error", values and values.get("mean_rel_error"), targets.v_mean)
        check("V max relative error", values and values.get("max_rel_error"), targets.v_max)
        stats = report.get("statistics") or {}
        for name in STATISTICS:
            row = stats.get(name)
            check(f"{name} relative error", row and row.get("rel_error"), getattr(targets, name))
    return missed


# --------------------------------------------------------------------------- the two kinds


def economy_kind(p: EconomyParams) -> str:
    """``equilibrium`` (discrete types, no learning) or ``learning`` (closed workforce); else ConfigError."""
    if p.gamma_e == 0 and p.worker_types is not None and p.firm_types is not None:
        return "equilibrium"
    try:
        check_closed_workforce(p)
    except ConfigError as exc:
        raise ConfigError(
            "lotj.validate needs a discrete economy with gamma_e = 0 (economy.worker_types and "
            f"economy.firm_types set) or a closed-workforce learning economy: {exc}"
        ) from None
    return "learning"


def learning_iterates(cfg: Config) -> int:
    """The learning steps the simulated firms of a run have seen, about γ^E times the simulated years."""
    years = cfg.sim.burn_in_years + cfg.sim.years_per_epoch * cfg.solver.max_epochs
    return max(1, math.ceil(cfg.economy.gamma_e * years))


def exact_solution(cfg: Config) -> ExactSolution | LearningCheck:
    """The exact side: the discrete equilibrium, or the held-out learning states with their V."""
    if economy_kind(cfg.economy) == "equilibrium":
        return solve_equilibrium(cfg.economy)
    mean = cfg.sim.initial_mean_size
    return learning_check(
        cfg.economy,
        cfg.solver.n_heldout,
        seed=cfg.seed + HELDOUT_SEED_OFFSET,
        max_iterates=learning_iterates(cfg),
        mean_size=0.7 * cfg.economy.n_w if mean < 0 else mean,
    )


def simulate_statistics(cfg: Config, vf: ValueFunction, seed_offset: int = 0) -> dict[str, Any]:
    """Statistics of the economy simulated under ``vf``: ``sim.burn_in_years`` of burn-in, then a
    window of ``sim.panel_years`` years (lotj.sim.simulator.Simulator, its SimStatistics)."""
    from lotj.sim.simulator import Simulator

    sim = Simulator.from_config(cfg, seed_offset=seed_offset)
    sim.advance(vf, cfg.sim.burn_in_years)
    return sim.advance(vf, float(cfg.sim.panel_years)).as_dict()


def train_network(cfg: Config, market_out: list | None = None) -> ValueFunction:
    """Train V in the joint loop of MODEL.md section 6: lotj.train.run.train with
    lotj.train.sim_callback.SimulatorCallback, which burns in, advances the economy under the current
    V after every epoch and refreshes Ω from it. Returns the trained ValueFunction
    (``VModule.value_function()``), captured from the Lightning module at the end of training.
    ``market_out``, when given, receives the (pooled) simulated economy whose market the last
    epoch's residual read (``OmegaDataModule.market``): :func:`market_split` compares against it."""
    try:
        from lightning.pytorch.callbacks import Callback

        from lotj.sim.simulator import Simulator
        from lotj.train.placement import simulation_device
        from lotj.train.run import build_datamodule, train
        from lotj.train.sim_callback import SimulatorCallback
    except ImportError as exc:  # the training package is an optional part of a checkout
        raise RuntimeError(f"lotj.validate needs lotj.train to train the network: {exc}") from None

    class _Capture(Callback):
        module = None

        def on_train_end(self, trainer, pl_module) -> None:
            _Capture.module = pl_module

    datamodule = build_datamodule(cfg)
    simulation = SimulatorCallback(Simulator.from_config(cfg, device=simulation_device(cfg)), datamodule, cfg)
    summary = train(cfg, callbacks=[simulation, _Capture()], datamodule=datamodule)
    module = _Capture.module
    if module is None or not hasattr(module, "value_function"):
        raise RuntimeError(f"lotj.train.run.train ended without a trained VModule: {summary}")
    if isinstance(summary, Mapping) and summary.get("status") not in (None, "ok"):
        raise RuntimeError(f"training stopped: {summary.get('message')}")
    module.eval()
    if market_out is not None and datamodule.market is not None:
        market_out.append(datamodule.market)
    return module.value_function()


# --------------------------------------------------------------------------- the run


def build_report(
    cfg: Config,
    vf: ValueFunction,
    exact: ExactSolution | LearningCheck,
    sim_stats: Mapping[str, Any] | None = None,
    reference_stats: Mapping[str, Any] | None = None,
    targets: Targets = TARGETS,
) -> dict[str, Any]:
    """The validation report (what ``validation.json`` holds): exact figures, comparisons, targets."""
    kind = "learning" if isinstance(exact, LearningCheck) else "equilibrium"
    report: dict[str, Any] = {
        "conf": cfg.conf,
        "kind": kind,
        "exact": exact.summary(),
        "values": compare_values(vf, exact),
        "targets": asdict(targets),
    }
    if kind == "equilibrium":
        if sim_stats is None:
            raise ValueError("the equilibrium validation needs the simulated statistics under the network's V")
        report["statistics"] = compare_statistics(sim_stats, exact)
        report["simulated_cap_share"] = as_mapping(sim_stats).get("firm_size_share_at_cap")
        if reference_stats is not None:
            report["simulator_under_exact_v"] = compare_statistics(reference_stats, exact)
    report["missed"] = check_targets(report, targets)
    report["passed"] = not report["missed"]
    return report


def format_report(report: Mapping[str, Any]) -> str:
    """The printed table."""
    ex = report["exact"]
    lines = [f"lotj validation: conf={report['conf']} ({report['kind']})"]
    lines.append(f"  exact: {ex['n_states']} states solved in {ex['solve_seconds']:.2f} s")
    v = report["values"]
    lines.append(
        f"  V relative error over {v['n_states']} states: mean {v['mean_rel_error']:.3e}, max {v['max_rel_error']:.3e}"
    )
    if "exact_hjb_residual_mean" in v:
        lines.append(
            f"  network V in the exact HJB, |R|/(rho V): mean {v['exact_hjb_residual_mean']:.3e}, "
            f"max {v['exact_hjb_residual_max']:.3e}"
        )
    if "statistics" in report:
        lines.append(f"  {'statistic':<10} {'network':>12} {'exact':>12} {'rel. error':>11}")
        for name, row in report["statistics"].items():
            lines.append(f"  {name:<10} {row['network']:>12.6g} {row['exact']:>12.6g} {row['rel_error']:>11.3e}")
        if "simulator_under_exact_v" in report:
            sim = report["simulator_under_exact_v"]
            lines.append(
                "  simulator under the exact V (simulation error alone): "
                + ", ".join(f"{k} {r['rel_error']:.2e}" for k, r in sim.items())
            )
    if "market_split" in report:
        ms = report["market_split"]
        a, b = ms["network_vs_market_v"], ms["market_v_vs_equilibrium_v"]
        lines.append(
            f"  V given the simulated market it trained on ({ms['firm_rows']} firm rows, e {ms['e']:.5f}), exact: "
            f"network vs it mean {a['mean']:.2e} max {a['max']:.2e}; it vs equilibrium V mean {b['mean']:.2e} "
            f"max {b['max']:.2e} (sampling error of the market alone)"
        )
    if "estimator" in report:
        es = report["estimator"]
        lines.append(
            f"  error estimator: estimated mean |e|/V {es['estimated']['v_error_mean']:.3e} "
            f"(se {es['estimated']['v_error_mean_se']:.1e}), true {es['true_mean']:.3e}: "
            + ("agrees" if es["agrees"] else "DISAGREES")
        )
    lines.append("  PASSED" if report["passed"] else "  FAILED: " + "; ".join(report["missed"]))
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / "validation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def run_validation(
    cfg: Config,
    targets: Targets = TARGETS,
    vf: ValueFunction | None = None,
    reference_simulation: bool = True,
) -> dict[str, Any]:
    """Train (unless ``vf`` is given), solve exactly, compare, write ``validation.json`` into
    ``cfg.out_dir`` and return the report; raises ValidationFailed (after writing) on a miss."""
    start = time.perf_counter()
    exact = exact_solution(cfg)
    train_start = time.perf_counter()
    markets: list = []
    vf = train_network(cfg, markets) if vf is None else vf
    train_seconds = time.perf_counter() - train_start
    sim_stats = ref_stats = None
    if isinstance(exact, ExactSolution):
        sim_stats = simulate_statistics(cfg, vf)
        if reference_simulation:
            ref_stats = simulate_statistics(cfg, exact.value_function())
    report = build_report(cfg, vf, exact, sim_stats, ref_stats, targets)
    if isinstance(exact, ExactSolution) and markets:
        m = markets[-1]
        try:
            report["market_split"] = market_split(vf, exact, m.firms, m.unmatched_h, m.unmatched_a)
        except ValueError as exc:  # a diagnostic: a population it cannot read must not sink the report
            report["market_split_error"] = str(exc)
    if cfg.accuracy.enabled:  # the a posteriori error estimator against the true error (docs/accuracy.md)
        from lotj.accuracy.validation import estimator_check

        report["estimator"] = estimator_check(vf, cfg.economy, exact, seed=cfg.seed)
    report["train_seconds"] = train_seconds
    report["total_seconds"] = time.perf_counter() - start
    report["config"] = to_yaml(cfg)
    report["path"] = str(write_report(report, cfg.out_dir))
    if not report["passed"]:
        raise ValidationFailed(report["missed"])
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m lotj.validate conf=NAME [key=value ...]``: exit status 0 when every target is met,
    1 when one is missed, 2 when the config cannot be validated (not one of the two kinds, or a
    discrete economy without a pure equilibrium)."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg = load_config(argv)
        economy_kind(cfg.economy)
    except ConfigError as exc:
        print(f"lotj.validate: {exc}", file=sys.stderr)
        return 2
    try:
        report = run_validation(cfg)
    except NoPureEquilibriumError as exc:
        print(f"lotj.validate: conf={cfg.conf} cannot be validated: {exc}", file=sys.stderr)
        return 2
    except ValidationFailed as exc:
        path = Path(cfg.out_dir) / "validation.json"
        report = json.loads(path.read_text())
        print(format_report(report))
        print(f"wrote {path}")
        print(f"lotj.validate: FAILED: {exc}", file=sys.stderr)
        return 1
    print(format_report(report))
    print(f"wrote {report['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
