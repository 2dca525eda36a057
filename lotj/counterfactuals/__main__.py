"""``python -m lotj.counterfactuals conf=NAME [set=SET] [--seeds K] [sweep.OPTION=...] [key=value ...]``, or
``python -m lotj.counterfactuals resume=DIR [sweep.OPTION=...]``: solve the baseline and its counterfactual
economies on Ray and write their table (docs/counterfactuals.md).

Arguments (lotj.counterfactuals.spec): ``conf=`` the preset of every economy (default ``baseline``); ``set=`` the
economies, ``conf/counterfactuals/SET.yaml`` or a path (default ``source``); ``--seeds K`` every economy with K
seeds; ``sweep.*`` options on Ray (``sweep.resources.gpu=1``, ``sweep.address=HOST:PORT``, ``sweep.num_cpus=2``,
``sweep.out_dir=...``, ``sweep.name=...``, ``sweep.max_concurrent=...``); other ``key=value``: config overrides
of every economy. The set directory ``sweep.out_dir/sweep.name`` receives ``counterfactuals.yaml``,
``economies/NAME/seedS/`` (each solve's run directory), ``runs.csv``, ``counterfactuals.csv``, ``.md`` and
``.png``. Exit status: 0 when every economy solved, 1 when one failed or is unfinished, 2 for bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lotj.errors import ConfigError


def prepare(argv: list[str]):
    """The spec and directory of a new set, or of the set to resume."""
    from lotj.counterfactuals.spec import SPEC_FILE, build_spec, load_spec, parse_cli, save_spec, set_name

    args = parse_cli(argv)
    if args.resume:
        if args.overrides or args.conf is not None or args.set is not None or args.seeds is not None:
            raise ConfigError("resume=DIR takes only sweep.* options; the rest is fixed by its counterfactuals.yaml")
        set_dir = Path(args.resume).resolve()
        return load_spec(set_dir / SPEC_FILE, args.sweep), set_dir
    spec = build_spec(args)
    set_dir = (Path(spec.options.out_dir) / set_name(spec)).resolve()
    if (set_dir / SPEC_FILE).exists():
        raise ConfigError(f"{set_dir} already holds a set; continue it with resume={set_dir} or pick a new sweep.name")
    set_dir.mkdir(parents=True, exist_ok=True)
    save_spec(spec, set_dir / SPEC_FILE)
    return spec, set_dir


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(__doc__)
        return 0
    try:
        spec, set_dir = prepare(argv)
    except ConfigError as exc:
        print(f"lotj.counterfactuals: {exc}", file=sys.stderr)
        return 2
    from lotj.counterfactuals.runner import run_set
    from lotj.counterfactuals.table import write_table

    print(f"counterfactual set directory: {set_dir}")
    try:
        run_set(spec, set_dir)
    finally:  # the table also after an interruption: what is done, and what is not
        table = write_table(set_dir)
    print((set_dir / "counterfactuals.md").read_text())
    print(f"table: {set_dir / 'counterfactuals.csv'}")
    if set(table["status"]) != {"ok"}:
        print(f"some economies are not solved; continue with: python -m lotj.counterfactuals resume={set_dir}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
