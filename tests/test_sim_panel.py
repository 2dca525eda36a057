"""The annual panel (docs/panel.md), reproducibility and the simulator's saved state."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import torch
from reference import crowding_value

from lotj.economy.params import EconomyParams
from lotj.economy.value import SetFunctionValue
from lotj.sim.panel import PANEL_COLUMNS, read_panel, write_panel
from lotj.sim.simulator import Simulator

P = EconomyParams(n_max=12)
VF = SetFunctionValue(crowding_value(P))


def make(seed: int = 0, n_firms: int = 150) -> Simulator:
    return Simulator(P, n_firms, 0.05, seed=seed)


def test_panel_columns_rows_and_nulls(tmp_path):
    sim = make()
    sim.advance(VF, 3.0)
    panel = sim.simulate_panel(VF, 4)
    assert list(panel.columns) == list(PANEL_COLUMNS)
    assert {c: str(t) for c, t in panel.dtypes.items()} == PANEL_COLUMNS
    workers = sim.pop.n_workers
    assert len(panel) == 4 * workers
    assert sorted(panel["year"].unique().tolist()) == [3, 4, 5, 6]
    assert not panel.duplicated(["worker_id", "year"]).any()  # one row per worker-year
    un = ~panel["employed"]
    for c in ("firm_id", "z", "q", "firm_size"):
        assert panel.loc[un, c].isna().all() and panel.loc[~un, c].notna().all(), c
    # the firm size column is the number of the firm's workers in that year
    counts = panel[~un].groupby(["year", "firm_id"]).size()
    sizes = panel[~un].groupby(["year", "firm_id"])["firm_size"].first()
    assert (counts == sizes).all()
    # firm-level columns are constant within a firm-year
    assert (panel[~un].groupby(["year", "firm_id"])[["z", "q"]].nunique() == 1).all().all()
    path = write_panel(panel, tmp_path / "panel.parquet")
    back = read_panel(path)
    pd.testing.assert_frame_equal(back.drop(columns=["tenure", "tenure_censored"]), panel)
    # the written tenure: 0 in a worker's first year at its firm, +1 a year while it stays; null off the job
    assert back["tenure"].isna().equals(~back["employed"])
    prev = back[["worker_id", "year", "firm_id", "tenure"]].assign(year=back["year"] + 1)
    pairs = back.merge(prev, on=["worker_id", "year"], suffixes=("", "_prev"))
    stay = pairs[pairs["employed"] & (pairs["firm_id"] == pairs["firm_id_prev"]).fillna(False)]
    assert (stay["tenure"] == stay["tenure_prev"] + 1).all() and len(stay) > 0


def test_transition_rates_equal_those_computed_from_the_panel():
    sim = make(seed=3, n_firms=200)
    sim.advance(VF, 2.0)
    panel = sim.simulate_panel(VF, 5)
    st = sim.last_statistics
    nxt = panel[["worker_id", "year", "employed"]].copy()
    nxt["year"] -= 1
    pairs = panel.merge(nxt, on=["worker_id", "year"], suffixes=("", "_next"))  # retirees drop out
    e0 = pairs[pairs["employed"]]
    n0 = pairs[~pairs["employed"]]
    assert st.en_rate == pytest.approx((~e0["employed_next"]).mean(), abs=1e-12)
    assert st.ne_rate == pytest.approx(n0["employed_next"].mean(), abs=1e-12)


def test_panel_dates_are_the_simulated_economy_at_those_dates():
    """Each year of the panel is the simulator's population at that annual date: the same seed run
    year by year, read from the population's own tensors (not the panel code), gives each worker's
    status and firm, hence the same employment share, exactly."""
    sim = make(seed=3, n_firms=200)
    sim.advance(VF, 2.0)
    panel = sim.simulate_panel(VF, 5)
    twin = make(seed=3, n_firms=200)
    twin.advance(VF, 2.0)
    for k in range(5):
        if k:
            twin.run_steps(VF, twin.spy)
        pop = twin.pop
        rows = panel[panel["year"] == twin.year].set_index("worker_id").sort_index()
        order = torch.argsort(pop.worker_id)
        employed = pop.employed()[order]
        assert rows.index.tolist() == pop.worker_id[order].tolist()
        assert rows["employed"].tolist() == employed.tolist()
        assert rows["employed"].mean() == float(employed.double().mean())
        firm_ids = pop.firm_id[pop.firm.clamp_min(0)][order]
        assert rows.loc[employed.numpy(), "firm_id"].tolist() == firm_ids[employed].tolist()


def test_same_seed_same_panel_other_seed_other_panel():
    a = make(seed=5).simulate_panel(VF, 3)
    b = make(seed=5).simulate_panel(VF, 3)
    c = make(seed=6).simulate_panel(VF, 3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_restored_state_continues_the_same_path():
    ref = make(seed=7)
    ref.advance(VF, 2.0)
    buffer = io.BytesIO()
    torch.save(ref.state_dict(), buffer)  # as in a checkpoint
    ref_stats = ref.advance(VF, 2.0)
    ref_panel = ref.simulate_panel(VF, 2)

    other = make(seed=99)  # a different start, overwritten by the saved state
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=False))
    stats = other.advance(VF, 2.0)
    assert stats.as_dict() == ref_stats.as_dict()
    pd.testing.assert_frame_equal(other.simulate_panel(VF, 2), ref_panel)
    for k in ("h", "a", "worker_id", "firm", "slot", "slot_worker", "firm_id", "z", "q"):
        assert torch.equal(getattr(other.pop, k), getattr(ref.pop, k)), k
    assert other.clock == ref.clock


def test_snapshot_is_the_economy():
    sim = make(seed=8)
    sim.advance(VF, 1.0)
    snap = sim.snapshot()
    assert snap.n_firms == 150
    assert snap.n_workers() == sim.pop.n_workers
    assert snap.employment_rate() == pytest.approx(float(sim.pop.employed().double().mean()))
    # the firm states hold the workers' h, and the unmatched the rest
    h_all = torch.cat([snap.firms.h[snap.firms.mask], snap.unmatched_h]).sort().values
    torch.testing.assert_close(h_all, sim.pop.h.sort().values)


def test_panel_from_year_records_the_panel_at_that_age_of_the_economy():
    # two economies at different ages record their panels from the same annual date (sim.panel_from_year);
    # one already past that date records from its next annual date, as without it
    young, old = make(seed=2), make(seed=2)
    young.advance(VF, 1.2)
    old.advance(VF, 4.4)
    assert sorted(young.simulate_panel(VF, 2, from_year=3)["year"].unique().tolist()) == [3, 4]
    assert young.clock == pytest.approx(4.0)
    assert sorted(old.simulate_panel(VF, 2, from_year=3)["year"].unique().tolist()) == [5, 6]
    # the same path as simulating to that date first: the years before it are not in the window
    ref = make(seed=2)
    ref.advance(VF, 1.2)
    ref.advance(VF, 1.8)
    pd.testing.assert_frame_equal(ref.simulate_panel(VF, 2), make_young_panel())


def make_young_panel() -> pd.DataFrame:
    sim = make(seed=2)
    sim.advance(VF, 1.2)
    return sim.simulate_panel(VF, 2, from_year=3)
