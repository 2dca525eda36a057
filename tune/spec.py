"""The description of a sweep: which preset, which overrides, which search space, which sweep options.

A search-space file ``conf/tune/NAME.yaml`` has two sections::

    sweep:                      # sweep-level options (SweepOptions below); CLI: sweep.num_samples=8
      num_samples: 8
      resources: {cpu: 1, gpu: 0}
    space:                      # dotted config key -> distribution or fixed value
      net.rho_width: {choice: [32, 64, 128]}
      solver.lr: {loguniform: [1.0e-4, 1.0e-2]}
      economy.eta: {uniform: [0.90, 0.98]}

Keys of ``space`` are keys of :class:`lotj.config.Config` (dotted, or nested mappings); each value is
one distribution from :data:`DISTRIBUTIONS` or a fixed value. The command line
``python -m tune.sweep conf=smoke tune=arch sweep.num_samples=2 solver.max_epochs=5`` takes
``conf=`` (the preset of every trial), ``tune=`` (a name under ``conf/tune`` or a path to a YAML file),
``sweep.*`` overrides of the sweep options, and any other ``key=value``: config overrides applied to
every trial, before the trial's own sampled values.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lotj.config import CONF_DIR, Config, load_config
from lotj.errors import ConfigError
from tune.options import RayRunOptions, check, merge_section, refuse_fixed

#: Where named search spaces live (``tune=arch`` reads ``conf/tune/arch.yaml``).
SPACE_DIR = CONF_DIR / "tune"

#: Distribution name -> (ray.tune function name, number of arguments, or None for a list of values).
DISTRIBUTIONS: dict[str, tuple[str, int | None]] = {
    "choice": ("choice", None),  # {choice: [a, b, c]}      one of the values
    "grid": ("grid_search", None),  # {grid: [a, b, c]}     every value (times num_samples)
    "uniform": ("uniform", 2),  # {uniform: [lo, hi]}
    "quniform": ("quniform", 3),  # {quniform: [lo, hi, q]}
    "loguniform": ("loguniform", 2),  # {loguniform: [lo, hi]}, lo > 0
    "qloguniform": ("qloguniform", 3),  # {qloguniform: [lo, hi, q]}
    "randint": ("randint", 2),  # {randint: [lo, hi]}      integer in [lo, hi)
    "qrandint": ("qrandint", 3),  # {qrandint: [lo, hi, q]}  multiple of q in [lo, hi]
    "lograndint": ("lograndint", 2),  # {lograndint: [lo, hi]} integer in [lo, hi), log-uniform
    "randn": ("randn", 2),  # {randn: [mean, sd]}
}

#: Config keys a search space may not set: the sweep owns them.
RESERVED_KEYS = ("conf", "out_dir", "resume")

#: Sweep options that may change when a sweep is resumed (the rest are fixed by the first run).
RESUMABLE_OPTIONS = ("address", "num_cpus", "num_gpus", "retry_failed")


@dataclass
class SchedulerOptions:
    """Early stopping of trials on the sweep metric.

    ``asha``: asynchronous successive halving (``ray.tune.schedulers.ASHAScheduler``) over epochs;
    ``fifo``: every trial runs to its end.
    """

    name: str = "asha"
    grace_period: int = 5  #: epochs every trial runs before it can be stopped
    reduction_factor: float = 3.0  #: 1/reduction_factor of trials go on at each rung


@dataclass
class SweepOptions(RayRunOptions):
    """Options of the sweep itself (the ``sweep:`` section of a search-space file); the directory, resources
    and cluster options are :class:`tune.options.RayRunOptions`'."""

    out_dir: str = "runs/sweeps"  #: the sweep directory is OUT_DIR/NAME (NAME also the W&B group)
    num_samples: int = 4  #: samples of the space (each ``grid`` is repeated this many times)
    metric: str = "val_residual"  #: reported metric to rank trials on ("/" in Lightning names becomes "_")
    mode: str = "min"  #: min | max
    scheduler: SchedulerOptions = field(default_factory=SchedulerOptions)
    num_to_keep: int = 1  #: Tune checkpoints kept per trial (the latest ones)
    max_failures: int = 0  #: retries of a trial that raised (a diverged trial fails again: keep 0)


@dataclass
class SweepSpec:
    """Everything needed to start (or resume) a sweep; written to ``sweep.yaml`` in the sweep directory."""

    conf: str
    tune: str
    overrides: list[str]
    options: SweepOptions
    space: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "conf": self.conf,
            "tune": self.tune,
            "overrides": list(self.overrides),
            "sweep": asdict(self.options),
            "space": self.space,
        }


