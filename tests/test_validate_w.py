"""lotj.validate's W section (lotj.validate.wages) on exact_small, with the exact W standing in for the network.

The exact W (a table) must compare at zero error, its wages by cause through the simulator's inversion at
the inversion's tolerance, and a panel drawn from the exact stationary wage law within sampling error;
a W off by 1% of U misses the W target by name. The split puts all of a V error into what W inherits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lotj.config import load_config
from lotj.economy.worker_value import SetFunctionWorkerValue
from lotj.exact import solve_equilibrium
from lotj.exact.table import table_worker_value_function
from lotj.validate import Targets, build_report, check_targets, compare_w, exact_wage_solution
from lotj.validate.report import format_report


@pytest.fixture(scope="module")
def small():
    cfg = load_config(["conf=exact_small"])
    sol = solve_equilibrium(cfg.economy)
    return cfg, sol, exact_wage_solution(sol)


def _panel(ew, n: int, seed: int) -> pd.DataFrame:
    """``n`` employed worker-years drawn from the exact stationary (pair, wage) law."""
    rng = np.random.default_rng(seed)
    mass = ew.chain.mass / ew.chain.mass.sum()
    nodes = rng.choice(len(mass), size=n, p=mass)
    return pd.DataFrame({"employed": np.ones(n, dtype=bool), "wage": ew.node_wage[nodes]})


def test_the_exact_w_meets_every_w_target(small):
    cfg, sol, ew = small
    wf = table_worker_value_function(ew.curve)
    section = compare_w(wf, sol.value_function(), sol, ew, _panel(ew, 400_000, 0))
    assert section["w_rel_error"]["max"] < 1e-13
    for name, row in section["wages_by_cause"].items():
        assert row["resets"] > 0, name
        assert row["max_abs_error_share"] < 1e-8, name  # the inversion's tolerance
    # with the exact wages, the exact weights give the exact quantiles
    exact_q = ew.quantiles((0.25, 0.5, 0.75))
    for k, v in exact_q.items():
        assert section["exact_weights_with_network_wages"][k] == pytest.approx(v, rel=1e-8)
    # 400000 draws: quartiles within 1% of the median and the negative share within 0.3 pp
    d = section["distribution"]
    assert max(d["quantile_error_share"].values()) < 0.01
    assert d["negative_share_error_pp"] < 0.3
    split = section["split"]
    assert split["w_network_vs_given_v"]["max"] < 1e-13 and split["w_given_v_vs_exact"]["max"] < 1e-13
    report = build_report(
        cfg,
        sol.value_function(),
        sol,
        {k: 1.0 for k in ("e", "omega", "mean_size", "en_rate", "ne_rate")},
        w_section=section,
    )
    assert not any(m.startswith(("W ", "wage", "negative", "hire", "poached", "counter")) for m in report["missed"])
    assert "exact wages" in format_report(report)


def test_a_w_off_by_one_percent_of_u_misses_the_w_target(small):
    cfg, sol, ew = small
    exact = table_worker_value_function(ew.curve)
    u_coef = cfg.economy.unemployment_coef

    def fn(h, a, w, z, q, h_co, a_co, m_co):
        return exact.fn(h, a, w, z, q, h_co, a_co, m_co) + 0.01 * u_coef * h

    section = compare_w(SetFunctionWorkerValue(fn), sol.value_function(), sol, ew)
    assert 1e-3 < section["w_rel_error"]["mean"] < 0.011
    # the error is the W solver's own: the exact W given the (exact) V is the exact W
    assert section["split"]["w_given_v_vs_exact"]["max"] < 1e-13
    assert section["split"]["w_network_vs_given_v"]["mean"] == pytest.approx(section["w_rel_error"]["mean"])
    missed = check_targets({"kind": "equilibrium", "w": section}, Targets())
    assert any(m.startswith("W mean relative error") for m in missed)
    # a higher W for every wage lowers every reset wage: hires by about r̄ · 0.01 U
    hire = section["wages_by_cause"]["hire"]
    assert hire["mean_abs_error_share"] > 1e-3


def test_a_v_error_shows_as_inherited_in_the_split(small):
    """With V 1% too high (surpluses and decisions change), the W computed exactly given that V differs from
    the exact W, and the network, here the exact W of the true V, differs from it by the same amount."""
    cfg, sol, ew = small
    from lotj.exact.table import table_value_function

    vf = table_value_function(sol.space, 1.01 * sol.v)
    section = compare_w(table_worker_value_function(ew.curve), vf, sol, ew)
    inherited = section["split"]["w_given_v_vs_exact"]["mean"]
    assert inherited > 1e-4
    assert section["split"]["w_network_vs_given_v"]["mean"] == pytest.approx(inherited, rel=0.2)
