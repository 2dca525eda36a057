"""``python -m lotj.measure PANEL_OR_RUN_DIR [--theta-plus X --theta-minus Y] [--out DIR] [--data-median-wage M]``.

A run directory (``python -m lotj.train``'s ``out_dir``) supplies its ``panel.parquet`` and θ± (from its
``config.yaml``) and is the default output directory; a bare Parquet panel takes θ± from the options (without
them the decomposition of h growth is null) and writes into ``--out`` (default: the panel's directory).
Writes ``moments.json``, ``analysis.json``, ``targets.csv`` and ``tables/*.csv``
(:func:`lotj.measure.output.write_measurement`). A malformed panel exits with status 2 and the problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from lotj.errors import ConfigError
from lotj.measure.moments import measure
from lotj.measure.output import run_thetas, write_measurement


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lotj.measure", description=__doc__.split("\n\n")[1])
    ap.add_argument("source", help="a run directory (with panel.parquet and config.yaml) or a Parquet panel")
    ap.add_argument("--theta-plus", type=float, default=None, help="θ⁺ of the economy (bare panel)")
    ap.add_argument("--theta-minus", type=float, default=None, help="θ⁻ of the economy (bare panel)")
    ap.add_argument("--out", default=None, help="output directory")
    ap.add_argument("--data-median-wage", type=float, default=None, help="compare the wage quantile gaps scaled")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    src = Path(args.source)
    tp, tm = args.theta_plus, args.theta_minus
    try:
        if src.is_dir():
            panel_path = src / "panel.parquet"
            if not panel_path.is_file():
                raise ConfigError(f"{src} has no panel.parquet")
            if (src / "config.yaml").is_file():
                run_tp, run_tm = run_thetas(src)
                tp = run_tp if tp is None else tp
                tm = run_tm if tm is None else tm
            out = Path(args.out) if args.out else src
        elif src.is_file():
            panel_path = src
            out = Path(args.out) if args.out else src.parent
        else:
            raise ConfigError(f"no such run directory or panel: {src}")
        panel = pd.read_parquet(panel_path, engine="pyarrow")
        m = measure(panel, tp, tm, progress=None if not args.no_progress else False)
    except ConfigError as exc:
        print(f"lotj.measure: {exc}", file=sys.stderr)
        return 2
    paths = write_measurement(m, out, args.data_median_wage)
    print(json.dumps(m.moments, indent=2))
    print(f"lotj.measure: wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