@dataclass
class CliArgs:
    """The command line of ``tune.sweep``, split by role."""

    conf: str | None = None  #: default "baseline"
    tune: str | None = None  #: default "arch"
    resume: str = ""
    sweep: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def parse_cli(argv: list[str]) -> CliArgs:
    """Split ``key=value`` arguments into preset, space, resume, ``sweep.*`` options and config overrides."""
    args = CliArgs()
    for arg in argv:
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r}: expected key=value (for example conf=smoke tune=arch)")
        key, value = arg.split("=", 1)
        if key in ("conf", "tune", "resume"):
            setattr(args, key, value)
        elif key.startswith("sweep."):
            args.sweep.append(arg)
        else:
            args.overrides.append(arg)
    return args


def space_path(name: str) -> Path:
    """``tune=NAME`` -> ``conf/tune/NAME.yaml``; a value ending in ``.yaml``/``.yml`` is a path."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
    else:
        path = SPACE_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in SPACE_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown search space tune={name!r}: no {path}; available: {available}")
    return path


def merge_options(base: dict[str, Any] | None, dotlist: list[str]) -> SweepOptions:
    """Sweep options: schema defaults < the file's ``sweep:`` section < ``sweep.*`` command-line overrides."""
    options = merge_section(SweepOptions, base, [arg.removeprefix("sweep.") for arg in dotlist], "sweep")
    return validate_options(options)


def validate_options(o: SweepOptions) -> SweepOptions:
    """Range checks of the sweep options; raises ConfigError naming the option."""
    r, s = o.resources, o.scheduler
    check([
        (o.num_samples >= 1, "sweep.num_samples", o.num_samples, "must be >= 1"),
        (o.mode in ("min", "max"), "sweep.mode", o.mode, "allowed ['min', 'max']"),
        (bool(o.metric), "sweep.metric", o.metric, "must name a reported metric"),
        (r.cpu >= 0, "sweep.resources.cpu", r.cpu, "must be >= 0"),
        (r.gpu >= 0, "sweep.resources.gpu", r.gpu, "must be >= 0"),
        (r.cpu > 0 or r.gpu > 0, "sweep.resources", asdict(r), "a trial needs a CPU or a GPU"),
        (s.name in ("asha", "fifo"), "sweep.scheduler.name", s.name, "allowed ['asha', 'fifo']"),
        (s.grace_period >= 1, "sweep.scheduler.grace_period", s.grace_period, "must be >= 1"),
        (s.reduction_factor > 1, "sweep.scheduler.reduction_factor", s.reduction_factor, "must be > 1"),
        (o.num_to_keep >= 1, "sweep.num_to_keep", o.num_to_keep, "must be >= 1"),
        (o.max_failures >= 0, "sweep.max_failures", o.max_failures, "must be >= 0"),
        *o.ray_checks(),
    ])  # fmt: skip
    return o


