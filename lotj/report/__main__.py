"""``python -m lotj.report RUN_DIR [--data-median-wage M]``: write ``RUN_DIR/report.md`` with its figures
(:func:`lotj.report.build_report`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lotj.errors import ConfigError
from lotj.report import build_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lotj.report", description="Write report.md of a run directory.")
    ap.add_argument("run_dir")
    ap.add_argument("--data-median-wage", type=float, default=None)
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    if not (run / "panel.parquet").is_file():
        print(f"lotj.report: {run} has no panel.parquet", file=sys.stderr)
        return 2
    try:
        paths = build_report(run, data_median_wage=args.data_median_wage)
    except ConfigError as exc:
        print(f"lotj.report: {exc}", file=sys.stderr)
        return 2
    print(paths["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
