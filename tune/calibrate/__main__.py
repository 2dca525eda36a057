"""``python -m tune.calibrate``: see :mod:`tune.calibrate.cli`."""

from tune.calibrate.cli import main

raise SystemExit(main())
