"""The calibration's description: the target file ``conf/calibrate/NAME.yaml`` and the command line.

A target file has three sections (``conf/calibrate/source.yaml`` is the source's, MODEL.md section 8)::

    options:              # CalibrationOptions below; CLI: calibrate.num_trials=64
      sampler: tpe
    targets:              # moments.json key -> the data value
      firm_size_mean: 4.660
      between_firm_share_rank: 0.843
    wage_level_targets:   # quantile gaps in the data's own wage units (MODEL.md section 10): used
      wage_p50_p25: 3.090 # median-scaled (wage_p50_p25_rel = 3.090 / data_median_wage) and only when
      wage_p75_p50: 6.165 # options.data_median_wage is given; left out otherwise
    parameters:           # MODEL.md section 7 name -> bounds
      n_w: [3.0, 8.0]
      psi_e: {bounds: [0.3, 2.0], log: true}
      cov_log_zq: {corr: [-0.9, 0.9]}     # a covariance is searched as a correlation

The command line ``python -m tune.calibrate conf=NAME calibrate=FILE [calibrate.OPTION=...] [key=value ...]``
takes the preset (the start point is its economy), the target file (a name under ``conf/calibrate`` or a
path), options, and config overrides shared by every solve; ``resume=DIR`` continues a calibration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lotj.config import CONF_DIR
from lotj.errors import ConfigError
from tune.calibrate.space import Parameter, parse_parameter
from tune.options import Resources, check, merge_section, refuse_fixed

#: Where named target files live (``calibrate=source`` reads ``conf/calibrate/source.yaml``).
TARGET_DIR = CONF_DIR / "calibrate"
#: median-scaled keys of the wage quantile gaps (lotj.measure.targets.WAGE_LEVEL_TARGETS)
WAGE_LEVEL_KEYS = {"wage_p50_p25": "wage_p50_p25_rel", "wage_p75_p50": "wage_p75_p50_rel"}
#: options that may change when a calibration resumes (the rest define the objective and stay fixed)
RESUMABLE_OPTIONS = (
    "num_trials",
    "max_concurrent",
    "address",
    "num_cpus",
    "jacobian",
    "fd_step",
    "weak_identification",
    "refine_evals",
)


@dataclass
class CalibrationOptions:
    """Options of a calibration (the ``options:`` section; ``calibrate.OPTION=...`` on the command line)."""

    sampler: str = "tpe"  #: tpe | cmaes (Optuna's samplers, through Ray Tune's OptunaSearch)
    num_trials: int = 32  #: trials of the search, the start point and given points not counted
    max_concurrent: int = 2  #: trials solving at once
    resources: Resources = field(default_factory=Resources)  #: of one trial
    #: the sampler's random trials before it models the ones it has seen (Optuna's n_startup_trials, the
    #: start point and given points counted; null: the sampler's default, 10 for TPE and 1 for CMA-ES)
    startup_trials: int | None = None
    seed: int = 0  #: the sampler's seed (the solves share the config's own ``seed``: common random numbers)
    weighting: str = "diagonal"  #: diagonal (inverse variances) | optimal (inverse covariance, regularised)
    #: the moments' covariance: replications (independent panels of the solved start economy) | blocks (batch
    #: means over the start run's own panel; no simulation, understates persistent moments' variances)
    weight_source: str = "replications"
    weight_replications: int = 10  #: independent panels for weight_source=replications
    weight_burn_in_years: float = 5.0  #: years each replication simulates (wages tracked) before its panel
    weight_block_years: int = 2  #: years per block of the start run's panel (weight_source=blocks)
    weight_floor: float = 0.01  #: a moment's standard deviation is at least this share of max(|data|, |model|)
    data_median_wage: float | None = None  #: the data's median wage in the units of wage_level_targets
    data_size_ratio: float = 1.0  #: data sample size / simulated panel size (standard errors, docs/calibration.md)
    require_convergence: bool = False  #: score an unconverged solve (summary ``convergence``) as a failure
    failure_score: float = 1.0e6  #: the objective reported for a failed or refused trial
    points: list[dict[str, float]] = field(default_factory=list)  #: candidates tried before the sampler's own
    #: start each solve from the nearest finished trial's networks (false: every solve starts cold, as the
    #: start point did; for solves too short to forget their start, docs/calibration.md)
    warm_start: bool = True
    start_run: str = ""  #: a solved run at the start point (its directory) instead of solving it anew
    jacobian: bool = True  #: at the best point: the Jacobian by finite differences and standard errors
    fd_step: float = 0.05  #: finite-difference step as a share of each parameter's range
    weak_identification: float = 1.0  #: warn when the range of a parameter moves the moments by fewer s.e.
    #: after the search: at most this many solves of the local least-squares refinement from the best trial
    #: (DFO-LS, tune.calibrate.refine; 0: none)
    refine_evals: int = 0
    #: the directions of its first model (null: one per parameter); with fewer it steps after fewer solves
    refine_directions: int | None = None
    refine_radius: float = 0.1  #: its first trust radius, as a share of each parameter's range
    refine_tol: float = 1e-3  #: its last trust radius: it stops when steps this small no longer help
    train_fn: str = "lotj.train.run:train"  #: module:function of the solve (``python -m lotj.train``'s)
    address: str = ""  #: HOST:PORT of a running Ray cluster (slurm/tune.sh sets it); "" starts a local one
    num_cpus: int = 0  #: CPUs of a local Ray (0: all)
    out_dir: str = "runs/calibrate"
    name: str = ""  #: folder under out_dir (default CONF-FILE-YYYYmmdd-HHMMSS)


@dataclass
class CalibrationSpec:
    """Everything that defines a calibration; saved as ``calibration.yaml`` in its directory."""

    conf: str
    target_file: str
    overrides: list[str]
    options: CalibrationOptions
    targets: dict[str, float]  #: moments.json key -> data value, the quantile gaps already median-scaled
    parameters: list[Parameter]
    left_out: dict[str, str] = field(default_factory=dict)  #: target -> why it is not in the objective

    def to_dict(self) -> dict[str, Any]:
        return {
            "conf": self.conf,
            "target_file": self.target_file,
            "overrides": list(self.overrides),
            "options": asdict(self.options),
            "targets": dict(self.targets),
            "parameters": [asdict(p) for p in self.parameters],
            "left_out": dict(self.left_out),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> CalibrationSpec:
        options = merge_options(raw["options"], [])
        params = [Parameter(**p) for p in raw["parameters"]]
        return cls(raw["conf"], raw["target_file"], list(raw["overrides"]), options, dict(raw["targets"]), params,
                   dict(raw.get("left_out") or {}))  # fmt: skip


@dataclass
class CliArgs:
    conf: str | None = None
    calibrate: str | None = None
    resume: str = ""
    options: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def parse_cli(argv: list[str]) -> CliArgs:
    """Split ``key=value`` arguments into preset, target file, resume, ``calibrate.*`` options and overrides."""
    args = CliArgs()
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r}: expected key=value (for example conf=smoke calibrate=source)")
        key, value = arg.split("=", 1)
        if key in ("conf", "calibrate", "resume"):
            setattr(args, key, value)
        elif key.startswith("calibrate."):
            args.options.append(arg.removeprefix("calibrate."))
        else:
            args.overrides.append(arg)
    return args


def target_path(name: str) -> Path:
    path = Path(name) if name.endswith((".yaml", ".yml")) else TARGET_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in TARGET_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown target file calibrate={name!r}: no {path}; available: {available}")
    return path


def merge_options(base: dict[str, Any] | None, dotlist: list[str]) -> CalibrationOptions:
    """Options: defaults < the file's ``options:`` < command-line ``calibrate.*``; range-checked."""
    o = options = merge_section(CalibrationOptions, base, dotlist, "calibrate")
    check((ok, f"calibrate.{key}", value, what) for ok, key, value, what in [
        (o.sampler in ("tpe", "cmaes"), "sampler", o.sampler, "allowed ['tpe', 'cmaes']"),
        (o.num_trials >= 0, "num_trials", o.num_trials, "must be >= 0"),
        (o.startup_trials is None or o.startup_trials >= 0, "startup_trials", o.startup_trials, "must be >= 0"),
        (o.max_concurrent >= 1, "max_concurrent", o.max_concurrent, "must be >= 1"),
        (o.resources.cpu > 0 or o.resources.gpu > 0, "resources", asdict(o.resources), "a trial needs a CPU or GPU"),
        (o.weighting in ("diagonal", "optimal"), "weighting", o.weighting, "allowed ['diagonal', 'optimal']"),
        (o.weight_source in ("replications", "blocks"), "weight_source", o.weight_source,
         "allowed ['replications', 'blocks']"),
        (o.weight_replications >= 2, "weight_replications", o.weight_replications, "must be >= 2 (a covariance)"),
        (o.weight_burn_in_years >= 0, "weight_burn_in_years", o.weight_burn_in_years, "must be >= 0"),
        (o.weight_block_years >= 2, "weight_block_years", o.weight_block_years, "must be >= 2 (a rank change)"),
        (o.weight_floor > 0, "weight_floor", o.weight_floor, "must be > 0"),
        (o.data_median_wage is None or o.data_median_wage > 0, "data_median_wage", o.data_median_wage, "must be > 0"),
        (o.data_size_ratio > 0, "data_size_ratio", o.data_size_ratio, "must be > 0"),
        (0 < o.fd_step < 0.5, "fd_step", o.fd_step, "must be in (0, 0.5)"),
        (":" in o.train_fn, "train_fn", o.train_fn, "must be module:function"),
        (o.failure_score > 0, "failure_score", o.failure_score, "must be > 0"),
        (o.refine_evals >= 0, "refine_evals", o.refine_evals, "must be >= 0"),
        (o.refine_directions is None or o.refine_directions >= 1, "refine_directions", o.refine_directions,
         "must be >= 1"),
        (0 < o.refine_radius <= 0.5, "refine_radius", o.refine_radius, "must be in (0, 0.5]"),
        (0 < o.refine_tol < o.refine_radius, "refine_tol", o.refine_tol, "must be in (0, refine_radius)"),
    ])  # fmt: skip
    return options


