"""Exact solutions of small economies, for validating the network solution (docs/validation.md).

- Discrete economies without learning (finitely many worker and firm types, a size cap,
  γ^E = 0): :func:`solve_equilibrium` solves the V equation of MODEL.md section 4 exactly,
  the stationary distribution of firms and unmatched workers, ω by market clearing and the
  equilibrium fixed point, and the annual EN/NE rates.
- The closed-workforce learning economy (only ρ, γ^E, F and H active):
  :func:`closed_workforce_values` sums ``V(S) = Σ_k γ^k F(H^k S) / (ρ + γ)^(k+1)``.

numpy for the model, torch for lotj.economy's F, H and FirmBatch and for the dense linear algebra
(:mod:`lotj.exact.linalg`); no training code.
"""

from lotj.exact.bellman import Policies, ValueIterationError, hjb_residual, solve_values
from lotj.exact.equilibrium import ExactSolution, NoPureEquilibriumError, solve_equilibrium
from lotj.exact.learning import (
    LearningCheck,
    closed_workforce_values,
    learning_check,
    learning_states,
    lone_worker_value,
)
from lotj.exact.market import Distribution, Market
from lotj.exact.states import StateSpace
from lotj.exact.stationary import stationary_distribution
from lotj.exact.table import table_value_function
from lotj.exact.transitions import annual_rates

__all__ = [
    "Distribution",
    "ExactSolution",
    "LearningCheck",
    "Market",
    "NoPureEquilibriumError",
    "Policies",
    "StateSpace",
    "ValueIterationError",
    "annual_rates",
    "closed_workforce_values",
    "hjb_residual",
    "learning_check",
    "learning_states",
    "lone_worker_value",
    "solve_equilibrium",
    "solve_values",
    "stationary_distribution",
    "table_value_function",
]
