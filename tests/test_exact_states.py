"""The finite state space of a discrete economy (lotj.exact.states)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lotj.config import load_config
from lotj.economy.firms import FirmBatch
from lotj.economy.params import EconomyParams
from lotj.errors import ConfigError
from lotj.exact.states import StateSpace
from lotj.exact.table import table_value_function


@pytest.fixture
def space() -> StateSpace:
    """Built for each test (a millisecond): a change to StateSpace.from_params is then checked by every test
    here, not only by the first one that would have built a module-scoped space."""
    return StateSpace.from_params(load_config(["conf=exact_small"]).economy)


def test_state_count_is_firm_types_times_multisets(space):
    # multisets of at most 4 workers over 3 types: C(4 + 3, 3) = 35, for each of 2 firm types
    assert space.n_states == 2 * math.comb(7, 3) == 70
    assert len({(f, tuple(c)) for f, c in zip(space.firm_type, space.counts)}) == 70
    assert space.size.max() == 4 and space.size.min() == 0


def test_plus_and_minus_are_one_worker_moves(space):
    for i in range(space.n_states):
        for j in range(space.n_worker_types):
            k = space.plus[i, j]
            if space.size[i] == space.n_max:
                assert k == -1  # a firm at the cap makes no offer: no S⊕x (MODEL.md section 10)
            else:
                assert space.firm_type[k] == space.firm_type[i]
                assert (space.counts[k] - space.counts[i]).tolist() == np.eye(3, dtype=int)[j].tolist()
                assert space.minus[k, j] == i
            if space.counts[i, j] == 0:
                assert space.minus[i, j] == -1


def test_production_and_benefits_by_hand(space):
    p = load_config(["conf=exact_small"]).economy
    # firm type 2 (z = 1.5) with one worker of type 1 (h = 0.7) and two of type 3 (h = 1.4)
    i = next(k for k in range(space.n_states) if space.firm_type[k] == 1 and space.counts[k].tolist() == [1, 0, 2])
    assert space.F[i] == pytest.approx(1.5 * (0.7**p.eta + 2 * 1.4**p.eta) ** (1 / p.eta), rel=1e-14)
    assert space.sum_u[i] == pytest.approx(p.b / (p.rho + p.delta_r) * (0.7 + 2 * 1.4), rel=1e-14)
    assert space.F[space.empty_state(0)] == 0.0


def test_batches_round_trip_and_slot_order_does_not_matter(space):
    batch = space.firm_batch()
    assert (space.locate(batch.z, batch.q, batch.h, batch.a, batch.mask) == np.arange(space.n_states)).all()
    perm = torch.randperm(space.n_max, generator=torch.Generator().manual_seed(0))
    shuffled = space.locate(batch.z, batch.q, batch.h[:, perm], batch.a[:, perm], batch.mask[:, perm])
    assert (shuffled == np.arange(space.n_states)).all()


def test_table_value_function_reads_values_and_neighbours(space):
    v = np.arange(space.n_states, dtype=float) + 1.0
    vf = table_value_function(space, v)
    batch = space.firm_batch()
    assert torch.equal(vf.value(batch), torch.as_tensor(v))
    removal = vf.removal_values(batch)
    adds = vf.addition_values(batch, torch.as_tensor(space.h), torch.as_tensor(space.a))
    for i in range(space.n_states):
        for slot in range(space.n_max):
            if batch.mask[i, slot]:
                j = int(np.argmin(np.abs(space.h - float(batch.h[i, slot]))))
                assert removal[i, slot] == v[space.minus[i, j]]
        for j in range(space.n_worker_types):
            if space.plus[i, j] >= 0:
                assert adds[i, j] == v[space.plus[i, j]]


def test_refuses_continuous_or_learning_economies():
    with pytest.raises(ConfigError, match="worker_types"):
        StateSpace.from_params(EconomyParams(gamma_e=0.0))
    p = load_config(["conf=exact_small"]).economy
    p.gamma_e = 0.5
    with pytest.raises(ConfigError, match="gamma_e"):
        StateSpace.from_params(p)
    with pytest.raises(ConfigError, match="firm_types"):
        StateSpace.from_params(EconomyParams(gamma_e=0.0, worker_types=[[1.0, 1.0, 1.0]]))
    # two rows of one (h, a) are one type, whatever probabilities they carry
    p = load_config(["conf=exact_small"]).economy
    p.worker_types = [[0.7, 1.0, 0.2], [1.0, 1.0, 0.3], [1.0, 1.0, 0.5]]
    with pytest.raises(ConfigError, match=r"worker_types: rows 2 and 3 have the same \(h, a\)"):
        StateSpace.from_params(p)
    p = load_config(["conf=exact_small"]).economy
    p.firm_types = [[1.5, 1.0, 0.4], [1.5, 1.0, 0.6]]
    with pytest.raises(ConfigError, match=r"firm_types: rows 1 and 2 have the same \(z, q\)"):
        StateSpace.from_params(p)


def test_unknown_types_are_refused(space):
    batch = space.firm_batch(np.array([3]))
    with pytest.raises(ValueError, match="worker"):
        space.locate(batch.z, batch.q, batch.h * 1.01, batch.a, batch.mask)


def _learning_types() -> EconomyParams:
    """exact_small with distinct learning abilities a and firm qualities q: they play no role without learning,
    but they are part of a type's identity when a simulated firm is read back."""
    p = load_config(["conf=exact_small"]).economy
    p.worker_types = [[0.7, 0.9, 0.3], [1.0, 1.05, 0.4], [1.4, 1.2, 0.3]]
    p.firm_types = [[0.6, 0.95, 0.5], [1.5, 1.1, 0.5]]
    return p


