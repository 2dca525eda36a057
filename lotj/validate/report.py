"""The validation command, its targets and its report (docs/validation.md).

``python -m lotj.validate conf=exact_small`` (or ``conf=exact_learning``, plus any dotted overrides)
trains the network solution (for a discrete economy V and then W, as ``python -m lotj.train
'solver.stages=[v,w]'`` does), solves the exact one, compares them (:mod:`lotj.validate.values`,
:mod:`lotj.validate.wages`), prints a table and writes ``validation.json`` into the run directory
(``out_dir``). ``python -m lotj.validate run=DIR`` validates a finished run instead, without training.
A missed target ends the command with exit status 1 and a message naming every target missed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lotj.config import Config, config_from_yaml, load_config, to_yaml
from lotj.economy.value import ValueFunction
from lotj.economy.worker_value import WorkerValueFunction
from lotj.errors import ConfigError
from lotj.exact.equilibrium import ExactSolution, NoPureEquilibriumError
from lotj.exact.learning import LearningCheck
from lotj.validate import values
from lotj.validate.values import (
    STATISTICS,
    as_mapping,
    compare_statistics,
    compare_values,
    economy_kind,
    exact_solution,
    market_split,
)
from lotj.validate.wages import compare_w, exact_wage_solution, format_w, load_worker_net


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
    w_mean: float = 1e-3  #: mean relative error of W over every pair and the wage grid (discrete economy)
    wage_mean: float = 0.01  #: per cause, flow-weighted mean |wage error| / exact median wage
    wage_max: float = 0.05  #: per cause, max |wage error| / exact median wage
    wage_quartiles: float = 0.01  #: |panel quartile − exact quartile| / exact median wage
    negative_share_pp: float = 1.0  #: |panel − exact| share of negative wages, percentage points


TARGETS = Targets()


class ValidationFailed(RuntimeError):
    """A validation target was missed; the message names every miss."""

    def __init__(self, missed: list[str]):
        super().__init__("validation targets missed: " + "; ".join(missed))
        self.missed = missed


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
        w = report.get("w")
        if w is not None:
            check("W mean relative error", w["w_rel_error"]["mean"], targets.w_mean)
            for name, row in w["wages_by_cause"].items():
                if row.get("resets"):
                    check(f"{name} wages, mean error / median", row["mean_abs_error_share"], targets.wage_mean)
                    check(f"{name} wages, max error / median", row["max_abs_error_share"], targets.wage_max)
            dist = w.get("distribution") or {}
            for k in ("p25", "p50", "p75"):
                err = (dist.get("quantile_error_share") or {}).get(k)
                check(f"wage {k} error / median (outside the exact q ± 0.25 pp band)", err, targets.wage_quartiles)
            check("negative-wage share error (pp)", dist.get("negative_share_error_pp"), targets.negative_share_pp)
    return missed


# --------------------------------------------------------------------------- the run


def build_report(
    cfg: Config,
    vf: ValueFunction,
    exact: ExactSolution | LearningCheck,
    sim_stats: Mapping[str, Any] | None = None,
    reference_stats: Mapping[str, Any] | None = None,
    targets: Targets = TARGETS,
    w_section: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The validation report (what ``validation.json`` holds): exact figures, comparisons, targets;
    ``w_section``: :func:`lotj.validate.wages.compare_w` (discrete economies with a W stage)."""
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
        if w_section is not None:
            report["w"] = dict(w_section)
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
    if "w" in report:
        lines.extend(format_w(report["w"]))
    if "w_estimator" in report:
        ws = report["w_estimator"]
        est = ws["estimated"]
        lines.append(
            f"  W error estimator: estimated mean |e_W|/max(|W|, U) {est['w_error_mean']:.3e} "
            f"(se {est['w_error_mean_se']:.1e}), true (given the network's V) {ws['true_mean']:.3e}: "
            + ("agrees" if ws["agrees"] else "DISAGREES")
        )
        parts = []
        for g in ("hire", "poach", "counter", "reneg"):
            row = ws["wages"].get(g)
            if row is not None and row["estimated_mean"] is not None:
                parts.append(
                    f"{g} {row['estimated_mean']:.2e} vs {row['true_mean']:.2e}"
                    + ("" if row["agrees"] else " (DISAGREES)")
                )
        lines.append("  wage error estimator (share of the median wage, estimated vs true): " + "; ".join(parts))
    lines.append("  PASSED" if report["passed"] else "  FAILED: " + "; ".join(report["missed"]))
    return "\n".join(lines)


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> Path:
    path = Path(out_dir) / "validation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def train_w(cfg: Config, vf: ValueFunction, simulator, snapshot, out_dir: str | Path):
    """The W stage after V, as a run does (:func:`lotj.train.wstage.run_w_stage`, continuing the V stage's
    simulator): returns the trained W network, the panel with wages and the stage's summary."""
    import pandas as pd

    from lotj.train.wstage import run_w_stage

    summary = run_w_stage(cfg, vf, snapshot, simulator=simulator, out_dir=out_dir)
    wf = load_worker_net(cfg, vf, Path(out_dir) / "w_net.pt")
    return wf, pd.read_parquet(Path(out_dir) / "panel.parquet"), summary


