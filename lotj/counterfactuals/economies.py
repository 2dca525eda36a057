"""The counterfactual economies of a set: names and config overrides (MODEL.md sections 9.2 and 10).

A set file (``conf/counterfactuals/NAME.yaml``, or any path) lists economies under ``economies:``; each is a
mapping of dotted config keys to values (``{}``: the baseline again, solved warm-started from it: the control
of the warm start), and ``with: [names]`` first takes the overrides of economies listed
above it, so that cumulative economies repeat nothing::

    economies:
      no_q: {economy.sd_log_q: 0.0, economy.cov_log_zq: 0.0}
      no_a: {economy.sd_log_a: 0.0, economy.cov_log_ha: 0.0}
      no_q+no_a: {with: [no_q, no_a]}

The baseline (no override) is always the first economy of a set. Every economy is the baseline's config with
its overrides applied last; keys that identify the run (``conf``, ``seed``, ``out_dir``, ``resume``,
``init_from``) belong to the runner and are refused here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lotj.config import CONF_DIR, Config, load_config
from lotj.errors import ConfigError

#: Where named sets live (``set=source`` reads ``conf/counterfactuals/source.yaml``).
SET_DIR = CONF_DIR / "counterfactuals"
#: The economy every set starts with: the run's config without overrides.
BASELINE = "baseline"
#: Config keys the runner sets for every economy (the run's identity), never an economy.
RESERVED_KEYS = ("conf", "seed", "out_dir", "resume", "init_from")
#: Economy names are folder names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Economy:
    """One economy of a set: its name and its config overrides (dotted key -> value)."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def argv(self) -> list[str]:
        """The overrides as ``key=value`` arguments of :func:`lotj.config.load_config`, in key order."""
        from tune.spec import format_value

        return [f"{key}={format_value(value)}" for key, value in sorted(self.overrides.items())]

    def describe(self) -> str:
        """``key=value, ...`` (``-`` for the baseline)."""
        return ", ".join(self.argv()) or "-"


def set_path(name: str) -> Path:
    """``set=NAME`` -> ``conf/counterfactuals/NAME.yaml``; a value ending in ``.yaml``/``.yml`` is a path."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else SET_DIR / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in SET_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown counterfactual set set={name!r}: no {path}; available: {available}")
    return path


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def parse_set(raw: Any, source: str = "the set") -> list[Economy]:
    """The economies of a set file's contents (module docstring), the baseline first."""
    if not isinstance(raw, dict) or set(raw) != {"economies"} or not isinstance(raw["economies"], dict):
        raise ConfigError(f"{source}: expected one top-level key 'economies' holding a mapping of economies")
    economies: dict[str, Economy] = {}
    for name, entry in raw["economies"].items():
        name = str(name)
        if not _NAME.match(name) or name == BASELINE:
            raise ConfigError(
                f"{source}: economy name {name!r} must be a plain folder name (letters, digits, _ . + -) "
                f"other than {BASELINE!r}"
            )
        if not isinstance(entry, dict):  # {} is the baseline again: the control of a warm start
            raise ConfigError(f"{source}: economy {name!r} needs a mapping of config overrides (or with: [...])")
        entry = dict(entry)
        overrides: dict[str, Any] = {}
        included = entry.pop("with", [])
        for other in [included] if isinstance(included, str) else included:
            if other not in economies:
                raise ConfigError(f"{source}: economy {name!r} takes {other!r} with it, which is not listed above it")
            overrides.update(economies[other].overrides)
        own = _flatten(entry)
        for key, value in own.items():
            if key.split(".")[0] in RESERVED_KEYS:
                raise ConfigError(f"{source}: economy {name!r} sets {key!r}, which the runner sets for every run")
            if key in overrides and overrides[key] != value:
                raise ConfigError(f"{source}: economy {name!r} sets {key} = {value!r} against its `with` economies")
        overrides.update(own)
        economies[name] = Economy(name, overrides)
    if not economies:
        raise ConfigError(f"{source}: no economies")
    return [Economy(BASELINE), *economies.values()]


def load_set(name: str) -> list[Economy]:
    """The economies of ``set=NAME`` (a name under ``conf/counterfactuals`` or a path), the baseline first."""
    path = set_path(name)
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"counterfactual set {path}: {str(exc).splitlines()[0]}") from None
    return parse_set(raw, str(path))


def economy_config(conf: str, overrides: list[str], economy: Economy, *run_keys: str) -> Config:
    """The validated config of ``economy``: the preset, the shared overrides, the economy's, then the run's
    keys (``seed=``, ``out_dir=``, ...). A refused value (a zero variance beside a non-zero covariance,
    MODEL.md section 10) raises ConfigError naming the economy."""
    try:
        return load_config([f"conf={conf}", *overrides, *economy.argv(), *run_keys])
    except ConfigError as exc:
        raise ConfigError(f"economy {economy.name!r} ({economy.describe()}): {exc}") from None
