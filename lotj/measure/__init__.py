"""Measurement: the moments, regression (6), decompositions, sorting and markdowns of MODEL.md sections 8–10,
from any annual panel in the format of docs/panel.md (simulated or real). Pure pandas/numpy (and pyfixest).

Exact definitions and key names: MEASUREMENT.md; users' guide: docs/measurement.md.
"""

from lotj.measure.checks import PanelError, PanelWarning, check_panel
from lotj.measure.moments import MOMENT_KEYS, Measurement, measure, measure_file
from lotj.measure.tenure import with_tenure

__all__ = [
    "MOMENT_KEYS",
    "Measurement",
    "PanelError",
    "PanelWarning",
    "check_panel",
    "measure",
    "measure_file",
    "with_tenure",
]