def flatten_space(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested or dotted ``space:`` mappings -> ``{dotted.key: spec}``; a one-key distribution mapping is a leaf."""
    if not isinstance(node, dict):
        raise ConfigError(f"search space {prefix or 'space'}: expected a mapping of config keys, got {node!r}")
    flat: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_distribution(value):
            if set(value) & set(DISTRIBUTIONS):
                raise ConfigError(f"search space {path}: {value!r} is not a distribution; give exactly one of them")
            flat.update(flatten_space(value, path + "."))
        else:
            flat[path] = value
    return flat


def _is_distribution(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DISTRIBUTIONS


def to_domain(key: str, spec: Any) -> Any:
    """One entry of the space -> a Ray Tune domain (or the fixed value itself)."""
    from ray import tune as ray_tune

    if not isinstance(spec, dict):
        return spec
    if not _is_distribution(spec):
        raise ConfigError(
            f"search space {key}: {spec!r} is not a distribution; use one of {sorted(DISTRIBUTIONS)} "
            "as {name: [arguments]}, or a fixed value"
        )
    ((name, args),) = spec.items()
    fn_name, arity = DISTRIBUTIONS[name]
    if not isinstance(args, list) or not args:
        raise ConfigError(f"search space {key}: {name} takes a non-empty list, got {args!r}")
    if arity is not None:
        if len(args) != arity or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"search space {key}: {name} takes {arity} numbers, got {args!r}")
        if name not in ("randn",) and not args[0] < args[1]:
            raise ConfigError(f"search space {key}: {name} needs lower < upper, got {args!r}")
        if name in ("loguniform", "qloguniform", "lograndint") and args[0] <= 0:
            raise ConfigError(f"search space {key}: {name} needs a lower bound > 0, got {args!r}")
        if name == "randn" and not args[1] > 0:
            raise ConfigError(f"search space {key}: randn needs a standard deviation > 0, got {args!r}")
        return getattr(ray_tune, fn_name)(*args)
    return getattr(ray_tune, fn_name)(list(args))


def param_space(space: dict[str, Any]) -> dict[str, Any]:
    """The Tune ``param_space``: one entry per dotted config key."""
    return {key: to_domain(key, spec) for key, spec in space.items()}


def format_value(value: Any) -> str:
    """A sampled value as the right-hand side of an OmegaConf dotted override."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        value = value.item()  # numpy scalars
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def trial_overrides(config: dict[str, Any]) -> list[str]:
    """A trial's sampled config (``{dotted.key: value}``) as ``key=value`` overrides, in key order."""
    return [f"{key}={format_value(value)}" for key, value in sorted(config.items())]


def default_overrides(options: SweepOptions) -> list[str]:
    """Overrides every trial gets before the user's: no progress bars, threads and device from the resources."""
    out = ["logging.progress_bar=false"]
    if options.resources.cpu >= 1:
        out.append(f"trainer.num_threads={int(options.resources.cpu)}")
    if options.resources.gpu > 0:
        out += ["trainer.accelerator=gpu", "trainer.devices=1"]
    return out


def load_space_file(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``conf/tune/NAME.yaml`` (or a path): its ``sweep:`` options and flattened ``space:``."""
    path = space_path(name)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"search space {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict) or set(raw) - {"sweep", "space"}:
        raise ConfigError(f"search space {path}: top-level keys must be 'sweep' and 'space'")
    space = flatten_space(raw.get("space") or {})
    if not space:
        raise ConfigError(f"search space {path}: 'space' is empty")
    return raw.get("sweep") or {}, space


def build_spec(args: CliArgs) -> SweepSpec:
    """The sweep of a fresh command line: reads the space file, merges options, validates everything."""
    conf, tune = args.conf or "baseline", args.tune or "arch"
    sweep_section, space = load_space_file(tune)
    options = merge_options(sweep_section, args.sweep)
    spec = SweepSpec(conf, tune, [*default_overrides(options), *args.overrides], options, space)
    validate_spec(spec)
    return spec


def validate_spec(spec: SweepSpec) -> Config:
    """Fail before Ray starts: the shared config, and every space key with a sample of its values.

    The shared config is validated fully. Space keys are checked for existence and type with one
    sample (every value of a ``choice`` or ``grid``); range checks of sampled values happen in the
    trials, where a refused combination is recorded as that trial's error.
    """
    for key in spec.space:
        if key.split(".")[0] in RESERVED_KEYS:
            raise ConfigError(f"search space {key}: {key.split('.')[0]!r} is set by the sweep, not sampled")
    base = load_config([f"conf={spec.conf}", *spec.overrides])
    for key, value in spec.space.items():
        domain = to_domain(key, value)
        for sample in _samples(value, domain):
            load_config([f"conf={spec.conf}", *spec.overrides, f"{key}={format_value(sample)}"], validate_ranges=False)
    return base


def _samples(spec: Any, domain: Any) -> list[Any]:
    if _is_distribution(spec) and next(iter(spec)) in ("choice", "grid"):
        return list(next(iter(spec.values())))
    if hasattr(domain, "sample"):
        return [domain.sample()]
    return [domain]


def save_spec(spec: SweepSpec, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec.to_dict())))


def load_spec(path: Path, sweep_overrides: list[str] | None = None) -> SweepSpec:
    """Read ``sweep.yaml`` of a sweep directory; only :data:`RESUMABLE_OPTIONS` may be overridden."""
    if not path.is_file():
        raise ConfigError(f"resume={path.parent}: not a sweep directory (no {path.name})")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(raw, dict)
    refuse_fixed(sweep_overrides or [], "sweep", RESUMABLE_OPTIONS, "sweep")
    options = merge_options(raw["sweep"], sweep_overrides or [])
    return SweepSpec(raw["conf"], raw["tune"], list(raw["overrides"]), options, dict(raw["space"]))
