"""``python -m lotj.validate``: see :mod:`lotj.validate.report`."""

import sys

from lotj.validate.report import main

sys.exit(main())
