"""Exact solutions of small economies, for validating the network solution (docs/validation.md).

- Discrete economies without learning (finitely many worker and firm types, a size cap,
  γ^E = 0): :func:`solve_equilibrium` solves the V equation of MODEL.md section 4 exactly,
  the stationary distribution of firms and unmatched workers, ω by market clearing and the
  equilibrium fixed point, and the annual EN/NE rates.
- W of every worker of a discrete economy at every own wage (:func:`exact_worker_values`, MODEL.md
  section 5), the wage of every reset and the stationary wage distribution (:func:`exact_wages`).
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
from lotj.exact.wages import ExactWages, exact_wages, simulate_wage_chain
from lotj.exact.worker_value import RegimeCycleError, WageCurve, exact_worker_values, solve_at_wage

__all__ = [
    "Distribution",
    "ExactSolution",
    "ExactWages",
    "LearningCheck",
    "Market",
    "NoPureEquilibriumError",
    "Policies",
    "RegimeCycleError",
    "StateSpace",
    "ValueIterationError",
    "WageCurve",
    "annual_rates",
    "closed_workforce_values",
    "exact_wages",
    "exact_worker_values",
    "hjb_residual",
    "learning_check",
    "learning_states",
    "lone_worker_value",
    "simulate_wage_chain",
    "solve_at_wage",
    "solve_equilibrium",
    "solve_values",
    "stationary_distribution",
    "table_value_function",
]