def load_target_file(name: str, dotlist: list[str]) -> tuple[CalibrationOptions, dict[str, float], list[Parameter],
                                                             dict[str, str]]:  # fmt: skip
    """Read a target file: its options (merged with ``dotlist``), targets (quantile gaps median-scaled when
    the data median is given, else left out with the reason), and parameters."""
    path = target_path(name)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"target file {path}: {str(exc).splitlines()[0]}") from None
    allowed = {"options", "targets", "wage_level_targets", "parameters"}
    if not isinstance(raw, dict) or set(raw) - allowed:
        raise ConfigError(f"target file {path}: top-level keys must be among {sorted(allowed)}")
    options = merge_options(raw.get("options"), dotlist)
    targets = {str(k): float(v) for k, v in (raw.get("targets") or {}).items()}
    left_out: dict[str, str] = {}
    for key, value in (raw.get("wage_level_targets") or {}).items():
        if key not in WAGE_LEVEL_KEYS:
            raise ConfigError(f"target file {path}: wage_level_targets takes {sorted(WAGE_LEVEL_KEYS)}, not {key!r}")
        if options.data_median_wage is None:
            left_out[key] = "in the data's wage units: needs calibrate.data_median_wage (MODEL.md section 10)"
        else:
            targets[WAGE_LEVEL_KEYS[key]] = float(value) / options.data_median_wage
    for key in WAGE_LEVEL_KEYS:
        if key in targets:
            raise ConfigError(f"target file {path}: {key} is in the data's wage units; put it under wage_level_targets")
    if not targets:
        raise ConfigError(f"target file {path}: no targets")
    params = [parse_parameter(str(k), v) for k, v in (raw.get("parameters") or {}).items()]
    if not params:
        raise ConfigError(f"target file {path}: no parameters")
    names = {p.name for p in params}
    for point in options.points:
        if set(point) != names:
            raise ConfigError(f"calibrate.points: {point} must give exactly the searched coordinates {sorted(names)}")
        outside = [p.name for p in params if not p.lower <= point[p.name] <= p.upper]
        if outside:
            raise ConfigError(f"calibrate.points: {point} lies outside the bounds of {outside}")
    return options, targets, params, left_out


def resume_options(spec: CalibrationSpec, dotlist: list[str]) -> CalibrationSpec:
    """A saved spec with the command line's resumable options applied (others refused)."""
    refuse_fixed(dotlist, "calibrate", RESUMABLE_OPTIONS, "calibration")
    spec.options = merge_options(asdict(spec.options), dotlist)
    return spec


def save_spec(spec: CalibrationSpec, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec.to_dict())))


def load_spec(path: Path) -> CalibrationSpec:
    if not path.is_file():
        raise ConfigError(f"resume={path.parent}: not a calibration directory (no {path.name})")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(raw, dict)
    return CalibrationSpec.from_dict(raw)