def _batch(z, q, workers, width):
    """A padded batch written by hand: one row per firm, ``workers`` its (h, a) pairs; the padding slots hold
    values that are no type (a simulator leaves whatever was there)."""
    h = torch.full((len(z), width), -7.0, dtype=torch.float64)
    a = torch.full((len(z), width), float("nan"), dtype=torch.float64)
    mask = torch.zeros((len(z), width), dtype=torch.bool)
    for row, ws in enumerate(workers):
        for slot, (hi, ai) in enumerate(ws):
            h[row, slot], a[row, slot], mask[row, slot] = hi, ai, True
    return torch.tensor(z, dtype=torch.float64), torch.tensor(q, dtype=torch.float64), h, a, mask


def test_hand_written_firms_are_located_by_their_types():
    """Firms written from the configuration's (z, q) and (h, a), workers in any slot order and padding of any
    value, are the states with their type counts; a firm above the cap is -1 (it has no state)."""
    p = _learning_types()
    space = StateSpace.from_params(p)
    np.testing.assert_array_equal(space.a, [0.9, 1.05, 1.2])
    np.testing.assert_array_equal(space.q, [0.95, 1.1])
    x1, x2, x3 = (0.7, 0.9), (1.0, 1.05), (1.4, 1.2)
    firms = _batch(
        [1.5, 0.6, 0.6, 1.5],
        [1.1, 0.95, 0.95, 1.1],
        [[x3, x1, x3], [], [x2, x2, x2, x1], [x1, x2, x3, x3, x1]],
        width=p.n_max + 2,
    )
    found = space.locate(*firms)
    expected = [(1, [1, 0, 2]), (0, [0, 0, 0]), (0, [1, 3, 0])]
    for state, (f, counts) in zip(found[:3], expected):
        assert space.firm_type[state] == f and space.counts[state].tolist() == counts
    assert found[3] == -1  # five workers, n_max = 4
    np.testing.assert_array_equal(space.worker_type(firms[2][0, :2], firms[3][0, :2]), [2, 0])


def test_any_subset_of_states_round_trips_at_any_width(space):
    """firm_batch of chosen states, in the order given and padded to any width, locates back to them."""
    states = np.random.default_rng(2).permutation(space.n_states)[:17]
    for width in (space.n_max, space.n_max + 3):
        batch = space.firm_batch(states, width=width)
        assert batch.h.shape == (17, width)
        np.testing.assert_array_equal(space.locate(batch.z, batch.q, batch.h, batch.a, batch.mask), states)
        np.testing.assert_array_equal(batch.size().numpy(), space.size[states])


def test_types_are_matched_to_a_relative_tolerance_whatever_their_units():
    """Output measured in cents rather than dollars (h and z times 100) changes no type: a worker or firm read
    back with a relative rounding of 1e-11 (below TYPE_MATCH_RTOL) is still its type."""
    p = _learning_types()
    p.worker_types = [[100.0 * h, a, w] for h, a, w in p.worker_types]
    p.firm_types = [[100.0 * z, q, w] for z, q, w in p.firm_types]
    space = StateSpace.from_params(p)
    batch = space.firm_batch()
    bump = 1.0 + 1e-11
    found = space.locate(batch.z * bump, batch.q, batch.h * bump, batch.a * bump, batch.mask)
    np.testing.assert_array_equal(found, np.arange(space.n_states))


def test_an_unknown_worker_beside_known_ones_is_refused_and_named(space):
    """One worker who is no type, among workers who are: the whole batch is refused and the message names it."""
    x1, x2 = (0.7, 1.0), (1.0, 1.0)
    firms = _batch([1.5, 0.6], [1.0, 1.0], [[x1, x2], [x2, (0.5, 1.0)]], width=space.n_max)
    with pytest.raises(ValueError, match=r"worker \(h, a\) = \(0\.5, 1\.0\) is not one of the economy's worker"):
        space.locate(*firms)
    with pytest.raises(ValueError, match=r"\(0\.5, 1\.0\) is not"):  # unmatched workers: no mask
        space.worker_type(torch.tensor([0.7, 0.5, 1.4]), torch.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"firm \(z, q\) = \(1\.25, 1\.0\)"):
        space.locate(*_batch([1.5, 1.25], [1.0, 1.0], [[x1], [x2]], width=space.n_max))


def test_states_and_worker_types_are_named_one_based(space):
    """The names in the solver's messages (a decision that flips, a tie) number types from 1, as the
    configuration lists them, and give each type's parameters."""
    i = next(k for k in range(space.n_states) if space.firm_type[k] == 1 and space.counts[k].tolist() == [1, 0, 2])
    assert space.describe(i) == "firm type 2 (z=1.5, q=1) with workers {1: 1, 3: 2}"
    assert space.describe(space.empty_state(0)) == "firm type 1 (z=0.6, q=1) with workers {}"
    assert space.describe_worker(2) == "worker type 3 (h=1.4, a=1)"


def test_table_value_function_gives_a_firm_above_the_cap_zero(space):
    """Rows above the size cap (no state) get the finite value 0 (lotj.exact.table)."""
    v = np.arange(space.n_states, dtype=float) + 1.0
    vf = table_value_function(space, v)
    x = (1.0, 1.0)  # exact_small's second worker type
    z, q, h, a, mask = _batch([1.5, 0.6], [1.0, 1.0], [[x, x], [x] * (space.n_max + 1)], width=space.n_max + 1)
    out = vf.value(FirmBatch(z, q, h, a, mask))
    assert out[0] == v[space.locate(z[:1], q[:1], h[:1], a[:1], mask[:1])[0]] and out[1] == 0.0
