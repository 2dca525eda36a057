"""Option sections shared by the Ray commands (``tune.sweep``, ``tune.calibrate``, ``lotj.counterfactuals``).

Each command keeps its options in a dataclass (``SweepOptions``, ``CalibrationOptions``, ``SetOptions``) and
reads them the same way: the dataclass's defaults, then a file's or a saved spec's section, then the command
line's ``PREFIX.key=value`` arguments, then range checks. :func:`merge_section` and :func:`check` are that
path once; :class:`Resources` is the share of a node one trial or solve takes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lotj.errors import ConfigError

__all__ = ["Resources", "check", "merge_section"]

T = TypeVar("T")


@dataclass
class Resources:
    """Resources of one trial; fractions allowed (``gpu: 0.5`` puts two trials on one GPU)."""

    cpu: float = 1.0
    gpu: float = 0.0


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
