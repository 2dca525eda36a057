"""What a counterfactual set runs: the command line, its options, and ``counterfactuals.yaml``.

``python -m lotj.counterfactuals conf=NAME [set=SET] [--seeds K] [sweep.OPTION=...] [key=value ...]`` takes

- ``conf=NAME``    the preset of every economy (default ``baseline``);
- ``set=SET``      the economies, ``conf/counterfactuals/SET.yaml`` or a path (default ``source``);
- ``--seeds K``    K seeds ``seed, seed+1, ...`` (the config's ``seed`` first): each economy is solved once per
  seed, every economy with the same seeds as the baseline (common random numbers);
- ``sweep.*``      options of the run on Ray (:class:`SetOptions`), named as ``tune.sweep``'s so that
  ``slurm/tune.sh`` can pass ``sweep.address=HOST:PORT``;
- ``key=value``    config overrides of every economy, the baseline's included;
- ``resume=DIR``   continue an interrupted set (only :data:`RESUMABLE_OPTIONS` may change then).

The set directory ``sweep.out_dir/sweep.name`` keeps what was asked in ``counterfactuals.yaml``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from lotj.config import load_config
from lotj.counterfactuals.economies import Economy, economy_config, load_set
from lotj.errors import ConfigError
from tune.options import RayRunOptions, check, merge_section, refuse_fixed
from tune.spec import default_overrides

#: The file in a set directory that holds its spec.
SPEC_FILE = "counterfactuals.yaml"
#: Options that may change when a set resumes (the rest are fixed by the first run).
RESUMABLE_OPTIONS = ("address", "num_cpus", "num_gpus", "max_concurrent", "retry_failed", "verbose")


@dataclass
class SetOptions(RayRunOptions):
    """How the economies run on Ray (``sweep.*`` on the command line; :class:`tune.options.RayRunOptions`)."""

    out_dir: str = "runs/counterfactuals"  #: the set directory is OUT_DIR/NAME (default CONF-SET-YYYYmmdd-HHMMSS)


@dataclass
class SetSpec:
    """Everything needed to run (or resume) a set; written to ``counterfactuals.yaml``."""

    conf: str
    set: str
    overrides: list[str]
    seeds: list[int]
    economies: list[Economy]
    options: SetOptions

    def economy(self, name: str) -> Economy:
        return next(e for e in self.economies if e.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "conf": self.conf,
            "set": self.set,
            "overrides": list(self.overrides),
            "seeds": list(self.seeds),
            "economies": {e.name: dict(e.overrides) for e in self.economies},
            "sweep": asdict(self.options),
        }


@dataclass
class CliArgs:
    """The command line, split by role."""

    conf: str | None = None
    set: str | None = None
    seeds: int | None = None
    resume: str = ""
    sweep: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)


def parse_cli(argv: list[str]) -> CliArgs:
    """Split the arguments (module docstring); ``--seeds K`` and ``--seeds=K`` both work."""
    args = CliArgs()
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--seeds" or arg.startswith("--seeds="):
            value = arg.split("=", 1)[1] if "=" in arg else (rest.pop(0) if rest else "")
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"--seeds {value!r}: give a number of seeds >= 1")
            args.seeds = int(value)
            continue
        if "=" not in arg:
            raise ConfigError(f"argument {arg!r}: expected key=value or --seeds K (for example conf=smoke --seeds 2)")
        key, value = arg.split("=", 1)
        if key in ("conf", "set", "resume"):
            setattr(args, key, value)
        elif key.startswith("sweep."):
            args.sweep.append(arg)
        else:
            args.overrides.append(arg)
    return args


def merge_options(base: dict[str, Any] | None, dotlist: list[str]) -> SetOptions:
    """Options: defaults < ``base`` (a saved spec's) < ``sweep.*`` arguments; range-checked."""
    o = merge_section(SetOptions, base, [arg.removeprefix("sweep.") for arg in dotlist], "sweep")
    r = o.resources
    check([
        (min(r.cpu, r.gpu) >= 0 and max(r.cpu, r.gpu) > 0, "sweep.resources", asdict(r), "cpu, gpu >= 0, one > 0"),
        *o.ray_checks(),
    ])  # fmt: skip
    return o


def validate_spec(spec: SetSpec) -> None:
    """Fail before Ray starts: every economy's config must load and pass validation with every seed."""
    for economy in spec.economies:
        for seed in spec.seeds:
            economy_config(spec.conf, spec.overrides, economy, f"seed={seed}")


def build_spec(args: CliArgs) -> SetSpec:
    """The spec of a fresh command line (module docstring), validated."""
    conf, set_name = args.conf or "baseline", args.set or "source"
    options = merge_options(None, args.sweep)
    overrides = [*default_overrides(options), *args.overrides]  # type: ignore[arg-type]  # reads .resources only
    base = load_config([f"conf={conf}", *overrides])
    seeds = [base.seed + k for k in range(args.seeds or 1)]
    path = Path(set_name)
    set_ref = str(path.resolve()) if set_name.endswith((".yaml", ".yml")) else set_name
    spec = SetSpec(conf, set_ref, overrides, seeds, load_set(set_ref), options)
    validate_spec(spec)
    return spec


def set_name(spec: SetSpec) -> str:
    """``sweep.name``, or ``CONF-SET-YYYYmmdd-HHMMSS``."""
    return spec.options.name or f"{spec.conf}-{Path(spec.set).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def save_spec(spec: SetSpec, path: Path) -> None:
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(spec.to_dict())))


def load_spec(path: Path, sweep_overrides: list[str] | None = None) -> SetSpec:
    """Read a set directory's ``counterfactuals.yaml``; only :data:`RESUMABLE_OPTIONS` may be overridden."""
    if not path.is_file():
        raise ConfigError(f"resume={path.parent}: not a counterfactual set directory (no {path.name})")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    assert isinstance(raw, dict)
    refuse_fixed(sweep_overrides or [], "sweep", RESUMABLE_OPTIONS, "set")
    economies = [Economy(name, dict(overrides)) for name, overrides in raw["economies"].items()]
    options = merge_options(raw["sweep"], sweep_overrides or [])
    return SetSpec(raw["conf"], raw["set"], list(raw["overrides"]), list(raw["seeds"]), economies, options)
