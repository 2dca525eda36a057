"""Option sections shared by the Ray commands (``tune.sweep``, ``tune.calibrate``, ``lotj.counterfactuals``).

Each command keeps its options in a dataclass (``SweepOptions``, ``CalibrationOptions``, ``SetOptions``) and
reads them the same way: the dataclass's defaults, then a file's or a saved spec's section, then the command
line's ``PREFIX.key=value`` arguments, then range checks. :func:`merge_section` and :func:`check` are that
path once; :class:`Resources` is the share of a node one trial or solve takes, and :class:`RayRunOptions` the
``sweep.*`` options that the sweep and the counterfactual set share.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lotj.errors import ConfigError

__all__ = ["RayRunOptions", "Resources", "check", "merge_section", "refuse_fixed"]

T = TypeVar("T")


@dataclass
class Resources:
    """Resources of one trial; fractions allowed (``gpu: 0.5`` puts two trials on one GPU)."""

    cpu: float = 1.0
    gpu: float = 0.0


@dataclass
class RayRunOptions:
    """Where a set of solves on Ray writes and how it runs: the ``sweep.*`` options ``tune.sweep`` and
    ``lotj.counterfactuals`` share (``slurm/tune.sh`` passes ``sweep.address=HOST:PORT`` to either)."""

    out_dir: str = "runs"  #: the set's directory is OUT_DIR/NAME
    name: str = ""  #: its name (default CONF-SPACE-or-SET-TIMESTAMP)
    resources: Resources = field(default_factory=Resources)  #: of one solve
    max_concurrent: int = 0  #: solves running at once (0: as many as the resources allow)
    address: str = ""  #: Ray cluster to join (HOST:PORT, or "auto"); "" starts a local Ray
    num_cpus: int = 0  #: local Ray only: CPUs to use (0: all)
    num_gpus: int = -1  #: local Ray only: GPUs to use (-1: all detected)
    retry_failed: bool = False  #: on resume, run failed solves again from scratch
    verbose: int = 1  #: Tune's console output, 0 (silent) to 3

    def ray_checks(self) -> list[tuple[bool, str, Any, str]]:
        """The range checks of these options, as :func:`check` takes them."""
        plain = "/" not in self.name and self.name not in (".", "..")
        return [
            (self.max_concurrent >= 0, "sweep.max_concurrent", self.max_concurrent, "must be >= 0 (0: no limit)"),
            (self.num_cpus >= 0, "sweep.num_cpus", self.num_cpus, "must be >= 0 (0: all)"),
            (self.num_gpus >= -1, "sweep.num_gpus", self.num_gpus, "must be >= -1 (-1: all detected)"),
            (0 <= self.verbose <= 3, "sweep.verbose", self.verbose, "must be 0, 1, 2 or 3"),
            (plain, "sweep.name", self.name, "must be a plain folder name"),
        ]


def merge_section(schema: type[T], base: dict[str, Any] | None, dotlist: list[str], what: str) -> T:
    """``schema``'s defaults < ``base`` < ``dotlist`` (``key=value``, dotted keys), as a ``schema`` instance.
    A key ``schema`` lacks or a value of the wrong type raises ConfigError naming it as ``what`` option KEY."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), base or {}, OmegaConf.from_dotlist(dotlist))
        options = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "?"
        raise ConfigError(f"{what} option {key!r}: {str(exc).splitlines()[0]}") from None
    assert isinstance(options, schema)
    return options


def check(checks: Iterable[tuple[bool, str, Any, str]]) -> None:
    """Raise ConfigError ``KEY = VALUE: WHAT`` for the first ``(ok, key, value, what)`` that is not ok."""
    for ok, key, value, what in checks:
        if not ok:
            raise ConfigError(f"{key} = {value!r}: {what}")


def refuse_fixed(dotlist: list[str], prefix: str, resumable: tuple[str, ...], what: str) -> None:
    """Raise ConfigError naming the first ``PREFIX.option=value`` of ``dotlist`` (the prefix optional) whose option
    is not in ``resumable``: the rest fix what a resumed ``what`` (a sweep, a set, a calibration) computes."""
    for arg in dotlist:
        key = arg.split("=", 1)[0].removeprefix(prefix + ".")
        if key.split(".")[0] not in resumable:
            allowed = [f"{prefix}.{o}" for o in resumable]
            raise ConfigError(f"{prefix}.{key} cannot change when a {what} resumes; allowed: {allowed}")
