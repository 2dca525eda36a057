"""lotj: Learning on the Job, multi-worker firms whose workers learn from their coworkers.

The economics lives in :mod:`lotj.economy` (pure tensor functions), the networks in
:mod:`lotj.nets`, the simulator in :mod:`lotj.sim`, training in :mod:`lotj.train`,
measurement in :mod:`lotj.measure` and the exact validation solver in :mod:`lotj.exact`.
"""

__version__ = "0.1.0"
