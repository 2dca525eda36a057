"""Validation of the network solution against exact solutions (docs/validation.md).

``python -m lotj.validate conf=exact_small`` trains V and W and compares them, and the economy they
imply, with the exact solution of the discrete economy; ``conf=exact_learning`` compares V with the
closed-workforce learning series; ``run=DIR`` validates a finished run. Modules:

- :mod:`lotj.validate.values`: V against the exact V, the simulated statistics, the V stage;
- :mod:`lotj.validate.wages`: W and the wages against the exact W and wages;
- :mod:`lotj.validate.report`: the targets, the report, the command.
"""

from lotj.validate.report import (
    TARGETS,
    Targets,
    ValidationFailed,
    build_report,
    check_targets,
    format_report,
    main,
    run_validation,
    train_w,
    validate_run,
    write_report,
)
from lotj.validate.values import (
    HELDOUT_SEED_OFFSET,
    STATISTICS,
    as_mapping,
    compare_statistics,
    compare_values,
    economy_kind,
    exact_solution,
    learning_iterates,
    market_split,
    network_values,
    placement,
    simulate_statistics,
    train_network,
)
from lotj.validate.wages import compare_w, exact_wage_solution

__all__ = [
    "HELDOUT_SEED_OFFSET",
    "STATISTICS",
    "TARGETS",
    "Targets",
    "ValidationFailed",
    "as_mapping",
    "build_report",
    "check_targets",
    "compare_statistics",
    "compare_values",
    "compare_w",
    "economy_kind",
    "exact_solution",
    "exact_wage_solution",
    "format_report",
    "learning_iterates",
    "main",
    "market_split",
    "network_values",
    "placement",
    "run_validation",
    "simulate_statistics",
    "train_network",
    "train_w",
    "validate_run",
    "write_report",
]