def run_validation(
    cfg: Config,
    targets: Targets = TARGETS,
    vf: ValueFunction | None = None,
    reference_simulation: bool = True,
    wages: bool = True,
    wf: WorkerValueFunction | None = None,
    panel=None,
) -> dict[str, Any]:
    """Train (unless ``vf`` is given), solve exactly, compare, write ``validation.json`` into
    ``cfg.out_dir`` and return the report; raises ValidationFailed (after writing) on a miss.

    For a discrete economy with ``wages``: W and the wages too. A trained V is followed by the W stage
    (:func:`train_w`); with ``vf`` given, W is compared only when ``wf`` is given too (``panel``: its
    annual panel with wages, for the distribution; optional)."""
    start = time.perf_counter()
    exact = exact_solution(cfg)
    train_start = time.perf_counter()
    markets: list = []
    sims: list = []
    trained = vf is None
    if trained:
        v_cfg = replace(cfg, solver=replace(cfg.solver, stages=["v"]))
        vf = values.train_network(v_cfg, markets, sims)
    train_seconds = time.perf_counter() - train_start
    w_summary = None
    if isinstance(exact, ExactSolution) and wages and trained and sims:
        simulator, snapshot = sims[-1]
        wf, panel, w_summary = train_w(cfg, vf, simulator, snapshot, cfg.out_dir)
    sim_stats = ref_stats = None
    if isinstance(exact, ExactSolution):
        sim_stats = values.simulate_statistics(cfg, vf)
        if reference_simulation:
            ref_stats = values.simulate_statistics(cfg, exact.value_function())
    w_section = None
    if isinstance(exact, ExactSolution) and wages and wf is not None:
        w_section = compare_w(wf, vf, exact, exact_wage_solution(exact), panel)
        if w_summary is not None:
            w_section["w_stage"] = {k: v for k, v in w_summary.items() if isinstance(v, int | float) or v is None}
    report = build_report(cfg, vf, exact, sim_stats, ref_stats, targets, w_section)
    if isinstance(exact, ExactSolution) and markets:
        m = markets[-1]
        try:
            report["market_split"] = market_split(vf, exact, m.firms, m.unmatched_h, m.unmatched_a)
        except ValueError as exc:  # a diagnostic: a population it cannot read must not sink the report
            report["market_split_error"] = str(exc)
    if cfg.accuracy.enabled:  # the a posteriori error estimator against the true error (docs/accuracy.md)
        from lotj.accuracy.validation import estimator_check

        report["estimator"] = estimator_check(vf, cfg.economy, exact, seed=cfg.seed)
        if w_section is not None and wf is not None and isinstance(exact, ExactSolution):
            from lotj.accuracy.wage_validation import w_estimator_check

            report["w_estimator"] = w_estimator_check(wf, vf, exact, exact_wage_solution(exact), seed=cfg.seed)
    report["train_seconds"] = train_seconds
    report["total_seconds"] = time.perf_counter() - start
    report["config"] = to_yaml(cfg)
    report["path"] = str(write_report(report, cfg.out_dir))
    if not report["passed"]:
        raise ValidationFailed(report["missed"])
    return report


def run_networks(run_dir: str | Path) -> tuple[Config, ValueFunction, WorkerValueFunction | None]:
    """A finished run's config, its V (``checkpoints/last.ckpt``, in the run's precision, in eval mode) and its
    W (``w_net.pt``; None when the run had no W stage)."""
    from lotj.train.vmodule import VModule

    run = Path(run_dir)
    cfg = config_from_yaml(run / "config.yaml")
    module = VModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu")
    module.to(torch.float64 if cfg.trainer.precision == "64-true" else torch.float32).eval()
    vf = module.value_function()
    wf = load_worker_net(cfg, vf, run / "w_net.pt") if (run / "w_net.pt").is_file() else None
    return cfg, vf, wf


def validate_run(run_dir: str | Path, out_dir: str | Path | None = None, targets: Targets = TARGETS) -> dict[str, Any]:
    """Validate a finished run of a discrete economy (``python -m lotj.train conf=exact_small
    'solver.stages=[v,w]'``) without training: its V (``checkpoints/last.ckpt``), W (``w_net.pt``) and
    panel (``panel.parquet``) against the exact solution; the statistics are simulated under its V."""
    import pandas as pd

    run = Path(run_dir)
    cfg, vf, wf = run_networks(run)
    cfg = replace(cfg, out_dir=str(out_dir if out_dir is not None else run))
    panel = pd.read_parquet(run / "panel.parquet") if (run / "panel.parquet").is_file() else None
    return run_validation(cfg, targets, vf=vf, wf=wf, panel=panel)


def main(argv: list[str] | None = None) -> int:
    """``python -m lotj.validate conf=NAME [key=value ...]`` (train and validate) or ``python -m lotj.validate
    run=DIR [out_dir=DIR]`` (validate a finished run): exit status 0 when every target is met, 1 when one is
    missed, 2 when the config cannot be validated (not one of the two kinds, or a discrete economy without
    a pure equilibrium)."""
    argv = sys.argv[1:] if argv is None else argv
    run_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("run=")), None)
    try:
        if run_dir is not None:
            out = next((a.split("=", 1)[1] for a in argv if a.startswith("out_dir=")), run_dir)
            cfg = replace(config_from_yaml(Path(run_dir) / "config.yaml"), out_dir=out)
        else:
            cfg = load_config(argv)
        economy_kind(cfg.economy)
    except ConfigError as exc:
        print(f"lotj.validate: {exc}", file=sys.stderr)
        return 2
    try:
        report = validate_run(run_dir, cfg.out_dir) if run_dir is not None else run_validation(cfg)
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
