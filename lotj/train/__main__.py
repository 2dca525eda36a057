"""``python -m lotj.train conf=NAME [key=value ...]``: train V from a preset and overrides.

A thin command line over :func:`lotj.config.load_config` and :func:`lotj.train.run.train`. Bad input
(an unknown key or preset, a wrong type, a value out of range) prints the ConfigError message and
exits with status 2 before anything runs; so does a ``resume`` checkpoint that does not fit the
config (another ``sim.dt`` or ``economy.n_max``, a simulator saved on another kind of device), once
the checkpoint is read. A run that stops on a NaN exits with status 1.
"""

from __future__ import annotations

import json
import sys

from lotj.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    from lotj.config import load_config

    try:
        cfg = load_config(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"lotj.train: configuration error: {exc}", file=sys.stderr)
        return 2
    from lotj.train.run import train

    try:
        summary = train(cfg)
    except ConfigError as exc:  # found once the run starts: a checkpoint that does not fit the config
        print(f"lotj.train: configuration error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
